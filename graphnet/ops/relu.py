"""relu: y = max(x, 0)."""

from __future__ import annotations

import numpy as np

from ..op import Elementwise


class Relu(Elementwise):
    """Rectified linear unit: y = max(x, 0), elementwise.

    Gradient: dx = dy where x > 0, else 0 (relu'(0) taken as 0).
    """

    def forward(self, attrs, ctx, x):
        return np.maximum(x, 0), x > 0

    def backward(self, attrs, saved, dy):
        return {"x": dy * saved}

    def onnx(self, attrs, b, inputs, params):
        return b.node("Relu", [inputs["x"]])
