"""Examples and their labels, kept together: ``Split``, the validation hold-out, and batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping, Optional

import numpy as np

from ...errors import DataError


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


def pair(arrays: Mapping, x_role: str, y_role: str, origin: Mapping, where: str) -> Split:
    """``Split(arrays[x_role], arrays[y_role])``, with an error naming both arrays (``origin``
    says where each came from) when one is a scalar or their lengths differ."""
    x, y = arrays[x_role], arrays[y_role]
    for role, array in ((x_role, x), (y_role, y)):
        if array.ndim == 0:
            raise DataError(
                f"{role} ({origin[role]}) is a single value, not an array of examples",
                path=where,
                hint="axis 0 must index the examples",
            )
    if len(x) != len(y):
        raise DataError(
            f"{x_role} ({origin[x_role]}) has {len(x)} examples but {y_role} "
            f"({origin[y_role]}) has {len(y)} labels",
            path=where,
            hint="the examples and the labels must belong together",
        )
    return Split(x, y)


def hold_out(
    train: Split, validation: int | float, limit: int | None
) -> tuple[Split, Optional[Split]]:
    """(train, val): the LAST ``count`` training examples held out as the validation set.

    ``validation`` is a count, or a fraction of the training examples rounded half up to a
    count; 0 means no validation set (val is None). ``limit`` is only quoted in messages.
    """
    n = len(train)
    limited = f" (after limit: {limit})" if limit is not None else ""
    if isinstance(validation, float):
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
