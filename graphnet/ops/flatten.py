"""flatten: per-sample shape (a, b, ...) -> (a * b * ...,)."""

from __future__ import annotations

import math

from ..op import Example, Op


class Flatten(Op):
    """Flattens each sample to a vector: (N, a, b, ...) -> (N, a * b * ...), in C order.

    Gradient: dx = dy reshaped back to x's shape.
    """

    version = 1
    inputs = ("x",)

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

    def onnx(self, attrs, b, inputs, params):
        return b.node("Flatten", [inputs["x"]], {"axis": 1})

    def examples(self, rng):
        return [Example(inputs={"x": rng.standard_normal((3, 2, 4))})]
