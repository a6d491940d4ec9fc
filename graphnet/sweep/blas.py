"""How many threads the BLAS library under numpy uses, read and set at run time.

Trials run side by side, each given some CPUs; a BLAS library that starts one thread per core in
every trial makes them fight over the cores (on 2 cores, two trials of 2 threads each run slower
than one after the other). The runner sets OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and
MKL_NUM_THREADS in the trials' environment, which works when the variables are set before numpy
loads its BLAS; ``pin_threads`` also sets the count on the library already loaded (what
threadpoolctl does, for OpenBLAS, whose builds numpy's wheels carry), and reports what is in
effect, so a trial records what it ran with rather than what was asked.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Optional

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

# OpenBLAS's entry points under the names its builds export them: plain, 64-bit-integer builds,
# and the scipy-openblas builds inside numpy's wheels.
_PREFIXES = ("openblas", "scipy_openblas")
_SUFFIXES = ("", "64_")


def thread_environment(threads: int) -> dict[str, str]:
    """The environment variables that limit BLAS (OpenBLAS, OpenMP, MKL) to ``threads``."""
    return {name: str(threads) for name in THREAD_VARIABLES}


def pin_threads(threads: int) -> Optional[int]:
    """Limit the OpenBLAS that numpy loaded to ``threads`` threads; return the count now in
    effect, or None when numpy's BLAS is not an OpenBLAS this can reach (then the environment
    variables are all there is)."""
    import numpy  # noqa: F401  (loads the BLAS library)

    for library in _openblas_libraries():
        get, put = _functions(library)
        if get is None:
            continue
        if put is not None:
            put(ctypes.c_int(threads))
        return int(get())
    return None


def current_threads() -> Optional[int]:
    """The thread count of the OpenBLAS numpy loaded, or None when it cannot be read."""
    import numpy  # noqa: F401

    for library in _openblas_libraries():
        get, _ = _functions(library)
        if get is not None:
            return int(get())
    return None


def _openblas_libraries() -> list[ctypes.CDLL]:
    """The OpenBLAS shared libraries mapped into this process (Linux: /proc/self/maps)."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        return []
    paths = sorted({line.split()[-1] for line in maps.read_text().splitlines()
                    if "openblas" in line.lower() and line.split()[-1].startswith("/")})
    libraries = []
    for path in paths:
        if not os.path.exists(path):
            continue
        try:
            libraries.append(ctypes.CDLL(path))
        except OSError:
            continue
    return libraries


def _functions(library: ctypes.CDLL):
    """(get_num_threads, set_num_threads) of an OpenBLAS build, each None when absent."""
    for prefix in _PREFIXES:
        for suffix in _SUFFIXES:
            get = getattr(library, f"{prefix}_get_num_threads{suffix}", None)
            if get is not None:
                put = getattr(library, f"{prefix}_set_num_threads{suffix}", None)
                get.restype = ctypes.c_int
                return get, put
    return None, None
