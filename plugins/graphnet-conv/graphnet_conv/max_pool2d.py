"""max_pool2d: the largest value of each window of NCHW images."""

from __future__ import annotations

import numpy as np

from graphnet.op import Example, Op

from .pooling import POOL_CASES, PoolAttrs, gather_taps, pool_shape, scatter_taps


def first_max_tap(taps: np.ndarray, best: np.ndarray) -> np.ndarray:
    """For each window, the index of the first tap (row-major) holding its maximum ``best``."""
    source = np.zeros(best.shape, dtype=np.min_scalar_type(len(taps) - 1))
    found = taps[0] == best
    for index in range(1, len(taps)):
        hit = taps[index] == best
        hit &= ~found  # an earlier tap with the same value wins the tie
        found |= hit
        source += hit * source.dtype.type(index)
    return source


class MaxPool2d(Op):
    """Max pooling: y[n, c, p, q] = max_{i, j} xpad[n, c, p*sh + i, q*sw + j], x (N, C, H, W).

    The padding is -inf (never the maximum: a window holds at least one input element). The
    gradient goes to the element each maximum came from: dx = dy there, 0 elsewhere, added up
    where windows overlap. Ties go to the first tap in row-major order (as in PyTorch).

    Computed on the windows gathered tap by tap (one copy): the maximum over the taps, and the
    index of the tap it came from, which backward uses to route dy.
    """

    version = 1
    inputs = ("x",)
    Attrs = PoolAttrs

    def shape(self, attrs, x):
        return pool_shape("max_pool2d", attrs, x)

    def forward(self, attrs, ctx, x):
        window = attrs.window()
        out = window.output_size(*x.shape[2:])
        taps = gather_taps(x, window, out, -np.inf)
        best = taps.max(axis=0)
        return best, (first_max_tap(taps, best), x.shape, out, window)

    def backward(self, attrs, saved, dy, wants):
        source, x_shape, out, window = saved
        d_taps = np.empty((window.taps, *dy.shape), dtype=dy.dtype)
        for index in range(window.taps):
            np.multiply(dy, source == index, out=d_taps[index])
        return {"x": scatter_taps(d_taps, window, x_shape, out)}

    def onnx(self, attrs, b, inputs, params):
        window = attrs.window()
        top, bottom, left, right = window.pads
        return b.node("MaxPool", [inputs["x"]], {
            "kernel_shape": list(window.kernel),
            "strides": list(window.stride),
            "pads": [top, left, bottom, right],
        })

    def examples(self, rng):
        return [Example(attrs=attrs, inputs={"x": rng.standard_normal(shape)}) for attrs, shape in POOL_CASES]
