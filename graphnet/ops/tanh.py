"""tanh: y = tanh(x)."""

from __future__ import annotations

import numpy as np

from ..op import Op, OpAttrs


class TanhAttrs(OpAttrs):
    """tanh takes no attributes."""


class Tanh(Op):
    """Hyperbolic tangent: y = tanh(x), elementwise.

    Gradient: dx = dy * (1 - y^2).
    """

    version = 1
    inputs = ("x",)
    Attrs = TanhAttrs
    example = {"attrs": {}, "inputs": {"x": (3, 4)}}

    def shape(self, attrs, x):
        return tuple(x)

    def forward(self, attrs, ctx, x):
        y = np.tanh(x)
        return y, y

    def backward(self, attrs, saved, dy, wants):
        y = saved
        grads = {}
        if "x" in wants:
            grads["x"] = dy * (1 - y * y)
        return grads
