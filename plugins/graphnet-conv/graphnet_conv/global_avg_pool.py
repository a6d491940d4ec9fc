"""global_avg_pool: the mean of each channel of NCHW images."""

from __future__ import annotations

import numpy as np

from graphnet.op import Example, Op

from .geometry import image_shape, scalar


class GlobalAvgPool(Op):
    """Global average pooling: y[n, c] = (1 / (H W)) sum_{p, q} x[n, c, p, q], (N, C, H, W) -> (N, C).

    Gradient: dx[n, c, p, q] = dy[n, c] / (H W).
    """

    version = 1
    inputs = ("x",)

    def shape(self, attrs, x):
        channels, _, _ = image_shape("global_avg_pool", x)
        return (channels,)

    def forward(self, attrs, ctx, x):
        return x.mean(axis=(2, 3)), x.shape

    def backward(self, attrs, saved, dy, wants):
        x_shape = saved
        dx = np.empty(x_shape, dtype=dy.dtype)
        dx[...] = (dy * scalar(1.0 / (x_shape[2] * x_shape[3]), dy))[:, :, None, None]
        return {"x": dx}

    def onnx(self, attrs, b, inputs, params):
        # GlobalAveragePool keeps the spatial axes as 1 x 1: flatten them away
        return b.node("Flatten", [b.node("GlobalAveragePool", [inputs["x"]])], {"axis": 1})

    def examples(self, rng):
        shapes = [(3, 4, 5, 3), (2, 1, 1, 1), (2, 3, 2, 7)]
        return [Example(inputs={"x": rng.standard_normal(shape)}) for shape in shapes]
