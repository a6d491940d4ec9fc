"""dropout: y = x * mask / (1 - rate) while training, y = x otherwise."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ..op import Example, Op, OpAttrs


class DropoutAttrs(OpAttrs):
    rate: float = Field(0.5, ge=0, lt=1, description="fraction of the elements dropped in training")


class Dropout(Op):
    """Inverted dropout: y = x * m / (1 - rate) while training, y = x in evaluation.

    m is drawn per element from the context's generator: m = 1 with probability 1 - rate, else 0.
    Scaling by 1 / (1 - rate) keeps the expectation of y equal to x, so evaluation needs no
    rescaling. Gradient: dx = dy * m / (1 - rate) in training, dy in evaluation.
    """

    version = 1
    inputs = ("x",)
    Attrs = DropoutAttrs

    def shape(self, attrs, x):
        return tuple(x)

    def forward(self, attrs, ctx, x):
        if not ctx.training:
            return x, None
        # uniform draws in the model's dtype (float32 draws take half the time of float64's)
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
        draws = ctx.rng.random(x.shape, dtype=dtype)
        scaled_mask = (draws >= attrs.rate).astype(x.dtype)
        scaled_mask *= x.dtype.type(1 / (1 - attrs.rate))
        return x * scaled_mask, scaled_mask

    def backward(self, attrs, saved, dy, wants):
        scaled_mask = saved
        grads = {}
        if "x" in wants:
            if scaled_mask is None:
                grads["x"] = dy
            else:
                grads["x"] = dy * scaled_mask
        return grads

    def onnx(self, attrs, b, inputs, params):
        return b.node("Identity", [inputs["x"]])  # an exported model only evaluates

    def examples(self, rng):
        return [
            Example(attrs={"rate": 0.3}, inputs={"x": rng.standard_normal((3, 4))}, training=True),
            Example(attrs={"rate": 0.3}, inputs={"x": rng.standard_normal((3, 4))}, training=False),
        ]
