"""swish: y = x * sigmoid(beta * x)."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from graphnet.op import Elementwise, Example, OpAttrs


class SwishAttrs(OpAttrs):
    beta: float = Field(1.0, gt=0, description="slope of the sigmoid gate")


class Swish(Elementwise):
    """Swish activation (Ramachandran et al. 2017): y = x * s, s = sigmoid(beta * x).

    dy/dx = s + beta * x * s * (1 - s).
    """

    Attrs = SwishAttrs

    def forward(self, attrs, ctx, x):
        # stable sigmoid: exp of a non-positive number only
        z = x.dtype.type(attrs.beta) * x
        e = np.exp(-np.abs(z))
        s = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
        return x * s, (x, s)

    def backward(self, attrs, saved, dy):
        x, s = saved
        beta = dy.dtype.type(attrs.beta)
        return {"x": dy * (s + beta * x * s * (1 - s))}

    def onnx(self, attrs, b, inputs, params):
        # Optional: lets `graphnet convert MODEL model.onnx` export specs that use swish.
        x = inputs["x"]
        gate = b.node("Sigmoid", [b.node("Mul", [x, b.constant(attrs.beta)])])
        return b.node("Mul", [x, gate])

    def examples(self, rng):
        # the default cases (beta = 1) and a beta that a gradient forgetting it would fail
        x = rng.standard_normal((4, 6))
        return super().examples(rng) + [Example(attrs={"beta": 1.5}, inputs={"x": x})]
