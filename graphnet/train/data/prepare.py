"""Preprocessing, and the checks of every split against the graph inputs it feeds.

Examples: scale (uint8 -> x / 255), standardize (one scalar mean and std from the training split
only), flatten; labels: one_hot. Then each split's per-example shape and dtype are checked
against the input, so a mismatch is reported before training starts, with the fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ...errors import DataError
from ...spec import InputSpec, PreprocessSpec

FLATTEN = "train.data.preprocess.flatten"
ONE_HOT = "train.data.preprocess.one_hot"
STATS_CHUNK = 1 << 20  # values per chunk when summing in float64
UINT8_SCALE = 255.0  # preprocess.scale divides uint8 pixels by this


@dataclass(frozen=True)
class Statistics:
    """What ``standardize`` fitted on the training split: one scalar mean and (population) std
    of the scaled training examples, in float64. Both None: no standardize. The model file keeps
    them (its preprocessing record), so new examples are standardized exactly as training's were
    without reading the training set again."""

    mean: Optional[float] = None
    std: Optional[float] = None


def prepare_examples(
    xs: dict[str, np.ndarray], pre: PreprocessSpec, name: str, spec: InputSpec,
    statistics: Statistics | None = None,
) -> tuple[dict[str, np.ndarray], Statistics]:
    """scale, standardize, flatten, then check shape and cast to the input's dtype; returns the
    prepared arrays and the standardize statistics used.

    ``statistics``: the mean and std to standardize with (from a model file); without them they
    are fitted on ``xs["x_train"]``, which must then be there."""
    target = np.dtype(spec.dtype)
    work = target if target.kind == "f" else np.dtype(np.float32)
    for role, x in xs.items():
        _check_numeric(x, role)
    raw_shapes = {role: x.shape[1:] for role, x in xs.items()}
    if pre.scale:
        xs = {role: scale_examples(x, work) for role, x in xs.items()}
    used = Statistics()
    if pre.standardize:
        used = statistics if statistics is not None and statistics.mean is not None else _fit(xs["x_train"])
        xs = {role: standardize_examples(x, used.mean, used.std, work) for role, x in xs.items()}
    if pre.flatten:
        xs = {role: x.reshape(len(x), -1) if x.ndim > 2 else x for role, x in xs.items()}
    for role, x in xs.items():
        _check_example_shape(role, x, raw_shapes[role], pre, name, spec)
    where = "train.data.preprocess.scale"
    xs = {role: _cast(x, target, role, name, where) for role, x in xs.items()}
    for role, x in xs.items():
        _check_finite(x, role)
    return xs, used


def _fit(x_train: np.ndarray) -> Statistics:
    mean, std = _mean_std(x_train)
    if std == 0 or not math.isfinite(std):
        raise DataError(
            f"cannot standardize: the training examples have standard deviation {std}",
            path="train.data.preprocess.standardize",
            hint="set preprocess.standardize: false",
        )
    return Statistics(mean, std)


def scale_examples(x: np.ndarray, work: np.dtype, scale: float = UINT8_SCALE) -> np.ndarray:
    """uint8 pixels -> x / scale (255: to [0, 1]) in ``work``; anything else is left as it is."""
    if x.dtype != np.uint8:
        return x
    scaled = x.astype(work)
    scaled /= scale
    return scaled


def _mean_std(x: np.ndarray) -> tuple[float, float]:
    """One scalar mean and (population) std over all of ``x``, accumulated in float64 in
    chunks of examples so no float64 copy of the whole set is made."""
    count = x.size
    if count == 0:
        return 0.0, 0.0
    rows = max(1, STATS_CHUNK // max(1, x[0].size))
    total = 0.0
    for start in range(0, len(x), rows):
        total += float(x[start : start + rows].sum(dtype=np.float64))
    mean = total / count
    squares = 0.0
    for start in range(0, len(x), rows):
        deviation = x[start : start + rows].astype(np.float64) - mean
        squares += float(np.vdot(deviation, deviation))
    return mean, math.sqrt(squares / count)


def standardize_examples(x: np.ndarray, mean: float, std: float, work: np.dtype) -> np.ndarray:
    """(x - mean) / std, in ``work`` (the statistics are Python floats: numpy rounds them to
    ``work`` first, the same way for training and for every later prediction)."""
    out = x.astype(work, copy=True)
    out -= mean
    out /= std
    return out


def _check_example_shape(role, x, raw_shape, pre: PreprocessSpec, name, spec: InputSpec) -> None:
    shape, expected = list(x.shape[1:]), list(spec.shape)
    if shape == expected:
        return
    flattened = " (after preprocess.flatten)" if pre.flatten and list(raw_shape) != shape else ""
    message = f"{role} examples have shape {shape}{flattened} but input '{name}' expects {expected}"
    if not pre.flatten and len(expected) == 1 and math.prod(shape) == expected[0]:
        raise DataError(message, path=FLATTEN, hint="set preprocess.flatten: true")
    if pre.flatten and list(raw_shape) == expected:
        raise DataError(message, path=FLATTEN, hint="set preprocess.flatten: false")
    raise DataError(
        message,
        path=f"inputs.{name}.shape",
        hint=f"declare input '{name}' with shape {shape}, or feed it data of shape {expected}",
    )


def prepare_labels(
    ys: dict[str, np.ndarray], pre: PreprocessSpec, name: str, spec: InputSpec
) -> tuple[dict[str, np.ndarray], int]:
    """one_hot if asked, then check shape and cast to the label input's dtype; also the number
    of classes the labels imply (``_class_count``)."""
    target = np.dtype(spec.dtype)
    for role, y in ys.items():
        _check_numeric(y, role)
    ids = all(_are_class_ids(y) for y in ys.values())
    if pre.one_hot:
        ys = _one_hot_all(ys, ids, name, spec)
    classes = _class_count(ys, ids and not pre.one_hot)
    for role, y in ys.items():
        _check_label_shape(role, y, pre, name, spec)
    ys = {role: _cast(y, target, role, name, f"inputs.{name}.dtype") for role, y in ys.items()}
    for role, y in ys.items():
        _check_finite(y, role)
    return ys, classes


def _class_count(ys: dict[str, np.ndarray], ids: bool) -> int:
    """Class ids: the largest id over ALL splits + 1. Rows (one-hot, or scores) of one width
    in every split: that width. Anything else: 0 (the labels are not classes)."""
    if ids:
        return max((int(y.max()) + 1 for y in ys.values() if y.size), default=0)
    widths = {y.shape[1] if y.ndim == 2 else -1 for y in ys.values()}
    if len(widths) == 1 and -1 not in widths:
        return widths.pop()
    return 0


def _are_class_ids(y: np.ndarray) -> bool:
    """One non-negative whole number per example."""
    if y.ndim != 1:
        return False
    if y.size == 0:
        return True
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.floor(y)):
            return False
    elif y.dtype.kind not in "iub":
        return False
    return bool(y.min() >= 0)


def _one_hot_all(ys, ids: bool, name: str, spec: InputSpec) -> dict[str, np.ndarray]:
    """Class ids -> one-hot rows; width: the label input's [C], else max train label + 1."""
    expected = list(spec.shape)
    if not ids:
        shapes = {role: list(y.shape[1:]) for role, y in ys.items()}
        raise DataError(
            f"preprocess.one_hot needs one non-negative integer class id per example; the "
            f"labels have per-example shapes {shapes} and dtype {ys['y_train'].dtype}",
            path=ONE_HOT,
            hint="set preprocess.one_hot: false if the labels are already encoded",
        )
    train = ys["y_train"] if "y_train" in ys else next(iter(ys.values()))
    if len(expected) == 1:
        width, why = expected[0], f"input '{name}' has shape {expected}"
    else:
        width = int(train.max()) + 1 if train.size else 0
        why = f"the largest training label is {width - 1}"
    for role, y in ys.items():
        if y.size and int(y.max()) >= width:
            raise DataError(
                f"{role} holds label {int(y.max())}, but the one-hot width is {width} ({why})",
                path=ONE_HOT,
                hint=f"declare input '{name}' with shape [C], C greater than every label",
            )
    dtype = np.dtype(spec.dtype)
    identity = np.eye(width, dtype=dtype)
    return {role: identity[y.astype(np.int64)] for role, y in ys.items()}


def _check_label_shape(role, y, pre: PreprocessSpec, name, spec: InputSpec) -> None:
    shape, expected = list(y.shape[1:]), list(spec.shape)
    if shape == expected:
        return
    if pre.one_hot:
        message = (
            f"{role} labels have shape {shape} after preprocess.one_hot but input '{name}' "
            f"expects {expected}"
        )
        raise DataError(
            message,
            path=ONE_HOT,
            hint=f"set preprocess.one_hot: false, or declare input '{name}' with shape {shape}",
        )
    message = f"{role} labels have shape {shape} but input '{name}' expects {expected}"
    if shape == [] and len(expected) == 1:
        raise DataError(message, path=ONE_HOT, hint="set preprocess.one_hot: true")
    raise DataError(
        message,
        path=f"inputs.{name}.shape",
        hint=f"declare input '{name}' with shape {shape}",
    )


def _check_numeric(array: np.ndarray, role: str) -> None:
    if array.dtype.kind not in "biuf":
        raise DataError(
            f"{role} has dtype {array.dtype}; graphnet reads numbers only",
            path="train.data",
            hint="store integer or float arrays",
        )


def _check_finite(array: np.ndarray, role: str) -> None:
    # min and max propagate NaN and show an infinity, without a boolean array the data's size
    if array.dtype.kind == "f" and array.size and not (np.isfinite(array.min()) and np.isfinite(array.max())):
        raise DataError(
            f"{role} contains NaN or infinite values",
            path="train.data",
            hint="clean the data before training",
        )


def _cast(array: np.ndarray, target: np.dtype, role: str, name: str, where: str) -> np.ndarray:
    """``array`` as ``target``, refusing casts that would change values (float -> int of
    non-whole numbers, integers out of range)."""
    if array.dtype == target:
        return array
    if target.kind in "iu" and array.size:
        if array.dtype.kind == "f":
            whole = np.isfinite(array).all() and np.all(array == np.floor(array))
            if not whole:
                raise DataError(
                    f"{role} holds non-integer values ({array.dtype}) but input '{name}' "
                    f"expects {target}",
                    path=where,
                    hint=f"declare input '{name}' as float32"
                    + (" or set preprocess.scale: false" if role.startswith("x") else ""),
                )
        low, high = array.min(), array.max()
        info = np.iinfo(target)
        if low < info.min or high > info.max:
            raise DataError(
                f"{role} values range from {low} to {high}, outside {target} of input '{name}'",
                path=f"inputs.{name}.dtype",
                hint=f"declare input '{name}' with a wider dtype",
            )
    return array.astype(target)
