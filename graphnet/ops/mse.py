"""mse: mean squared error between pred and target."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from ..errors import ShapeError
from ..op import Example, Op, OpAttrs
from ..labels import class_targets


class MSEAttrs(OpAttrs):
    reduction: Literal["mean", "sum_per_sample"] = Field(
        "mean",
        description="mean: mean over all elements; sum_per_sample: per-sample sum of squares, "
        "averaged over the batch",
    )


class MSE(Op):
    """Mean squared error, d = pred - target, the output a 0-d array:

    - reduction "mean" (like torch's MSELoss): loss = sum(d^2) / M, M the number of elements
      of pred (batch included);
    - reduction "sum_per_sample": loss = sum(d^2) / N, the per-sample sum of squares averaged over
      the batch of N (no factor 1/2).

    target has pred's shape, or is integer class indices (N,) with pred (N, C), one-hot encoded
    internally (the original trained MSE on one-hot targets).
    Gradient: dpred = dy * 2 d / M (mean) or dy * 2 d / N (sum_per_sample); target gets none.
    """

    version = 1
    inputs = ("pred", "target")
    no_grad = ("target",)
    reduces_batch = True
    Attrs = MSEAttrs

    def shape(self, attrs, pred, target):
        if tuple(target) == tuple(pred):
            return ()
        if len(target) == 0 and len(pred) == 1:
            return ()
        raise ShapeError(
            f"input target has per-sample shape {list(target)}, pred has {list(pred)}; mse needs "
            "equal shapes (or [] class indices with a vector pred)",
            hint="make the last layer's output match the target",
        )

    def forward(self, attrs, ctx, pred, target):
        diff = pred - class_targets(target, pred, role="target")
        if attrs.reduction == "mean":
            count = diff.size
        else:
            count = pred.shape[0]
        loss = (diff * diff).sum() / count
        return np.asarray(loss, dtype=pred.dtype), (diff, count)

    def backward(self, attrs, saved, dy, wants):
        diff, count = saved
        grads = {}
        if "pred" in wants:
            grads["pred"] = diff * (dy * (2 / count))
        return grads

    def examples(self, rng):
        pred = rng.standard_normal((4, 3))
        return [
            Example(inputs={"pred": pred, "target": rng.standard_normal((4, 3))}),
            Example(
                attrs={"reduction": "sum_per_sample"},
                inputs={"pred": pred, "target": rng.standard_normal((4, 3))},
            ),
            Example(inputs={"pred": pred, "target": rng.integers(0, 3, size=4)}),
        ]
