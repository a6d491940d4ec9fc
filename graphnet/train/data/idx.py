"""The IDX format MNIST ships in: reading one file, and the four files of a dataset.

A file is ``00 00 <type> <ndim>``, then ``ndim`` big-endian uint32 sizes, then the values,
big-endian, row-major. It may be gzipped: that is told by its first bytes, not by its name.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ...errors import DataError
from .common import one_line
from .split import Split, pair

# role -> file name, in the order files are searched for, downloaded and listed in messages
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

GZIP_MAGIC = b"\x1f\x8b"

# IDX type code -> numpy dtype (multi-byte values are big-endian in the file)
IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IDX_HINT = "an IDX file starts with 00 00, a type code (08 = uint8) and the number of dimensions"


def read_idx(path: str | Path) -> np.ndarray:
    """The array in an IDX file (gzipped or not: detected by its magic bytes, not its name).

    Types: 08 uint8, 09 int8, 0B int16, 0C int32, 0D float32, 0E float64. The payload must be
    exactly as long as the sizes say. Returns a writable array in native byte order.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise _idx_error(path, f"is {len(raw)} bytes long, too short for an IDX header")
    zero1, zero2, code, ndim = raw[:4]
    if zero1 != 0 or zero2 != 0:
        found = " ".join(f"{byte:02x}" for byte in raw[:4])
        raise _idx_error(
            path, f"does not start with an IDX magic number (00 00 type ndim); found {found}"
        )
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X} {d.name}" for c, d in IDX_DTYPES.items())
        raise _idx_error(path, f"has unknown IDX data type code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise _idx_error(path, "declares 0 dimensions")
    start = 4 + 4 * ndim
    if len(raw) < start:
        raise _idx_error(
            path,
            f"is truncated: its header declares {ndim} dimensions but the file is {len(raw)} bytes",
        )
    dims = struct.unpack(f">{ndim}I", raw[4:start])
    dtype = IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    actual = len(raw) - start
    if actual != expected:
        problem = "is truncated" if actual < expected else "has trailing bytes"
        raise _idx_error(
            path,
            f"{problem}: its header says {list(dims)} {dtype.name} values ({expected} bytes) "
            f"but the payload is {actual} bytes",
        )
    values = np.frombuffer(raw, dtype=dtype, offset=start).reshape(dims)
    return values.astype(dtype.newbyteorder("="))  # a native-order, writable copy


def find_idx_files(directory: Path) -> tuple[dict[str, Path], list[str]]:
    """The four ``IDX_FILES`` in ``directory`` (each as NAME.gz or NAME, by role) and the
    names of those missing."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role, file_name in IDX_FILES.items():
        for candidate in (directory / (file_name + ".gz"), directory / file_name):
            if candidate.is_file():
                found[role] = candidate
                break
        else:
            missing.append(file_name)
    return found, missing


def read_idx_files(files: dict[str, Path], where: str) -> tuple[Split, Split]:
    """(train, test) from the four files, by role; ``where`` is the spec path for errors."""
    arrays = read_idx_roles(files, where)
    return (
        pair(arrays, "x_train", "y_train", files, where),
        pair(arrays, "x_test", "y_test", files, where),
    )


def read_idx_roles(files: dict[str, Path], where: str) -> dict[str, np.ndarray]:
    """role -> array of each file in ``files`` (only those: scoring the test split reads the two
    test files, never the 47 MB of training images); ``where`` is the spec path for errors."""
    arrays = {}
    for role, file in files.items():
        try:
            arrays[role] = read_idx(file)
        except DataError as error:
            error.path = error.path or where
            raise
    return arrays


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when they start with the gzip magic."""
    if path.exists() and not path.is_file():  # reading a FIFO would block forever
        kind = "a directory" if path.is_dir() else "not a regular file (a FIFO, a device?)"
        raise DataError(f"{path} is {kind}, not an IDX file", hint="name the IDX file itself")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(
            f"cannot read {path}: {one_line(error.strerror or error)}",
            hint="check that the file exists and is readable",
        ) from None
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(
            f"{path} is gzip-compressed but cannot be decompressed ({one_line(error)})",
            hint="the file is truncated or corrupt: copy or download it again",
        ) from None


def _idx_error(path: Path, problem: str) -> DataError:
    return DataError(f"{path} {problem}", hint=IDX_HINT + "; copy or download the file again")
