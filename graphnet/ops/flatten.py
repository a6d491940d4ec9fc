"""flatten: per-sample shape (a, b, ...) -> (a * b * ...,)."""

from __future__ import annotations

import math

from ..op import Op, OpAttrs


class FlattenAttrs(OpAttrs):
    """flatten takes no attributes."""


class Flatten(Op):
    """Flattens each sample to a vector: (N, a, b, ...) -> (N, a * b * ...), in C order.

    Gradient: dx = dy reshaped back to x's shape.
    """

    version = 1
    inputs = ("x",)
    Attrs = FlattenAttrs
    example = {"attrs": {}, "inputs": {"x": (3, 2, 4)}}

    def shape(self, attrs, x):
        return (math.prod(x),)

    def forward(self, attrs, ctx, x):
        return x.reshape(x.shape[0], math.prod(x.shape[1:])), x.shape

    def backward(self, attrs, saved, dy, wants):
        x_shape = saved
        grads = {}
        if "x" in wants:
            grads["x"] = dy.reshape(x_shape)
        return grads
