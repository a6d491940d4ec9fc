"""Data augmentation applied to training batches: random shifts of images.

A shift moves each image by (dy, dx), each drawn uniformly from [-shift, shift], filling the
uncovered border with zeros. It is done for a whole batch at once by padding and gathering, with
a generator seeded per epoch so a run stays reproducible. That the examples are images of
``image_shape`` is checked when the train section is checked (``loop.resolve_roles``).
"""

from __future__ import annotations

import numpy as np

from ..spec import AugmentSpec


def shift_batch(x: np.ndarray, spec: AugmentSpec, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``x`` (N, ...) with each example shifted by a random offset."""
    if spec.shift == 0:
        return x
    n = len(x)
    height, width = spec.image_shape
    s = spec.shift
    images = x.reshape(n, height, width)
    padded = np.zeros((n, height + 2 * s, width + 2 * s), x.dtype)
    padded[:, s : s + height, s : s + width] = images
    dy = rng.integers(0, 2 * s + 1, n)
    dx = rng.integers(0, 2 * s + 1, n)
    rows = dy[:, None] + np.arange(height)[None, :]  # (N, H)
    cols = dx[:, None] + np.arange(width)[None, :]  # (N, W)
    shifted = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return shifted.reshape(x.shape)
