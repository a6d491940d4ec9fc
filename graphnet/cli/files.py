"""Files the commands read and write besides specs and model files (which their own loaders
read): JSON, .npz, .npy, YAML, figures. Every problem is one GraphnetError naming the file.

Reading refuses, before opening anything, what is not a regular file (opening a FIFO blocks
forever), a directory, an empty file and a file over a size limit. Writing never replaces an
existing file unless asked (``--overwrite``), and writes to a temporary file in the same
folder renamed into place, so a killed command leaves the old file or the new one.
"""

from __future__ import annotations

import io
import os
import stat
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..errors import GraphnetError

if TYPE_CHECKING:  # numpy is imported where it is used: `graphnet --help` starts without it
    import numpy as np

MAX_INPUT_BYTES = 4 << 30  # JSON models, .npz and .npy inputs: 4 GiB


def check_source(path: Path, what: str, limit: int = MAX_INPUT_BYTES) -> int:
    """The size of ``path`` once it is known to be a regular, readable, non-empty file of at
    most ``limit`` bytes; else one GraphnetError saying what it is instead (``what``: "a JSON
    model", for the message)."""
    file = str(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise GraphnetError("no such file", file=file, hint="check the path") from None
    except OSError as error:
        raise GraphnetError(f"cannot read the file: {error.strerror or error}", file=file,
                            hint="check the path and the permissions") from None
    if stat.S_ISDIR(info.st_mode):
        raise GraphnetError(f"is a directory, not {what}", file=file, hint=f"give the path of {what}")
    if not stat.S_ISREG(info.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "not a regular file"
        raise GraphnetError(f"is {kind}, not {what}", file=file, hint=f"give the path of {what}")
    if info.st_size == 0:
        raise GraphnetError(f"the file is empty (0 bytes), not {what}", file=file,
                            hint="a copy or a download did not finish: make the file again")
    if info.st_size > limit:
        raise GraphnetError(f"is {info.st_size:,} bytes, more than the {limit:,} allowed for {what}",
                            file=file, hint=f"give {what}")
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise GraphnetError(f"cannot read the file: {error.strerror or error}", file=file,
                            hint="check the permissions") from None
    return info.st_size


def read_source(path: Path, what: str, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of ``path``, checked as :func:`check_source` says."""
    check_source(path, what, limit)
    try:
        return path.read_bytes()
    except OSError as error:
        raise GraphnetError(f"cannot read the file: {error.strerror or error}", file=str(path),
                            hint="check the path and the permissions") from None


def load_npz(path: Path, data: bytes) -> dict[str, np.ndarray]:
    """Every array of the .npz whose bytes are ``data``, never unpickling (an object array is
    refused, naming it)."""
    import zipfile  # here, as numpy: neither is needed to start the CLI

    import numpy as np

    file = str(path)
    try:
        archive = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise GraphnetError(f"is not a readable .npz file: {_one_line(error)}", file=file,
                            hint="write it with numpy.savez") from None
    if isinstance(archive, np.ndarray):
        raise GraphnetError("holds a single array (.npy), not an .npz archive", file=file,
                            hint="give it a .npy name, or write an .npz with numpy.savez")
    arrays = {}
    with archive:
        for name in archive.files:
            try:
                arrays[name] = archive[name]
            except ValueError as error:
                raise GraphnetError(f"array '{name}' cannot be read without unpickling: {_one_line(error)}",
                                    file=file, hint="store plain numeric arrays (no dtype=object)") from None
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
                raise GraphnetError(f"array '{name}' is corrupt: {_one_line(error)}", file=file,
                                    hint="write the file again") from None
    return arrays


def load_npy(path: Path, data: bytes) -> np.ndarray:
    """The array of the .npy whose bytes are ``data``, never unpickling."""
    import numpy as np

    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise GraphnetError(f"is not a readable .npy file: {_one_line(error)}", file=str(path),
                            hint="write it with numpy.save (plain numeric arrays)") from None
    if not isinstance(array, np.ndarray):
        raise GraphnetError("is an .npz archive, not a .npy array", file=str(path),
                            hint="give it an .npz name")
    return array


def check_destination(path: Path, overwrite: bool, source: Optional[Path] = None) -> None:
    """Refuse to write ``path`` when it exists (unless ``overwrite``), is a directory, or is the
    ``source`` itself; before any work is done."""
    file = str(path)
    if path.is_dir():
        raise GraphnetError("is a directory", file=file, hint="give a file name to write")
    if source is not None and path.exists() and path.resolve() == source.resolve():
        raise GraphnetError("is the file being converted", file=file, hint="write to another file")
    if path.exists() and not overwrite:
        raise GraphnetError("already exists", file=file,
                            hint="pass --overwrite to replace it, or write to another file")


def write_atomically(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file renamed into place (its folder is
    created if needed; see graphnet.atomic). Returns ``path``."""
    from ..atomic import write_atomic

    return write_atomic(path, data)


def _one_line(error: object) -> str:
    return " ".join(str(error).split())
