"""linear: y = x @ W + b."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from ..errors import ShapeError
from ..op import MAX_DIM, Example, Op, OpAttrs, Param


class LinearAttrs(OpAttrs):
    units: int = Field(gt=0, le=MAX_DIM, description="number of output features")
    bias: bool = Field(True, description="add a learned bias b")
    in_features: int | None = Field(
        None, gt=0, le=MAX_DIM, description="expected input features; checked when the spec loads"
    )
    init: Literal["he_normal", "glorot_uniform", "lecun_normal", "zeros"] = Field(
        "he_normal", description="initializer of W (b starts at zero)"
    )


class Linear(Op):
    """Fully connected layer: y = x W + b, x of shape (N, in), W (in, units), b (units,).

    Gradients (the original from-scratch implementation's derivation, batched):
    dW = x^T dy, db = sum over the batch of dy, dx = dy W^T.
    """

    version = 1
    inputs = ("x",)
    Attrs = LinearAttrs
    params = (
        Param("w", shape=lambda attrs, shapes: (shapes["x"][-1], attrs.units),
              init=lambda attrs: attrs.init),
        Param("b", shape=lambda attrs, shapes: (attrs.units,), init="zeros",
              enabled=lambda attrs: attrs.bias, decay=False),
    )

    def shape(self, attrs, x):
        if len(x) != 1:
            raise ShapeError(
                f"input x has per-sample shape {list(x)}, linear needs a vector",
                hint="put a flatten node before it",
            )
        if attrs.in_features is not None and x[0] != attrs.in_features:
            raise ShapeError(
                f"input x has {x[0]} features, weight expects {attrs.in_features}",
                hint=f"set in_features to {x[0]} or fix the layer feeding it",
            )
        return (attrs.units,)

    def forward(self, attrs, ctx, x, w, b=None):
        y = x @ w
        if b is not None:
            y += b
        return y, (x, w)

    def backward(self, attrs, saved, dy, wants, out=None):
        x, w = saved
        out = out or {}
        grads = {}
        if "w" in wants:  # straight into the model's gradient buffer when there is one
            grads["w"] = np.matmul(x.T, dy, out=out.get("w"))
        if "b" in wants:
            grads["b"] = np.add.reduce(dy, axis=0, out=out.get("b"))
        if "x" in wants:
            grads["x"] = dy @ w.T
        return grads

    def onnx(self, attrs, b, inputs, params):
        # Gemm: x W (+ b); x is (N, in) since linear takes one vector per sample
        return b.node("Gemm", [inputs["x"], params["w"]] + ([params["b"]] if "b" in params else []))

    def examples(self, rng):
        x = rng.standard_normal((4, 5))
        return [
            Example(attrs={"units": 3}, inputs={"x": x}),
            Example(attrs={"units": 2, "bias": False}, inputs={"x": x}),
        ]
