"""bias_add: y = x + b."""

from __future__ import annotations

from ..errors import ShapeError
from ..op import Example, Op, Param


class BiasAdd(Op):
    """Adds a learned bias along the last axis: y = x + b, b of shape (features,).

    b is broadcast over the batch and every other axis of x. Gradients:
    dx = dy, db = sum of dy over every axis but the last.
    """

    version = 1
    inputs = ("x",)
    params = (
        Param("b", shape=lambda attrs, shapes: (shapes["x"][-1],), init="zeros", decay=False),
    )

    def shape(self, attrs, x):
        if len(x) == 0:
            raise ShapeError(
                "input x is a scalar per sample, bias_add needs a features axis",
                hint="feed it a vector (or larger) per sample",
            )
        return tuple(x)

    def forward(self, attrs, ctx, x, b):
        return x + b, x.ndim

    def backward(self, attrs, saved, dy, wants):
        ndim = saved
        grads = {}
        if "b" in wants:
            grads["b"] = dy.sum(axis=tuple(range(ndim - 1)))
        if "x" in wants:
            grads["x"] = dy
        return grads

    def onnx(self, attrs, b, inputs, params):
        return b.node("Add", [inputs["x"], params["b"]])  # ONNX broadcasts b along the last axis

    def examples(self, rng):
        return [Example(inputs={"x": rng.standard_normal((3, 2, 4))})]  # b broadcast over two axes
