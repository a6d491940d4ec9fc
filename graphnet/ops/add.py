"""add: y = a + b."""

from __future__ import annotations

from ..errors import ShapeError
from ..op import Op


class Add(Op):
    """Elementwise sum of two inputs of the same shape: y = a + b (no broadcasting).

    Gradients: da = dy, db = dy.
    """

    version = 1
    inputs = ("a", "b")

    def shape(self, attrs, a, b):
        if tuple(a) != tuple(b):
            raise ShapeError(
                f"input a has per-sample shape {list(a)}, input b has {list(b)}; "
                "add needs equal shapes",
                hint="add a linear or reshape node so both inputs have the same shape",
            )
        return tuple(a)

    def forward(self, attrs, ctx, a, b):
        return a + b, None

    def backward(self, attrs, saved, dy, wants):
        grads = {}
        if "a" in wants:
            grads["a"] = dy
        if "b" in wants:
            grads["b"] = dy
        return grads

    def onnx(self, attrs, b, inputs, params):
        return b.node("Add", [inputs["a"], inputs["b"]])
