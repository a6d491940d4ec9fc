"""swish: y = x * sigmoid(beta * x)."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from graphnet.op import Op, OpAttrs


class SwishAttrs(OpAttrs):
    beta: float = Field(1.0, gt=0, description="slope of the sigmoid gate")


class Swish(Op):
    """Swish activation (Ramachandran et al. 2017): y = x * s, s = sigmoid(beta * x).

    dy/dx = s + beta * x * s * (1 - s).
    """

    version = 1
    inputs = ("x",)
    Attrs = SwishAttrs
    example = {"attrs": {"beta": 1.5}, "inputs": {"x": (4, 6)}}

    def shape(self, attrs, x):
        return x

    def forward(self, attrs, ctx, x):
        # stable sigmoid: exp of a non-positive number only
        z = attrs.beta * x
        e = np.exp(-np.abs(z))
        s = np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        return x * s, (x, s)

    def backward(self, attrs, saved, dy, wants):
        x, s = saved
        return {"x": dy * (s + attrs.beta * x * s * (1 - s))}
