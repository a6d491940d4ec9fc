"""Examples and their labels, kept together: ``Split``, the validation hold-out, and batches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Optional

import numpy as np

from ...errors import DataError
from ...spec.models import AUTO_VALIDATION_CAP, AUTO_VALIDATION_PERCENT
from .common import located


@dataclass
class Split:
    """Examples ``x`` and their labels ``y``; axis 0 indexes the examples in both."""

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise DataError(
                f"a split needs as many labels as examples; received {len(self.x)} examples "
                f"and {len(self.y)} labels",
                hint="x and y must come from the same dataset",
            )

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class Raw:
    """The arrays read for some of the roles x_train, y_train, x_test, y_test (as stored: no
    preprocessing yet), and where they came from.

    ``origin`` says, per role, where its array came from (for messages); ``where`` is the spec
    path or the flag that named the data (for errors about it); ``source`` is the file or folder
    read; ``place`` says where it was found without an absolute path (``$GRAPHNET_DATA/mnist``,
    ``npz file d.npz``), for the model file's description of the data; ``class_names`` are those an
    .npz carries (array ``class_names``), else None."""

    arrays: dict[str, np.ndarray]
    origin: dict[str, str]
    where: str
    source: Path
    place: str
    class_names: Optional[list[str]] = None

    def split(self, part: str) -> Split:
        """The examples and labels of ``part`` ("train" or "test"), checked to belong together."""
        return pair(self.arrays, f"x_{part}", f"y_{part}", self.origin, self.where)


def pair(arrays: Mapping, x_role: str, y_role: str, origin: Mapping, where: str) -> Split:
    """``Split(arrays[x_role], arrays[y_role])``, with an error naming both arrays (``origin``
    says where each came from) when one is a scalar or their lengths differ."""
    x, y = arrays[x_role], arrays[y_role]
    for role, array in ((x_role, x), (y_role, y)):
        if array.ndim == 0:
            raise DataError(
                f"{role} ({origin[role]}) is a single value, not an array of examples",
                hint="axis 0 must index the examples",
                **located(where),
            )
    if len(x) != len(y):
        raise DataError(
            f"{x_role} ({origin[x_role]}) has {len(x)} examples but {y_role} "
            f"({origin[y_role]}) has {len(y)} labels",
            hint="the examples and the labels must belong together",
            **located(where),
        )
    return Split(x, y)


def auto_validation_count(n: int) -> int:
    """How many of ``n`` training examples ``validation:`` left out (null) holds out: 10%
    (``AUTO_VALIDATION_PERCENT``), rounded half up, at most 5,000 (``AUTO_VALIDATION_CAP``,
    MNIST's classic 55,000 / 5,000 split), at least 1 when there are two examples or more (so
    that best-on-validation has something to watch), 0 for fewer."""
    if n < 2:
        return 0
    share = (n * AUTO_VALIDATION_PERCENT + 50) // 100  # rounded half up, in integers (no float error)
    return min(AUTO_VALIDATION_CAP, max(1, share))


def hold_out(
    train: Split, validation: int | float | None, limit: int | None
) -> tuple[Split, Optional[Split]]:
    """(train, val): the LAST ``count`` training examples held out as the validation set.

    ``validation`` is a count, a fraction of the training examples rounded half up to a
    count, or None for the automatic split (``auto_validation_count``: 10%, at most 5,000);
    0 means no validation set (val is None). ``limit`` is only quoted in messages.
    """
    n = len(train)
    limited = f" (after limit: {limit})" if limit is not None else ""
    if validation is None:
        count = auto_validation_count(n)
    elif isinstance(validation, float):
        count = int(validation * n + 0.5)  # rounded half up
        if count == 0:
            raise DataError(
                f"validation fraction {validation} of {n} training examples{limited} holds out "
                "no example",
                path="train.data.validation",
                hint="use a larger fraction, a count, or 0 for no validation set",
            )
    else:
        count = int(validation)
    if count == 0:
        return train, None
    if count >= n:
        raise DataError(
            f"validation holds out {count} examples but there are only {n} training "
            f"examples{limited}",
            path="train.data.validation",
            hint=f"use a count below {n}, a fraction such as 0.1, or 0 for no validation set",
        )
    cut = n - count
    return Split(train.x[:cut], train.y[:cut]), Split(train.x[cut:], train.y[cut:])


def split_warnings(validation: int | float | None, before: int, val: Optional[Split]) -> list[str]:
    """What is worth a warning about the hold-out of ``val`` from ``before`` training examples:
    a split that leaves less than half of them to train on (it trains silently, but worse:
    8,000 examples with validation: 5000 gave 54% test accuracy instead of 78%), and an
    automatic split that found too few examples to hold any out."""
    held = len(val) if val is not None else 0
    if validation is None and held == 0:
        return [
            f"train.data.validation: {before} training example(s) are too few for the automatic "
            f"validation split ({AUTO_VALIDATION_PERCENT}%), so there is none "
            "(best-on-validation keeps the last epoch)"
        ]
    left = before - held
    if held == 0 or 2 * left >= before:
        return []
    return [
        f"train.data.validation: holding out {held:,} of the {before:,} training examples "
        f"leaves {left:,} ({100 * left / before:.0f}%) to train on (use a smaller count, a "
        f"fraction such as 0.1, or leave validation out for the automatic {AUTO_VALIDATION_PERCENT}%)"
    ]


def shuffled_batches(
    x: np.ndarray, y: np.ndarray, batch_size: int, rng: np.random.Generator
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch of ``(x_batch, y_batch)`` in a random order; the last batch may be smaller.

    ONE permutation of the example axis (axis 0) is drawn from ``rng`` when this is called, and
    the same permutation indexes ``x`` and ``y``, so every example keeps its label and its
    features stay in order. ``x`` and ``y`` are never modified.
    """
    # NOTE: never np.random.shuffle: shuffling x and y separately (or along the wrong axis)
    # silently destroys the data; one index array for both cannot.
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; received {batch_size}")
    order = rng.permutation(len(x))
    return _batches(x, y, order, batch_size)


def _batches(x, y, order: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        yield x[index], y[index]
