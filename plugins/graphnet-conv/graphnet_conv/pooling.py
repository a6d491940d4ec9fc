"""What max_pool2d and avg_pool2d share: their attributes and their window.

Both follow PyTorch's rules: the stride defaults to the kernel, padding is at most half the
kernel (so every window holds at least one input element), no dilation, and windows that would
run past the padded image are dropped (floor, not ceil).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from graphnet.op import OpAttrs

from .geometry import Padding, Size, Window, crop, each_tap, image_shape, pad, pair, symmetric_pads, tap


class PoolAttrs(OpAttrs):
    kernel: Size = Field(description="window size: an int or [height, width]")
    stride: Size | None = Field(
        None, description="step between windows: an int or [height, width]; default: the kernel"
    )
    padding: Padding = Field(
        0, description="added on each side: an int or [height, width], at most half the kernel"
    )

    @model_validator(mode="after")
    def _padding_at_most_half_the_kernel(self) -> "PoolAttrs":
        kernel, padding = pair(self.kernel), pair(self.padding)
        if any(p > k // 2 for p, k in zip(padding, kernel)):
            raise PydanticCustomError(
                "pool_padding",
                "padding {padding} is more than half of kernel {kernel}, so a window could hold "
                "padding only; use a padding of at most half the kernel",
                {"padding": self.padding, "kernel": self.kernel},
            )
        return self

    def window(self) -> Window:
        kernel = pair(self.kernel)
        stride = kernel if self.stride is None else pair(self.stride)
        return Window(kernel, stride, (1, 1), symmetric_pads(self.padding))


def pool_shape(op: str, attrs: PoolAttrs, x) -> tuple[int, int, int]:
    """(C, OH, OW) of a pooling op; ShapeError when x is not an image or a window does not fit."""
    channels, height, width = image_shape(op, x)
    return (channels, *attrs.window().output_size(height, width))


def gather_taps(x: np.ndarray, window: Window, out: tuple[int, int], fill: float) -> np.ndarray:
    """The windows of x (N, C, H, W) padded with ``fill``, one tap per row: (kh * kw, N, C, OH, OW).

    One copy; afterwards every tap is a contiguous block, and reducing over the taps (axis 0) runs
    at full speed where working on strided views of x would not."""
    n, c = x.shape[:2]
    (sh, sw), (oh, ow) = window.stride, out
    views = sliding_window_view(pad(x, window.pads, fill), window.kernel, axis=(2, 3))
    views = views[:, :, : sh * (oh - 1) + 1 : sh, : sw * (ow - 1) + 1 : sw]  # (N, C, OH, OW, kh, kw)
    return np.ascontiguousarray(views.transpose(4, 5, 0, 1, 2, 3)).reshape(window.taps, n, c, oh, ow)


def scatter_taps(
    d_taps: np.ndarray, window: Window, x_shape: tuple[int, ...], out: tuple[int, int]
) -> np.ndarray:
    """The inverse of :func:`gather_taps` for gradients: each tap's block (kh * kw, N, C, OH, OW)
    goes back where it was read from, added up where windows overlap; returns dx (N, C, H, W).

    Tap by tap: each copy then runs along whole output rows (one 6-D copy would run along the
    kw taps of a window, a few numbers at a time, and was 5x slower)."""
    n, c, h, w = x_shape
    top, bottom, left, right = window.pads
    padded = np.zeros((n, c, h + top + bottom, w + left + right), dtype=d_taps.dtype)
    overlap = any(s < k for s, k in zip(window.stride, window.kernel))
    for index, i, j in each_tap(window):
        region = tap(padded, window, i, j, out)
        if overlap:
            region += d_taps[index]
        else:  # no element is in two windows
            region[...] = d_taps[index]
    return crop(padded, window.pads)


# Test cases shared by both pooling ops: odd sizes (the last row or column dropped), overlapping
# windows with padding, rectangular windows with their own strides, a window as large as the input.
POOL_CASES = [
    ({"kernel": 2}, (2, 3, 5, 7)),
    ({"kernel": 3, "stride": 2, "padding": 1}, (2, 2, 7, 6)),
    ({"kernel": [2, 3], "stride": [1, 2], "padding": [1, 0]}, (1, 2, 5, 7)),
    ({"kernel": [4, 3]}, (3, 2, 4, 3)),
]
