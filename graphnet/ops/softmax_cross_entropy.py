"""softmax_cross_entropy: loss = mean over the batch of -sum(y * log_softmax(logits))."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ..errors import DataError, ShapeError
from ..op import Example, Op, OpAttrs


def one_hot(indices: np.ndarray, classes: int, dtype: np.dtype, role: str) -> np.ndarray:
    """Class indices of shape (...) -> one-hot rows of shape (..., classes) and the given dtype."""
    if not np.issubdtype(indices.dtype, np.integer):
        # an executor may hand integer labels over as floats; accept them only if whole numbers
        if np.any(indices != np.round(indices)):
            raise DataError(
                f"{role} are class indices but hold non-integer values",
                hint=f"store {role} as integers 0..{classes - 1}, or as one-hot rows",
            )
        indices = indices.astype(np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= classes):
        bad = indices.min() if indices.min() < 0 else indices.max()
        raise DataError(
            f"{role} hold class index {int(bad)}, expected 0..{classes - 1}",
            hint=f"the op sees {classes} classes; fix the data or the number of units",
        )
    out = np.zeros(indices.shape + (classes,), dtype)
    np.put_along_axis(out, indices[..., None], 1, axis=-1)
    return out


def class_targets(labels: np.ndarray, like: np.ndarray, role: str = "labels") -> np.ndarray:
    """Labels as dense targets of like's shape and dtype.

    Labels with one axis fewer than ``like`` are class indices and become one-hot rows; anything
    else is already dense (one-hot or probabilities) and is only cast to like's dtype.
    """
    if labels.ndim == like.ndim - 1:
        return one_hot(labels, like.shape[-1], like.dtype, role)
    return labels.astype(like.dtype, copy=False)


def check_label_shape(op: str, scores_role: str, scores, labels_role: str, labels) -> None:
    """Per-sample labels must be () (class indices) or the same shape as the scores."""
    if len(labels) == 0 or tuple(labels) == tuple(scores):
        return
    raise ShapeError(
        f"input {labels_role} has per-sample shape {list(labels)}, {op} needs [] (class indices) "
        f"or {list(scores)} like {scores_role}",
        hint=f"feed integer class indices or one-hot rows of {scores[-1] if scores else 1} classes",
    )


class SoftmaxCrossEntropyAttrs(OpAttrs):
    label_smoothing: float = Field(
        0.0, ge=0, lt=1, description="eps: targets become (1 - eps) * y + eps / classes"
    )


class SoftmaxCrossEntropy(Op):
    """Softmax and cross-entropy fused: loss = (1/N) sum_n -sum_c y_nc log softmax(x_n)_c.

    x: logits (N, C). y: labels, either integer class indices (N,) (one-hot internally) or one-hot
    rows / probabilities (N, C). The output is a 0-d array, the mean over the batch. log softmax is
    computed as (x - m) - log(sum exp(x - m)), m = max(x), so it never overflows. With
    label_smoothing eps, y is replaced by (1 - eps) y + eps / C before the loss.

    Gradient (the fused form of the original from-scratch implementation, divided by N for the
    mean): dx = dy * (s * sum_c(y_c) - y) / N, s = softmax(x); that is dy * (s - y) / N when each
    label row sums to 1 (one-hot, integer, or smoothed labels). labels get no gradient.
    """

    version = 1
    inputs = ("logits", "labels")
    no_grad = ("labels",)
    reduces_batch = True
    Attrs = SoftmaxCrossEntropyAttrs
    example = {"attrs": {}, "inputs": {"logits": (4, 3), "labels": (4,)}}

    def shape(self, attrs, logits, labels):
        if len(logits) != 1:
            raise ShapeError(
                f"input logits has per-sample shape {list(logits)}, softmax_cross_entropy needs "
                "a vector of class scores",
                hint="put a flatten or linear node before it",
            )
        check_label_shape("softmax_cross_entropy", "logits", logits, "labels", labels)
        return ()

    def forward(self, attrs, ctx, logits, labels):
        y = class_targets(labels, logits)
        if attrs.label_smoothing:
            eps = logits.dtype.type(attrs.label_smoothing)
            classes = logits.shape[-1]
            y = (1 - eps) * y + eps / classes
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        n = logits.shape[0]
        loss = -(y * log_p).sum() / n
        return np.asarray(loss, dtype=logits.dtype), (np.exp(log_p), y, n)

    def backward(self, attrs, saved, dy, wants):
        s, y, n = saved
        grads = {}
        if "logits" in wants:
            grads["logits"] = (s * y.sum(axis=-1, keepdims=True) - y) * (dy / n)
        return grads

    def examples(self, rng):
        logits = rng.standard_normal((4, 3)) * 2
        indices = rng.integers(0, 3, size=4)
        return [
            Example(inputs={"logits": logits, "labels": indices}),
            Example(inputs={"logits": logits, "labels": np.eye(3)[indices]}),
            Example(attrs={"label_smoothing": 0.1}, inputs={"logits": logits, "labels": indices}),
        ]
