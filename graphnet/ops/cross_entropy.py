"""cross_entropy: loss = mean over the batch of -sum(y * log(clip(p, eps, 1)))."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ..errors import ShapeError
from ..op import Example, Op, OpAttrs
from ..labels import check_label_shape, class_targets


class CrossEntropyAttrs(OpAttrs):
    eps: float = Field(
        1e-12, gt=0, lt=1, description="probabilities are clipped to [eps, 1] before the log"
    )


class CrossEntropy(Op):
    """Cross-entropy of probabilities: loss = (1/N) sum_n -sum_c y_nc log(clip(p_nc, eps, 1)).

    p: probs (N, C), for example a softmax output. y: labels, either integer class indices (N,)
    (one-hot internally) or one-hot rows / probabilities (N, C). The output is a 0-d array, the
    mean over the batch. Prefer softmax_cross_entropy on logits: it is exact where this one clips.

    Gradient: dp = -dy * y / (N p) where eps <= p <= 1, and 0 where p was clipped. labels get no
    gradient.
    """

    version = 1
    inputs = ("probs", "labels")
    no_grad = ("labels",)
    reduces_batch = True
    Attrs = CrossEntropyAttrs

    def shape(self, attrs, probs, labels):
        if len(probs) != 1:
            raise ShapeError(
                f"input probs has per-sample shape {list(probs)}, cross_entropy needs "
                "a vector of class probabilities",
                hint="put a flatten or softmax node before it",
            )
        check_label_shape("cross_entropy", "probs", probs, "labels", labels)
        return ()

    def forward(self, attrs, ctx, probs, labels):
        y = class_targets(labels, probs)
        clipped = np.clip(probs, probs.dtype.type(attrs.eps), probs.dtype.type(1))
        inside = clipped == probs
        n = probs.shape[0]
        loss = -(y * np.log(clipped)).sum() / n
        return np.asarray(loss, dtype=probs.dtype), (y, clipped, inside, n)

    def backward(self, attrs, saved, dy, wants):
        y, clipped, inside, n = saved
        grads = {}
        if "probs" in wants:
            grads["probs"] = -y / clipped * inside * (dy / n)
        return grads

    def examples(self, rng):
        # softmax of random normals: positive, summing to 1, far from the clip at eps
        scores = rng.standard_normal((4, 3))
        probs = np.exp(scores) / np.exp(scores).sum(axis=-1, keepdims=True)
        indices = rng.integers(0, 3, size=4)
        return [
            Example(inputs={"probs": probs, "labels": indices}),
            Example(inputs={"probs": probs, "labels": np.eye(3)[indices]}),
        ]
