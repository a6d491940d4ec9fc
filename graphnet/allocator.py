"""Keeping freed array memory in the process, so the next step's arrays need no fresh pages.

Every op returns new arrays, and a training step or an evaluation batch frees them all when it
ends. glibc's malloc serves blocks above its mmap threshold (128 KiB, raised as blocks are freed)
with fresh ``mmap`` pages and returns free memory at the top of its heap to the kernel beyond a
trim threshold; either way the next batch's arrays start as untouched pages, and touching them
costs a page fault each (measured: ~1,500 per 1,000-image batch of the recipe network in
evaluation, 15% of its time). ``keep_freed_memory`` asks malloc, once per process, to serve
blocks of up to 32 MiB from its heap and to keep up to 512 MiB of free heap: the next batch
reuses the same, already mapped memory. Peak memory does not grow (the blocks are reused, not
added); freed memory is returned to the kernel only beyond 512 MiB.

It changes nothing where malloc is not glibc's, nor when the environment sets
``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` (the user's own choice wins).
"""

from __future__ import annotations

import ctypes
import os

MMAP_THRESHOLD = 32 << 20  # glibc's largest: blocks up to this come from the heap
TRIM_THRESHOLD = 512 << 20  # free heap kept before any is returned to the kernel
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)

_applied: bool | None = None  # None: not tried yet


def keep_freed_memory() -> bool:
    """Tune glibc's malloc as the module docstring says (once per process); True if it did."""
    global _applied
    if _applied is None:
        _applied = _tune()
    return _applied


def _tune() -> bool:
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # glibc only; musl and macOS have none
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
