"""Atomic writes: every file graphnet writes (model files, figures, ONNX exports, converted files,
sweep journals) goes through here.

The data is written to a temporary file next to the target, flushed to disk, then renamed over the
target, and the folder is synced so the rename itself is durable. A process killed at any moment
leaves the old file or the new one, never a torn one (at worst a stray ``.NAME.*.tmp``). The new
file gets the permissions a plainly created file would (``0o666`` less the umask).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from .errors import GraphnetError


@contextlib.contextmanager
def atomic_file(
    path: str | Path, *, what: str = "the file", error: type[GraphnetError] = GraphnetError,
    hint: str = "choose a writable location",
) -> Iterator[BinaryIO]:
    """A binary handle on a temporary file next to ``path``, renamed over it when the block ends
    without error; removed otherwise (Ctrl-C included). Its folder is created if needed. An
    ``OSError`` becomes one ``error`` ("cannot write <what>: ...") naming the file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as problem:
        raise error(f"cannot write {what}: {problem.strerror or problem}", file=str(path), hint=hint) from None
    try:
        with open(fd, "wb", buffering=0) as handle:
            yield handle
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        _sync_folder(path.parent)
    except OSError as problem:
        Path(tmp).unlink(missing_ok=True)
        raise error(f"cannot write {what}: {problem.strerror or problem}", file=str(path),
                    hint="check the disk space and the permissions there") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_all(handle: BinaryIO, data: bytes | memoryview) -> None:
    """Write every byte (an unbuffered handle may take fewer per call)."""
    view = memoryview(data).cast("B")
    while view:
        written = handle.write(view)
        view = view[written:]


def start_writeback(handle: BinaryIO, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``length`` bytes from ``offset`` to disk now, without
    waiting (Linux: ``posix_fadvise(DONTNEED)`` starts writeback of dirty pages and keeps them
    cached). A large file written block by block then reaches the disk while the next blocks are
    prepared, and the final fsync waits for little. Durability still comes from that fsync; where
    the call is missing or refused this is a no-op."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return
    try:
        advise(handle.fileno(), offset, length, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass


def write_atomic(
    path: str | Path, data: bytes, *, what: str = "the file", error: type[GraphnetError] = GraphnetError,
    hint: str = "choose a writable location",
) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`); returns the path."""
    with atomic_file(path, what=what, error=error, hint=hint) as handle:
        write_all(handle, data)
    return Path(path)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
