"""Sliding-window geometry shared by conv2d and the pooling ops.

Images are NCHW: a batch of arrays (N, C, H, W); per sample (C, H, W). A window op slides a
kernel of (kh, kw) taps over the padded image:

- ``stride`` (sh, sw): step between two windows;
- ``dilation`` (dh, dw): step between two taps of one window, so a window spans
  ``d * (k - 1) + 1`` rows (its *span*);
- ``pads`` (top, bottom, left, right): rows and columns added around the image (zeros for conv
  and average pooling, -inf for max pooling).

Output size along one axis, as in PyTorch and ONNX (windows that would run past the padded
image are dropped): ``(size + pad_before + pad_after - span) // stride + 1``.

The ops compute with one loop over the kh * kw taps at most (never over examples or pixels):
``tap(padded, window, i, j, out)`` is the strided view holding, for every output position, the
input element under tap (i, j) of its window.

The attribute types below accept an int (the same for height and width) or a list
``[height, width]``, and report a bad value in one message instead of pydantic's two (one per
branch of the union).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

from graphnet.errors import ShapeError
from graphnet.op import MAX_DIM

Pair = tuple[int, int]


# ----------------------------------------------------------------------------------------------
# Attribute types: an int or [height, width]
# ----------------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_or_pair(low: int, extra: tuple[str, ...] = ()):
    """A before-validator accepting an int in [low, MAX_DIM], a list of two such ints, or one of
    the strings in ``extra``; anything else is one error saying what is accepted."""
    words = " or ".join(f"'{word}'" for word in extra)
    accepted = f"an integer from {low} to {MAX_DIM:,} or a list [height, width] of two" + (
        f", or {words}" if extra else ""
    )

    def check(value: Any) -> Any:
        if isinstance(value, str) and value in extra:
            return value
        items = value if isinstance(value, (list, tuple)) else [value]
        if isinstance(value, (list, tuple)) and len(value) != 2:
            raise PydanticCustomError("int_or_pair", f"must be {accepted}")
        if not all(_is_int(item) and low <= item <= MAX_DIM for item in items):
            raise PydanticCustomError("int_or_pair", f"must be {accepted}")
        return list(value) if isinstance(value, tuple) else value

    return BeforeValidator(check)


_Positive = Annotated[int, Field(ge=1, le=MAX_DIM)]
_NonNegative = Annotated[int, Field(ge=0, le=MAX_DIM)]

# kernel, stride, dilation: >= 1
Size = Annotated[
    _Positive | Annotated[list[_Positive], Field(min_length=2, max_length=2)], _int_or_pair(1)
]
# pooling padding: >= 0
Padding = Annotated[
    _NonNegative | Annotated[list[_NonNegative], Field(min_length=2, max_length=2)], _int_or_pair(0)
]
# conv2d padding: also "same" (output size = input size, stride 1) and "valid" (no padding)
ConvPadding = Annotated[
    _NonNegative
    | Annotated[list[_NonNegative], Field(min_length=2, max_length=2)]
    | Literal["same", "valid"],
    _int_or_pair(0, ("same", "valid")),
]


def pair(value: int | list[int]) -> Pair:
    """(height, width) from an int or a [height, width] list."""
    if isinstance(value, int):
        return (value, value)
    return (int(value[0]), int(value[1]))


def same_pads(kernel: Pair, dilation: Pair) -> tuple[int, int, int, int]:
    """Padding that keeps the size at stride 1: d * (k - 1) per axis, split in two halves, the
    odd one more at the bottom / right (PyTorch's padding='same', ONNX's SAME_UPPER)."""
    pads = []
    for k, d in zip(kernel, dilation):
        total = d * (k - 1)
        pads.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = pads
    return (top, bottom, left, right)


def symmetric_pads(padding: int | list[int]) -> tuple[int, int, int, int]:
    ph, pw = pair(padding)
    return (ph, ph, pw, pw)


# ----------------------------------------------------------------------------------------------
# The window and its shape rule
# ----------------------------------------------------------------------------------------------


def image_shape(op: str, x: Any) -> tuple[int, int, int]:
    """(C, H, W) from a per-sample shape, or a ShapeError saying how to get images."""
    shape = tuple(int(size) for size in x)
    if len(shape) == 3:
        return shape  # type: ignore[return-value]
    side = math.isqrt(shape[0]) if len(shape) == 1 else 0
    if len(shape) == 1 and side * side == shape[0]:
        hint = f"put a reshape node before it: {{op: reshape, attrs: {{shape: [1, {side}, {side}]}}}}"
    elif len(shape) == 2:
        hint = f"put a reshape node before it: {{op: reshape, attrs: {{shape: [1, {shape[0]}, {shape[1]}]}}}}"
    else:
        hint = "feed it images of per-sample shape [channels, height, width]"
    raise ShapeError(
        f"input x has per-sample shape {list(shape)}, {op} needs [channels, height, width]",
        hint=hint,
    )


@dataclass(frozen=True)
class Window:
    """Kernel, stride, dilation and padding of one window op (see the module docstring)."""

    kernel: Pair
    stride: Pair
    dilation: Pair
    pads: tuple[int, int, int, int]  # top, bottom, left, right

    @property
    def span(self) -> Pair:
        """Rows and columns one window covers, dilation included."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation))  # type: ignore

    @property
    def taps(self) -> int:
        return self.kernel[0] * self.kernel[1]

    def output_size(self, height: int, width: int) -> Pair:
        """(OH, OW), or a ShapeError naming the axes and the numbers when a window does not fit
        in the padded input."""
        sizes, misfits = [], []
        for axis, (name, size) in enumerate((("height", height), ("width", width))):
            room = size + self.pads[2 * axis] + self.pads[2 * axis + 1]
            if self.span[axis] > room:
                misfits.append((axis, name, size, room))
            else:
                sizes.append((room - self.span[axis]) // self.stride[axis] + 1)
        if misfits:
            raise self._misfit_error(misfits)
        return sizes[0], sizes[1]

    def _axis(self, axis: int) -> tuple[int, int, int, int]:
        return self.kernel[axis], self.dilation[axis], self.pads[2 * axis], self.pads[2 * axis + 1]

    def _misfit_error(self, misfits: list[tuple[int, str, int, int]]) -> ShapeError:
        """The error for the axes where the window does not fit, and what would make it fit:
        ``kernel 5 with padding 0 does not fit input height 3``; both axes in one sentence when
        their numbers are the same."""
        if len(misfits) == 2 and self._axis(0) == self._axis(1):
            (axis, _, height, room), (_, _, width, _) = misfits
            fits = f"height {height} and width {width}" if height != width else f"height and width {height}"
            return ShapeError(f"{self._window_text(axis)} does not fit input {fits}",
                              hint=self._fixes(axis, height, room))
        messages = [
            f"{self._window_text(axis)} does not fit input {name} {size}" for axis, name, size, _ in misfits
        ]
        hints = [f"for the {name}: {self._fixes(axis, size, room)}" for axis, name, size, room in misfits]
        return ShapeError("; ".join(messages), hint="; ".join(hints))

    def _window_text(self, axis: int) -> str:
        kernel, dilation, before, after = self._axis(axis)
        padding = f"{before}" if before == after else f"{before}+{after}"
        spanned = f" and dilation {dilation} (a span of {self.span[axis]})" if dilation > 1 else ""
        return f"kernel {kernel}{spanned} with padding {padding}"

    def _fixes(self, axis: int, size: int, room: int) -> str:
        """What would make the window fit along one axis."""
        largest = (room - 1) // self.dilation[axis] + 1
        need = -(-(self.span[axis] - size) // 2)  # padding on each side that would make room
        # (always allowed for pooling too: a kernel k fits any size >= 1 with k // 2 on each side)
        return f"use a kernel of at most {largest}, padding of at least {need} on each side or a larger input"


# ----------------------------------------------------------------------------------------------
# Arrays
# ----------------------------------------------------------------------------------------------


def pad(x: np.ndarray, pads: tuple[int, int, int, int], fill: float = 0.0) -> np.ndarray:
    """x (N, C, H, W) with ``pads`` rows/columns of ``fill`` around each image; x itself when
    there is no padding (callers never write into it)."""
    top, bottom, left, right = pads
    if not any(pads):
        return x
    n, c, h, w = x.shape
    out = np.full((n, c, h + top + bottom, w + left + right), fill, dtype=x.dtype)
    out[:, :, top : top + h, left : left + w] = x
    return out


def crop(padded: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    """The inverse of :func:`pad` (a contiguous array)."""
    top, bottom, left, right = pads
    if not any(pads):
        return padded
    h, w = padded.shape[-2] - top - bottom, padded.shape[-1] - left - right
    return np.ascontiguousarray(padded[..., top : top + h, left : left + w])


def tap(padded: np.ndarray, window: Window, i: int, j: int, out: Pair, axes: Pair = (-2, -1)) -> np.ndarray:
    """View of ``padded`` whose height and width (the ``axes``, by default the last two) are
    replaced by (OH, OW): at each output position, the element under tap (i, j) of its window.
    Writing into it writes into ``padded``."""
    (sh, sw), (dh, dw) = window.stride, window.dilation
    index = [slice(None)] * padded.ndim
    index[axes[0]] = slice(i * dh, i * dh + sh * (out[0] - 1) + 1, sh)
    index[axes[1]] = slice(j * dw, j * dw + sw * (out[1] - 1) + 1, sw)
    return padded[tuple(index)]


def each_tap(window: Window):
    """(index, i, j) for every tap, in row-major order (the order max pooling breaks ties in)."""
    for i in range(window.kernel[0]):
        for j in range(window.kernel[1]):
            yield i * window.kernel[1] + j, i, j


def scalar(value: float, like: np.ndarray) -> np.ndarray:
    """``value`` as a 0-d array of ``like``'s dtype, so float32 stays float32."""
    return np.asarray(value, dtype=like.dtype)
