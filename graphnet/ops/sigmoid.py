"""sigmoid: y = 1 / (1 + exp(-x))."""

from __future__ import annotations

import numpy as np

from ..op import Op, OpAttrs


class SigmoidAttrs(OpAttrs):
    """sigmoid takes no attributes."""


class Sigmoid(Op):
    """Logistic sigmoid: y = s(x) = 1 / (1 + exp(-x)), elementwise.

    Computed from e = exp(-|x|), which never overflows: s = 1 / (1 + e) for x >= 0 and
    s = e / (1 + e) for x < 0. Gradient: dx = dy * s * (1 - s).
    """

    version = 1
    inputs = ("x",)
    Attrs = SigmoidAttrs
    example = {"attrs": {}, "inputs": {"x": (3, 4)}}

    def shape(self, attrs, x):
        return tuple(x)

    def forward(self, attrs, ctx, x):
        e = np.exp(-np.abs(x))
        s = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return s, s

    def backward(self, attrs, saved, dy, wants):
        s = saved
        grads = {}
        if "x" in wants:
            grads["x"] = dy * s * (1 - s)
        return grads
