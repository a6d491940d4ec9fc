"""Labels for loss ops: integer class indices or dense (one-hot / probability) rows.

Shared by the built-in losses and available to plugin losses.
"""

from __future__ import annotations

import numpy as np

from .errors import DataError, ShapeError


def one_hot(indices: np.ndarray, classes: int, dtype: np.dtype, role: str) -> np.ndarray:
    """Class indices of shape (...) -> one-hot rows of shape (..., classes) and the given dtype."""
    indices = checked_indices(indices, classes, role)
    out = np.zeros(indices.shape + (classes,), dtype)
    np.put_along_axis(out, indices[..., None], 1, axis=-1)
    return out


def checked_indices(indices: np.ndarray, classes: int, role: str) -> np.ndarray:
    """Class indices as integers, each checked to be in 0..classes-1 (a DataError if not)."""
    if indices.dtype.kind not in "iu":
        # an executor may hand integer labels over as floats; accept them only if whole numbers
        if np.any(indices != np.round(indices)):
            raise DataError(
                f"{role} are class indices but hold non-integer values",
                hint=f"store {role} as integers 0..{classes - 1}, or as one-hot rows",
            )
        indices = indices.astype(np.int64)
    if indices.dtype.kind == "i" and indices.dtype.itemsize == 8 and indices.size:
        # one pass: seen as unsigned, a negative index is huge, so max() catches both ends
        if int(indices.view(np.uint64).max()) < classes:
            return indices
    if indices.size and (indices.min() < 0 or indices.max() >= classes):
        bad = indices.min() if indices.min() < 0 else indices.max()
        raise DataError(
            f"{role} hold class index {int(bad)}, expected 0..{classes - 1}",
            hint=f"the op sees {classes} classes; fix the data or the number of units",
        )
    return indices


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
