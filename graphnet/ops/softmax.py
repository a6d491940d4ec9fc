"""softmax: y = exp(x) / sum(exp(x)) over the last axis."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from ..errors import ShapeError
from ..op import Op, OpAttrs


class SoftmaxAttrs(OpAttrs):
    axis: Literal[-1] = Field(-1, description="axis normalized over; only the last axis (-1)")


class Softmax(Op):
    """Softmax over the last axis: s_i = exp(x_i - max(x)) / sum_j exp(x_j - max(x)).

    Subtracting the row maximum first keeps exp from overflowing (the result is unchanged).
    Gradient: dx = s * (dy - sum_j(dy_j * s_j)), the sum over the last axis.
    """

    version = 1
    inputs = ("x",)
    Attrs = SoftmaxAttrs

    def shape(self, attrs, x):
        if len(x) == 0:
            raise ShapeError(
                "input x is a scalar per sample, softmax needs an axis to normalize over",
                hint="feed it a vector of class scores per sample",
            )
        return tuple(x)

    def forward(self, attrs, ctx, x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        s = e / e.sum(axis=-1, keepdims=True)
        return s, s

    def backward(self, attrs, saved, dy, wants):
        s = saved
        grads = {}
        if "x" in wants:
            grads["x"] = s * (dy - (dy * s).sum(axis=-1, keepdims=True))
        return grads

    def onnx(self, attrs, b, inputs, params):
        return b.node("Softmax", [inputs["x"]], {"axis": -1})
