"""Data augmentation applied to training batches: random shifts of images.

A shift moves each image by (dy, dx), each drawn uniformly from [-shift, shift], filling the
uncovered border with zeros. It is done for a whole batch at once by padding and gathering, with
a generator seeded per epoch so a run stays reproducible. That the examples are images of
``image_shape`` is checked when the train section is checked (``loop.resolve_roles``).

A run resumed in the middle of an epoch (``loop.train(resume=...)``) gets the generator of that
epoch where the interrupted run left it by ``skip_batch``, which draws what ``shift_batch`` draws
and throws it away: the shifts are a function of (seed, epoch, step), and no generator state needs
to be saved.
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
    dy, dx = _offsets(n, s, rng)
    rows = dy[:, None] + np.arange(height)[None, :]  # (N, H)
    cols = dx[:, None] + np.arange(width)[None, :]  # (N, W)
    shifted = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return shifted.reshape(x.shape)


def skip_batch(n: int, spec: AugmentSpec, rng: np.random.Generator) -> None:
    """Advance ``rng`` exactly as ``shift_batch`` does for a batch of ``n`` examples."""
    if spec.shift != 0:
        _offsets(n, spec.shift, rng)


def _offsets(n: int, shift: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each example's (dy, dx) into the image padded by ``shift``: every draw the augmentation
    makes (``skip_batch`` relies on it)."""
    dy = rng.integers(0, 2 * shift + 1, n)
    dx = rng.integers(0, 2 * shift + 1, n)
    return dy, dx
