"""batch_norm: normalise each channel (or feature) over the batch, with running statistics."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from graphnet.errors import ShapeError
from graphnet.op import Example, Op, OpAttrs, Param, State


class BatchNormAttrs(OpAttrs):
    momentum: float = Field(
        0.1, gt=0, le=1,
        description="weight of the batch statistics in the running ones (PyTorch's convention: "
                    "running = (1 - momentum) * running + momentum * batch)",
    )
    eps: float = Field(1e-5, gt=0, description="added to the variance before the square root")
    affine: bool = Field(True, description="learn a scale gamma and a shift beta per channel")


def _channels(attrs, shapes) -> tuple[int]:
    return (shapes["x"][0],)


def _affine(attrs) -> bool:
    return attrs.affine


class BatchNorm(Op):
    """Batch normalisation (Ioffe & Szegedy 2015) over the channels of x (N, C, H, W) or the
    features of x (N, F): y = gamma * (x - mean) / sqrt(var + eps) + beta, per channel.

    Training uses the batch's statistics over every axis but the channel's (mean, and the biased
    variance, as PyTorch does) and moves the running statistics towards them:
    running = (1 - momentum) * running + momentum * batch, with the unbiased variance
    (times m / (m - 1), m the values per channel) for running_var. Evaluation uses the running
    statistics. Both are op state (``graphnet.op.State``): saved in model files, not trained.

    Gradients, xhat = (x - mean) / sqrt(var + eps) and m values per channel: in training
    dx = (m dxhat - sum(dxhat) - xhat sum(dxhat xhat)) / (m sqrt(var + eps)), dxhat = gamma dy
    (the batch statistics depend on x); in evaluation dx = gamma dy / sqrt(running_var + eps).
    dgamma = sum(dy xhat), dbeta = sum(dy), summed over the batch and the spatial axes.
    """

    version = 1
    inputs = ("x",)
    Attrs = BatchNormAttrs
    params = (
        Param("gamma", shape=_channels, init="ones", enabled=_affine, decay=False),
        Param("beta", shape=_channels, init="zeros", enabled=_affine, decay=False),
    )
    state = (
        State("running_mean", shape=_channels, init="zeros"),
        State("running_var", shape=_channels, init="ones"),
    )

    def shape(self, attrs, x):
        if len(x) < 1:
            raise ShapeError(
                "batch_norm needs per-sample inputs with a channel axis (C, H, W) or features "
                "(F,); received a scalar per sample",
                hint="feed it a layer's output, not a loss or a scalar input",
            )
        return tuple(x)

    def forward(self, attrs, ctx, x, gamma=None, beta=None):
        axes = (0, *range(2, x.ndim))  # every axis but the channel's
        shape = (1, -1) + (1,) * (x.ndim - 2)  # per-channel values broadcast against x
        if ctx.training:
            count = x.size // x.shape[1]
            if count < 2:
                raise ValueError(
                    f"training needs more than one value per channel, got a batch of {x.shape[0]} "
                    f"with per-sample shape {list(x.shape[1:])}")
            mean = x.mean(axis=axes)
            centred = x - mean.reshape(shape)
            var = np.square(centred).mean(axis=axes)
            self._update_running(attrs, ctx, mean, var, count, x.dtype)
        else:
            mean, var = self._running(ctx, x.shape[1], x.dtype)
            centred = x - mean.reshape(shape)
        inv_std = (1 / np.sqrt(var + x.dtype.type(attrs.eps))).astype(x.dtype, copy=False)
        xhat = centred * inv_std.reshape(shape)
        y = xhat * gamma.reshape(shape) + beta.reshape(shape) if gamma is not None else xhat
        return y, (xhat, inv_std, gamma, ctx.training, axes, shape)

    def backward(self, attrs, saved, dy, wants):
        xhat, inv_std, gamma, training, axes, shape = saved
        grads = {}
        if "gamma" in wants:
            grads["gamma"] = (dy * xhat).sum(axis=axes)
        if "beta" in wants:
            grads["beta"] = dy.sum(axis=axes)
        if "x" in wants:
            dxhat = dy * gamma.reshape(shape) if gamma is not None else dy
            if training:  # the batch statistics depend on x too
                mean_d = dxhat.mean(axis=axes).reshape(shape)
                mean_dx = (dxhat * xhat).mean(axis=axes).reshape(shape)
                dxhat = dxhat - mean_d - xhat * mean_dx
            grads["x"] = dxhat * inv_std.reshape(shape)
        return grads

    def _update_running(self, attrs, ctx, mean, var, count, dtype) -> None:
        """The new running statistics (PyTorch's: the unbiased variance for running_var)."""
        old_mean, old_var = self._running(ctx, len(mean), dtype)
        m = dtype.type(attrs.momentum)
        unbiased = var * dtype.type(count / (count - 1))
        ctx.set_state("running_mean", (1 - m) * old_mean + m * mean)
        ctx.set_state("running_var", (1 - m) * old_var + m * unbiased)

    def _running(self, ctx, channels, dtype):
        """The running statistics from ``ctx.state``; the initial ones (0 and 1) when called
        outside a model (the gradient checker gives no state)."""
        mean = ctx.state.get("running_mean")
        var = ctx.state.get("running_var")
        if mean is None:
            mean = self.state[0].initial((channels,), dtype)
        if var is None:
            var = self.state[1].initial((channels,), dtype)
        return mean, var

    def onnx(self, attrs, b, inputs, params):
        channels = b.shape(inputs["x"])[0]
        scale = params["gamma"] if "gamma" in params else b.constant(np.ones(channels, np.float32))
        bias = params["beta"] if "beta" in params else b.constant(np.zeros(channels, np.float32))
        return b.node(
            "BatchNormalization",
            [inputs["x"], scale, bias, params["running_mean"], params["running_var"]],
            {"epsilon": float(attrs.eps), "momentum": float(1 - attrs.momentum)},
        )

    def examples(self, rng):
        """Images and features, training (batch statistics) and evaluation (running ones),
        with and without gamma/beta; inputs shifted and scaled so the statistics matter."""
        cases = [
            ({}, (3, 2, 3, 4), True),
            ({}, (5, 4), True),
            ({"affine": False}, (2, 3, 3, 3), True),
            ({"momentum": 0.3}, (4, 3, 2, 3), False),
            ({"affine": False}, (3, 5), False),
        ]
        return [
            Example(attrs=attrs, inputs={"x": 2 * rng.standard_normal(shape) + 0.5}, training=training)
            for attrs, shape, training in cases
        ]
