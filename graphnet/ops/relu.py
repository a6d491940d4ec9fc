"""relu: y = max(x, 0)."""

from __future__ import annotations

import numpy as np

from ..op import Elementwise


class Relu(Elementwise):
    """Rectified linear unit: y = max(x, 0), elementwise.

    Gradient: dx = dy where x > 0, else 0 (relu'(0) taken as 0).
    """

    def forward(self, attrs, ctx, x):
        # training keeps the mask for backward; evaluation (which rarely backpropagates) keeps
        # x itself, and backward derives the mask from it only if asked: one pass less
        return np.maximum(x, 0), (x > 0 if ctx.training else x)

    def backward(self, attrs, saved, dy):
        mask = saved if saved.dtype == np.bool_ else saved > 0
        return {"x": dy * mask}

    def onnx(self, attrs, b, inputs, params):
        return b.node("Relu", [inputs["x"]])
