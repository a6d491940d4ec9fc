"""conv2d: 2-D convolution of NCHW images, by im2col and one matrix product."""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from graphnet.errors import ShapeError
from graphnet.op import MAX_DIM, Example, Op, OpAttrs, Param, channels_first_fans

from .geometry import ConvPadding, Size, Window, each_tap, image_shape, pair, same_pads, symmetric_pads, tap


class Conv2dAttrs(OpAttrs):
    channels: int = Field(gt=0, le=MAX_DIM, description="output channels (the number of filters)")
    kernel: Size = Field(description="kernel size: an int or [height, width]")
    stride: Size = Field(1, description="step between windows: an int or [height, width]")
    padding: ConvPadding = Field(
        0,
        description="zeros added on each side: an int, [height, width], 'valid' (none) or 'same' "
        "(output size = input size; stride 1 only; an odd total goes to the bottom/right)",
    )
    dilation: Size = Field(1, description="step between kernel taps: an int or [height, width]")
    bias: bool = Field(True, description="add a learned bias b per output channel")
    in_channels: int | None = Field(
        None, gt=0, le=MAX_DIM, description="expected input channels; checked when the spec loads"
    )
    init: Literal["he_normal", "glorot_uniform", "lecun_normal", "zeros"] = Field(
        "he_normal",
        description="initializer of w, with fan_in = in_channels * kh * kw (b starts at zero)",
    )

    @model_validator(mode="after")
    def _same_needs_stride_one(self) -> "Conv2dAttrs":
        if self.padding == "same" and pair(self.stride) != (1, 1):
            raise PydanticCustomError(
                "same_padding_stride",
                "padding 'same' needs stride 1 (with stride {stride} the output is smaller than "
                "the input); give the padding as numbers instead",
                {"stride": self.stride},
            )
        return self

    def window(self) -> Window:
        kernel, dilation = pair(self.kernel), pair(self.dilation)
        if self.padding == "same":
            pads = same_pads(kernel, dilation)
        elif self.padding == "valid":
            pads = (0, 0, 0, 0)
        else:
            pads = symmetric_pads(self.padding)
        return Window(kernel, pair(self.stride), dilation, pads)


# ----------------------------------------------------------------------------------------------
# im2col and col2im
# ----------------------------------------------------------------------------------------------


def im2col(x: np.ndarray, window: Window, out: tuple[int, int]) -> np.ndarray:
    """The windows of x (N, C, H, W) as rows: (N * OH * OW, kh * kw * C), columns ordered
    (tap row, tap column, channel).

    The image is first copied channels-last and padded, so that one window row (kw taps of C
    channels) is a contiguous run in memory when dilation is 1: the copy into rows then moves
    runs of kw * C numbers instead of single ones."""
    n, c, h, w = x.shape
    top, bottom, left, right = window.pads
    padded = np.zeros((n, h + top + bottom, w + left + right, c), dtype=x.dtype)
    padded[:, top : top + h, left : left + w, :] = x.transpose(0, 2, 3, 1)
    (sh, sw), (dh, dw) = window.stride, window.dilation
    views = sliding_window_view(padded, window.span, axis=(1, 2))  # (N, H', W', C, span_h, span_w)
    views = views[:, : sh * (out[0] - 1) + 1 : sh, : sw * (out[1] - 1) + 1 : sw, :, ::dh, ::dw]
    rows = np.ascontiguousarray(views.transpose(0, 1, 2, 4, 5, 3))  # (N, OH, OW, kh, kw, C)
    return rows.reshape(n * out[0] * out[1], window.taps * c)


def col2im(cols: np.ndarray, window: Window, x_shape: tuple[int, ...], out: tuple[int, int]) -> np.ndarray:
    """The gradient of x from the gradient of its windows: ``cols`` (kh * kw * C, OH * OW * N),
    rows ordered (tap row, tap column, channel), columns (OH, OW, N). Each tap's block is added
    where it was read from; windows overlap, so the taps are added one after the other (kh * kw
    whole-array adds).

    The batch axis comes last so that each add runs along OW * N contiguous numbers (with
    stride 1; N otherwise): 3-4x faster than along rows of OW with the batch first (measured)."""
    n, c, h, w = x_shape
    top, bottom, left, right = window.pads
    taps = cols.reshape(window.kernel[0], window.kernel[1], c, out[0], out[1], n)
    padded = np.zeros((c, h + top + bottom, w + left + right, n), dtype=cols.dtype)  # (C, H, W, N)
    for _, i, j in each_tap(window):
        region = tap(padded, window, i, j, out, axes=(1, 2))
        region += taps[i, j]
    return np.ascontiguousarray(padded[:, top : top + h, left : left + w].transpose(3, 0, 1, 2))


# ----------------------------------------------------------------------------------------------
# The op
# ----------------------------------------------------------------------------------------------


class Conv2d(Op):
    """2-D convolution (cross-correlation, as in PyTorch and ONNX): x (N, C, H, W) -> (N, O, OH, OW).

    y[n, o, p, q] = b[o] + sum_{c, i, j} w[o, c, i, j] * xpad[n, c, p*sh + i*dh, q*sw + j*dw],
    w of shape (O, C, kh, kw), xpad the input with the padding (zeros) around it, and
    OH = (H + pad_top + pad_bottom - dh*(kh - 1) - 1) // sh + 1 (OW likewise).

    Computed as one matrix product: the windows of x as rows (im2col, (N*OH*OW, kh*kw*C)) times
    the kernel as a (kh*kw*C, O) matrix. Gradients, with dY the (O, N*OH*OW) matrix of dy:
    dw = dY cols, db = sum of dy over n, p, q, and dx = col2im(W dY), which adds each window's
    gradient back where the window was read from.
    """

    version = 1
    inputs = ("x",)
    Attrs = Conv2dAttrs
    params = (
        # he_normal & co. count fan_in = in_channels * kh * kw for this (out, in, kh, kw) layout
        Param("w", shape=lambda attrs, shapes: (attrs.channels, shapes["x"][0], *pair(attrs.kernel)),
              init=lambda attrs: attrs.init, fans=channels_first_fans),
        Param("b", shape=lambda attrs, shapes: (attrs.channels,), init="zeros",
              enabled=lambda attrs: attrs.bias, decay=False),
    )

    def shape(self, attrs, x):
        channels, height, width = image_shape("conv2d", x)
        if attrs.in_channels is not None and channels != attrs.in_channels:
            raise ShapeError(
                f"input x has {channels} channel{'s' if channels != 1 else ''}, weight expects "
                f"{attrs.in_channels}",
                hint=f"set in_channels to {channels} or fix the layer feeding it",
            )
        return (attrs.channels, *attrs.window().output_size(height, width))

    def forward(self, attrs, ctx, x, w, b=None):
        window = attrs.window()
        n, out_channels = x.shape[0], w.shape[0]
        out = window.output_size(*x.shape[2:])
        cols = im2col(x, window, out)
        kernel = w.transpose(2, 3, 1, 0).reshape(-1, out_channels)  # (kh*kw*C, O), im2col's order
        y = cols @ kernel  # (N*OH*OW, O)
        y = np.ascontiguousarray(y.reshape(n, -1, out_channels).transpose(0, 2, 1))
        y = y.reshape(n, out_channels, *out)
        if b is not None:
            y += b[:, None, None]
        return y, (cols, kernel, x.shape, out, window)

    def backward(self, attrs, saved, dy, wants):
        cols, kernel, x_shape, out, window = saved
        n, out_channels = dy.shape[:2]
        grads = {}
        if "w" in wants or "b" in wants:
            # dY as (O, N*OH*OW): the rows of cols are in that order
            d_out = np.ascontiguousarray(dy.reshape(n, out_channels, -1).transpose(1, 0, 2))
            d_out = d_out.reshape(out_channels, -1)
            if "w" in wants:
                dw = (d_out @ cols).reshape(out_channels, *window.kernel, x_shape[1])  # (O, kh, kw, C)
                grads["w"] = np.ascontiguousarray(dw.transpose(0, 3, 1, 2))
            if "b" in wants:
                grads["b"] = d_out.sum(axis=1)
        if "x" in wants:
            # dY as (O, OH*OW*N): col2im wants the batch last (see there)
            d_out = np.ascontiguousarray(dy.transpose(1, 2, 3, 0)).reshape(out_channels, -1)
            grads["x"] = col2im(kernel @ d_out, window, x_shape, out)
        return grads

    def onnx(self, attrs, b, inputs, params):
        window = attrs.window()
        top, bottom, left, right = window.pads
        operands = [inputs["x"], params["w"]] + ([params["b"]] if "b" in params else [])
        return b.node("Conv", operands, {
            "kernel_shape": list(window.kernel),
            "strides": list(window.stride),
            "dilations": list(window.dilation),
            "pads": [top, left, bottom, right],
        })

    def examples(self, rng):
        """Odd sizes, stride > 1, padding (symmetric, per axis and 'same' with an even kernel,
        which pads unevenly), dilation, no bias, a 1x1 kernel."""
        cases = [
            ({"channels": 3, "kernel": 3, "padding": 1}, (2, 2, 5, 6)),
            ({"channels": 2, "kernel": [3, 2], "stride": 2, "padding": [1, 0], "bias": False}, (2, 3, 7, 6)),
            ({"channels": 2, "kernel": 3, "stride": [1, 2], "dilation": 2, "padding": 2}, (1, 2, 7, 8)),
            ({"channels": 2, "kernel": [2, 4], "dilation": [2, 1], "padding": "same"}, (2, 1, 5, 5)),
            ({"channels": 4, "kernel": 1}, (3, 3, 2, 3)),
        ]
        return [Example(attrs=attrs, inputs={"x": rng.standard_normal(shape)}) for attrs, shape in cases]
