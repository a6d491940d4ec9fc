"""leaky_relu: y = x if x > 0 else negative_slope * x."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ..op import Elementwise, Example, OpAttrs


class LeakyReluAttrs(OpAttrs):
    negative_slope: float = Field(0.01, ge=0, description="slope of the function for x <= 0")


class LeakyRelu(Elementwise):
    """Leaky rectified linear unit: y = x if x > 0 else negative_slope * x, elementwise.

    Gradient: dx = dy where x > 0, else negative_slope * dy (the derivative at 0 is taken as
    negative_slope).
    """

    Attrs = LeakyReluAttrs

    def forward(self, attrs, ctx, x):
        positive = x > 0
        slope = x.dtype.type(attrs.negative_slope)
        return np.where(positive, x, slope * x), positive

    def backward(self, attrs, saved, dy):
        slope = dy.dtype.type(attrs.negative_slope)
        return {"x": np.where(saved, dy, slope * dy)}

    def onnx(self, attrs, b, inputs, params):
        return b.node("LeakyRelu", [inputs["x"]], {"alpha": attrs.negative_slope})

    def examples(self, rng):
        # a slope large enough that a wrong one shows
        return [Example(attrs={"negative_slope": 0.1}, inputs={"x": rng.standard_normal((3, 4))})]
