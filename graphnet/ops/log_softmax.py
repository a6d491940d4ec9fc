"""log_softmax: y = x - log(sum(exp(x))) over the last axis."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from ..errors import ShapeError
from ..op import Op, OpAttrs


class LogSoftmaxAttrs(OpAttrs):
    axis: Literal[-1] = Field(-1, description="axis normalized over; only the last axis (-1)")


class LogSoftmax(Op):
    """Log of the softmax over the last axis: y = (x - m) - log(sum_j exp(x_j - m)), m = max(x).

    Subtracting the row maximum m keeps exp from overflowing (the result is unchanged).
    Gradient: dx = dy - softmax(x) * sum_j(dy_j), the sum over the last axis.
    """

    version = 1
    inputs = ("x",)
    Attrs = LogSoftmaxAttrs

    def shape(self, attrs, x):
        if len(x) == 0:
            raise ShapeError(
                "input x is a scalar per sample, log_softmax needs an axis to normalize over",
                hint="feed it a vector of class scores per sample",
            )
        return tuple(x)

    def forward(self, attrs, ctx, x):
        shifted = x - x.max(axis=-1, keepdims=True)
        y = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        return y, y

    def backward(self, attrs, saved, dy, wants):
        y = saved
        grads = {}
        if "x" in wants:
            s = np.exp(y)
            grads["x"] = dy - s * dy.sum(axis=-1, keepdims=True)
        return grads

    def onnx(self, attrs, b, inputs, params):
        return b.node("LogSoftmax", [inputs["x"]], {"axis": -1})
