"""relu: y = max(x, 0)."""

from __future__ import annotations

import numpy as np

from ..op import Op, OpAttrs


class ReluAttrs(OpAttrs):
    """relu takes no attributes."""


class Relu(Op):
    """Rectified linear unit: y = max(x, 0), elementwise.

    Gradient: dx = dy where x > 0, else 0.
    """

    version = 1
    inputs = ("x",)
    Attrs = ReluAttrs
    example = {"attrs": {}, "inputs": {"x": (3, 4)}}

    def shape(self, attrs, x):
        return tuple(x)

    def forward(self, attrs, ctx, x):
        return np.maximum(x, 0), x > 0

    def backward(self, attrs, saved, dy, wants):
        positive = saved
        grads = {}
        if "x" in wants:
            # NOTE: relu'(0) taken as 0
            grads["x"] = dy * positive
        return grads
