"""The container: a fixed prelude, the msgpack header, then the tensors, each aligned.

::

    offset  size  field
    0       8     magic           b"\\x89GNM\\r\\n\\x1a\\n"
    8       4     format          uint32, little-endian: 2
    12      4     reserved        uint32, little-endian: 0
    16      8     header_length   uint64, little-endian: H
    24      32    header_sha256   SHA-256 digest of the H header bytes
    56      H     header          one msgpack map (see header.py)
    56 + H        zero bytes up to data_start, the first multiple of 64 at or after 56 + H
    data_start    the tensors, in directory order (params, state, optimizer), each at
                  data_start + its offset; offsets are multiples of 64, zero bytes between

The file ends at the last byte of the last tensor. Like PNG's signature, the magic starts with a
non-ASCII byte and holds CR LF, ^Z and LF, so a file mangled by a text-mode copy is recognised.

A tensor's checksum is a list: the SHA-256 of each 16 MiB block of its bytes (the last block may
be shorter). Blocks hash in parallel, on as many cores as there are, and a corrupted byte is
located to its block.

This module knows bytes only: it reads and writes the prelude, computes the canonical layout of
the tensor section and checks a directory against it, and streams tensor bytes to and from files
while hashing them (in helper threads, overlapping the disk, for tensors of several blocks).
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
import struct
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, Sequence

import numpy as np

from ..atomic import start_writeback, write_all
from ..errors import ModelFileError

MAGIC = b"\x89GNM\r\n\x1a\n"
FORMAT = 2  # the format this graphnet writes
PRELUDE = struct.Struct("<8sIIQ32s")  # magic, format, reserved, header_length, header_sha256
ALIGN = 64  # every tensor starts at a multiple of this many bytes (cache lines, SIMD loads)

# The only tensor dtypes a file may hold: little-endian, fixed size, no objects, no strings.
DTYPES: dict[str, np.dtype] = {
    "<f4": np.dtype("<f4"),
    "<f8": np.dtype("<f8"),
    "<i4": np.dtype("<i4"),
    "<i8": np.dtype("<i8"),
    "<u1": np.dtype("<u1"),
}
MODEL_DTYPES = {"float32": "<f4", "float64": "<f8"}  # the header's dtype -> its parameters' dtype
GROUPS = ("params", "state", "optimizer")  # tensor groups, in the order they are stored

# Limits. Each bounds the work or the memory a hostile file can cause before it is refused.
MAX_FILE_BYTES = 16 << 30  # 16 GiB
MAX_HEADER_BYTES = 32 << 20  # the msgpack header: spec, directory, log...
HASH_BLOCK = 16 << 20  # a tensor's checksum is one SHA-256 per block of this many bytes


def align(n: int) -> int:
    """The first multiple of ALIGN at or after n."""
    return -(-n // ALIGN) * ALIGN


def data_start(header_length: int) -> int:
    """Where the tensor section starts for a header of that many bytes."""
    return align(PRELUDE.size + header_length)


def pack_prelude(header: bytes) -> bytes:
    return PRELUDE.pack(MAGIC, FORMAT, 0, len(header), hashlib.sha256(header).digest())


def nbytes_of(shape: Sequence[int], dtype: str) -> int:
    """Exact byte count of a tensor: the product of its shape times the item size."""
    return math.prod(shape) * DTYPES[dtype].itemsize


def canonical_offsets(entries: Sequence[Any]) -> tuple[list[int], int]:
    """Offsets (relative to data_start) of tensors with these ``nbytes``, in this order, each at
    the next multiple of ALIGN; and where the last one ends (0 without tensors)."""
    offsets, end = [], 0
    for entry in entries:
        offset = align(end)
        offsets.append(offset)
        end = offset + entry.nbytes
    return offsets, end


# ----------------------------------------------------------------------------------------------
# Opening a file that may not be a file at all
# ----------------------------------------------------------------------------------------------


def open_regular(path: str | Path, limit: int | None = None) -> tuple[BinaryIO, int]:
    """Open ``path`` for reading if it is a regular file no larger than ``limit`` (default
    MAX_FILE_BYTES): a FIFO is refused before it is opened (opening one blocks), a directory is
    named as one. Returns the unbuffered file and its size."""
    file = str(path)
    limit = MAX_FILE_BYTES if limit is None else limit
    try:
        info = os.stat(path)
    except OSError as error:
        raise _os_error(error, file) from None
    _check_kind(info, file, limit)
    try:
        # O_NONBLOCK: if the path was swapped for a FIFO since the stat, open does not block.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise _os_error(error, file) from None
    handle = open(fd, "rb", buffering=0, closefd=True)
    try:
        info = os.fstat(fd)
        _check_kind(info, file, limit)
    except BaseException:
        handle.close()
        raise
    return handle, info.st_size


def _check_kind(info: os.stat_result, file: str, limit: int) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise ModelFileError("is a directory, not a model file", file=file,
                             hint="pass a .gnm file written by `graphnet run`")
    if not stat.S_ISREG(info.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "not a regular file"
        raise ModelFileError(f"is {kind}, not a model file", file=file,
                             hint="pass a .gnm file written by `graphnet run`")
    if info.st_size > limit:
        raise ModelFileError(
            f"is {info.st_size:,} bytes, more than the {limit:,} a model file may have", file=file,
            hint="this is not a graphnet model file, or a model too large for this format",
        )


def _os_error(error: OSError, file: str) -> ModelFileError:
    reason = error.strerror or str(error)
    hint = "check the path" if isinstance(error, FileNotFoundError) else "check the file's permissions"
    return ModelFileError(f"cannot read the model file: {reason}", file=file, hint=hint)


def read_exact(handle: BinaryIO, n: int) -> bytearray | None:
    """Exactly ``n`` bytes, or None if the file ends first."""
    buffer = bytearray(n)
    return buffer if read_into(handle, memoryview(buffer)) else None


def read_into(handle: BinaryIO, target: memoryview) -> bool:
    """Fill ``target`` from the file; False if the file ends first."""
    done = 0
    while done < len(target):
        got = handle.readinto(target[done:])
        if not got:
            return False
        done += got
    return True


# ----------------------------------------------------------------------------------------------
# Tensor bytes, hashed as they stream
# ----------------------------------------------------------------------------------------------


def block_count(nbytes: int) -> int:
    """How many HASH_BLOCK-byte blocks (the last one may be shorter) a tensor's digest list has."""
    return max(1, -(-nbytes // HASH_BLOCK))


def block_digests(data: bytes | memoryview) -> list[str]:
    """The hex SHA-256 of each HASH_BLOCK-byte block of ``data``, in order (one block at least)."""
    view = memoryview(data).cast("B")
    return [hashlib.sha256(view[start : start + HASH_BLOCK]).hexdigest()
            for start in range(0, max(len(view), 1), HASH_BLOCK)]


class Streamer:
    """Reads or writes tensor bytes block by block, hashing each block (SHA-256) as it passes.

    Blocks are hashed in helper threads while the next ones are read (or while they are written):
    hashlib and file I/O both release the GIL, so a large load costs about max(disk, hash / cores)
    instead of disk + hash. Use as a context manager (threads are created on first need, for
    tensors of more than one block, and ended on exit)."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads or min(4, os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> "Streamer":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _hash(self, block: memoryview, blocks: int) -> Future | str:
        """The block's hex digest: now for a one-block tensor, else a future of it."""
        if blocks == 1:
            return hashlib.sha256(block).hexdigest()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="graphnet-sha256")
        return self._pool.submit(lambda: hashlib.sha256(block).hexdigest())

    def read(self, handle: BinaryIO, target: np.ndarray) -> tuple[list[str], bool] | None:
        """Fill the C-contiguous ``target`` from the file. Returns the block digests of the bytes
        read and whether every value is finite (always True for integers), or None if the file
        ended first. Each block is checked for NaN/Inf right after it is read, while it is in the
        CPU's cache."""
        flat = target.reshape(-1)
        floats = target.dtype.kind == "f"
        finite = True
        blocks = block_count(target.nbytes)
        step = HASH_BLOCK // target.itemsize
        pending: list[Future | str] = []
        try:
            for start in range(0, max(flat.size, 1), step):
                values = flat[start : start + step]
                block = byte_view(values)
                if not read_into(handle, block):
                    return None
                if floats and finite:  # min and max propagate NaN, and show an infinity
                    finite = bool(np.isfinite(values.min()) and np.isfinite(values.max()))
                pending.append(self._hash(block, blocks))
        finally:
            digests = [p if isinstance(p, str) else p.result() for p in pending]
        return digests, finite

    def write(self, handle: BinaryIO, source: np.ndarray) -> tuple[list[str], bool]:
        """Write the C-contiguous ``source`` to the file. Returns its block digests and whether
        every value is finite (the caller refuses the file if not: it is a temporary file)."""
        flat = source.reshape(-1)
        floats = source.dtype.kind == "f"
        finite = True
        blocks = block_count(source.nbytes)
        step = HASH_BLOCK // source.itemsize
        starts = range(0, max(flat.size, 1), step)
        pending = [self._hash(byte_view(flat[start : start + step]), blocks) for start in starts]
        try:
            for start in starts:
                values = flat[start : start + step]
                if floats and finite:
                    finite = bool(np.isfinite(values.min()) and np.isfinite(values.max()))
                offset = handle.tell()
                write_all(handle, byte_view(values))
                start_writeback(handle, offset, values.nbytes)
        finally:
            digests = [p if isinstance(p, str) else p.result() for p in pending]
        return digests, finite


def byte_view(array: np.ndarray) -> memoryview:
    """The bytes of a C-contiguous array, without a copy (0-d arrays included)."""
    return memoryview(array.reshape(-1)).cast("B")
