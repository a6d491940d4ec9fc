"""avg_pool2d: the mean of each window of NCHW images."""

from __future__ import annotations

import numpy as np

from graphnet.op import Example, Op

from .geometry import scalar
from .pooling import POOL_CASES, PoolAttrs, gather_taps, pool_shape, scatter_taps


class AvgPool2d(Op):
    """Average pooling: y[n, c, p, q] = (1 / (kh kw)) sum_{i, j} xpad[n, c, p*sh + i, q*sw + j].

    The padding is zeros and counts in the mean: the divisor is always kh * kw (PyTorch's
    default count_include_pad=True, ONNX's count_include_pad=1). Gradient: each input element
    gets dy / (kh kw) from every window it is in.
    """

    version = 1
    inputs = ("x",)
    Attrs = PoolAttrs

    def shape(self, attrs, x):
        return pool_shape("avg_pool2d", attrs, x)

    def forward(self, attrs, ctx, x):
        window = attrs.window()
        out = window.output_size(*x.shape[2:])
        total = gather_taps(x, window, out, 0.0).sum(axis=0)
        total *= scalar(1.0 / window.taps, total)
        return total, (x.shape, out, window)

    def backward(self, attrs, saved, dy, wants):
        x_shape, out, window = saved
        share = dy * scalar(1.0 / window.taps, dy)
        d_taps = np.broadcast_to(share, (window.taps, *dy.shape))  # every tap gets the same share
        return {"x": scatter_taps(d_taps, window, x_shape, out)}

    def onnx(self, attrs, b, inputs, params):
        window = attrs.window()
        top, bottom, left, right = window.pads
        return b.node("AveragePool", [inputs["x"]], {
            "kernel_shape": list(window.kernel),
            "strides": list(window.stride),
            "pads": [top, left, bottom, right],
            "count_include_pad": 1,
        })

    def examples(self, rng):
        return [Example(attrs=attrs, inputs={"x": rng.standard_normal(shape)}) for attrs, shape in POOL_CASES]
