"""leaky_relu: y = x if x > 0 else negative_slope * x."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ..op import Op, OpAttrs


class LeakyReluAttrs(OpAttrs):
    negative_slope: float = Field(0.01, ge=0, description="slope of the function for x <= 0")


class LeakyRelu(Op):
    """Leaky rectified linear unit: y = x if x > 0 else negative_slope * x, elementwise.

    Gradient: dx = dy where x > 0, else negative_slope * dy.
    """

    version = 1
    inputs = ("x",)
    Attrs = LeakyReluAttrs
    example = {"attrs": {"negative_slope": 0.1}, "inputs": {"x": (3, 4)}}

    def shape(self, attrs, x):
        return tuple(x)

    def forward(self, attrs, ctx, x):
        positive = x > 0
        slope = x.dtype.type(attrs.negative_slope)
        return np.where(positive, x, slope * x), positive

    def backward(self, attrs, saved, dy, wants):
        positive = saved
        grads = {}
        if "x" in wants:
            # NOTE: the derivative at 0 is taken as negative_slope
            slope = dy.dtype.type(attrs.negative_slope)
            grads["x"] = np.where(positive, dy, slope * dy)
        return grads
