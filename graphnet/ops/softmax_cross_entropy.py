"""softmax_cross_entropy: loss = mean over the batch of -sum(y * log_softmax(logits))."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ..errors import ShapeError
from ..labels import check_label_shape, checked_indices, class_targets
from ..op import Example, Op, OpAttrs


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
        if labels.ndim == 1 and logits.ndim == 2 and not attrs.label_smoothing:
            return self._forward_indices(logits, checked_indices(labels, logits.shape[1], "labels"))
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
        if "logits" not in wants:
            return grads
        scale = dy / n
        if y.ndim == 1:  # class indices: (s - onehot(y)) / N without building the one-hot rows
            grad = s * scale
            grad[np.arange(n), y] -= scale
        else:
            grad = (s * y.sum(axis=-1, keepdims=True) - y) * scale
        grads["logits"] = grad
        return grads

    @staticmethod
    def _forward_indices(logits, indices):
        """The common case, integer class labels: the same maths, reading log p at each label
        instead of multiplying by one-hot rows."""
        n = logits.shape[0]
        probs = logits - logits.max(axis=-1, keepdims=True)
        picked = probs[np.arange(n), indices]  # the shifted logit of each label (a copy)
        np.exp(probs, out=probs)
        sums = probs.sum(axis=-1, keepdims=True)
        loss = (np.log(sums).sum() - picked.sum()) / n
        probs /= sums
        return np.asarray(loss, dtype=logits.dtype), (probs, indices, n)

    def examples(self, rng):
        logits = rng.standard_normal((4, 3)) * 2
        indices = rng.integers(0, 3, size=4)
        return [
            Example(inputs={"logits": logits, "labels": indices}),
            Example(inputs={"logits": logits, "labels": np.eye(3)[indices]}),
            Example(attrs={"label_smoothing": 0.1}, inputs={"logits": logits, "labels": indices}),
        ]
