"""sigmoid: y = 1 / (1 + exp(-x))."""

from __future__ import annotations

import numpy as np

from ..op import Elementwise


class Sigmoid(Elementwise):
    """Logistic sigmoid: y = s(x) = 1 / (1 + exp(-x)), elementwise.

    Computed from e = exp(-|x|), which never overflows: s = 1 / (1 + e) for x >= 0 and
    s = e / (1 + e) for x < 0. Gradient: dx = dy * s * (1 - s).
    """

    def forward(self, attrs, ctx, x):
        e = np.exp(-np.abs(x))
        s = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return s, s

    def backward(self, attrs, saved, dy):
        grad = 1 - saved  # one new array, worked on in place: (1 - s) s dy
        grad *= saved
        grad *= dy
        return {"x": grad}

    def onnx(self, attrs, b, inputs, params):
        return b.node("Sigmoid", [inputs["x"]])
