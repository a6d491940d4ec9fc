"""Reading a spec file: what the path holds, before any parsing.

The path a user gives may be anything: a spec, a model file, a PNG, a directory, a named pipe,
16 GiB of zeros. ``read_spec_file`` returns the text of a spec or raises one
:class:`~graphnet.errors.SpecError` that starts with the file name and says what the file is:
it stats before opening (a FIFO would block, a directory cannot be read), refuses files over
``MAX_SPEC_BYTES`` unread, recognises model files and common binary formats by their first
bytes, and decodes UTF-8 (naming the first byte that is not, and its line).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import SpecError

MAX_SPEC_BYTES = 16 * 2**20  # a 100,000-node spec is about 10 MiB of YAML

# Leading bytes of files people pass by mistake -> what they are.
_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"%PDF-", "PDF document"),
    (b"PK\x03\x04", "zip archive, e.g. an .npz"),
    (b"\x1f\x8b", "gzip-compressed file"),
    (b"\x93NUMPY", "NumPy .npy array"),
    (b"\x00\x00\x08\x01", "IDX file (labels)"),
    (b"\x00\x00\x08\x03", "IDX file (images)"),
    (b"\x7fELF", "executable"),
    (b"\x80\x02", "Python pickle"),
    (b"\x80\x03", "Python pickle"),
    (b"\x80\x04", "Python pickle"),
    (b"\x80\x05", "Python pickle"),
]
# How graphnet model files begin (graphnet.modelfile, which this layer cannot import; a test
# keeps the two equal): format 2 starts with MODEL_MAGIC, format 1 is a msgpack map holding
# MODEL_MAGIC_V1 as the value of "magic" within its first 64 bytes.
MODEL_MAGIC = b"\x89GNM\r\n\x1a\n"
MODEL_MAGIC_V1 = b"graphnet-model"


def read_spec_file(path: Path) -> str:
    """The text of the spec file at ``path``, or a SpecError saying what the file is instead."""
    file = str(path)
    try:
        info = os.stat(path)
    except (OSError, ValueError) as error:  # ValueError: a NUL byte in the path
        raise _unreadable(file, error) from None
    if stat.S_ISDIR(info.st_mode):
        raise SpecError("this is a directory, not a spec file", file=file, hint=_specs_in(path))
    if not stat.S_ISREG(info.st_mode):
        # Opening a FIFO blocks until someone writes to it; a device may never end.
        raise SpecError(
            f"this is {_file_kind(info.st_mode)}, not a regular file", file=file,
            hint="give the path of a .yaml or .json spec file",
        )
    if info.st_size > MAX_SPEC_BYTES:
        raise too_large(file, info.st_size)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SPEC_BYTES + 1)
    except OSError as error:
        raise _unreadable(file, error) from None
    if len(data) > MAX_SPEC_BYTES:  # it grew since the stat
        raise too_large(file, len(data))
    return decode_spec_bytes(data, file)


def decode_spec_bytes(data: bytes, file: str | None) -> str:
    """UTF-8 text of a spec, or a SpecError naming what ``data`` is (a model file, an image,
    Latin-1 text, binary junk, nothing at all)."""
    if not data.strip():
        raise SpecError("the spec file is empty", file=file, hint="a spec starts with `name:` and `inputs:`")
    if data.startswith(MODEL_MAGIC) or MODEL_MAGIC_V1 in data[:64]:
        raise SpecError(
            "this is a graphnet model file, not a spec", file=file,
            hint="did you mean `graphnet eval` or `graphnet inspect`?",
        )
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            raise SpecError(f"binary file ({kind}), not a spec", file=file, hint=_SPEC_HINT)
    if b"\x00" in data[:8192]:
        raise SpecError("binary file, not a spec (it holds NUL bytes)", file=file, hint=_SPEC_HINT)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _not_utf8(data, error, file) from None
    return text[1:] if text.startswith("\ufeff") else text  # a byte-order mark is not content


_SPEC_HINT = "give a YAML or JSON spec, such as specs/mnist-mlp.yaml"


def _not_utf8(data: bytes, error: UnicodeDecodeError, file: str | None) -> SpecError:
    head = data[:1024]
    controls = sum(1 for b in head if b < 9 or 13 < b < 32)
    bad = data[error.start]
    line = data.count(b"\n", 0, error.start) + 1
    if controls > len(head) // 20:  # text has next to no control characters; junk has many
        return SpecError(
            f"binary file, not a spec (byte 0x{bad:02x} at line {line} is not UTF-8 text)",
            file=file, hint=_SPEC_HINT,
        )
    latin1 = bytes([bad]).decode("cp1252", errors="replace")
    guess = f"; in Latin-1 that byte is {latin1!r}" if latin1.isprintable() and latin1 != "\ufffd" else ""
    return SpecError(
        f"not a UTF-8 text file: byte 0x{bad:02x} at line {line}", file=file,
        hint=f"save the file as UTF-8{guess}",
    )


def _unreadable(file: str, error: Exception) -> SpecError:
    if isinstance(error, FileNotFoundError):
        return SpecError(f"cannot read spec: {error.strerror}", file=file, hint="check the path")
    if isinstance(error, PermissionError):
        return SpecError(
            f"cannot read spec: {error.strerror}", file=file,
            hint="check the file's permissions (ls -l); graphnet needs to read it",
        )
    reason = getattr(error, "strerror", None) or str(error)
    return SpecError(f"cannot read spec: {reason}", file=file, hint="check the path")


def too_large(file: str | None, size: int) -> SpecError:
    return SpecError(
        f"the spec is {size / 2**20:,.1f} MiB, over the {MAX_SPEC_BYTES // 2**20} MiB limit for a spec",
        file=file, hint="a spec declares a network, not its data; is this the right file?",
    )


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _specs_in(directory: Path) -> str:
    try:
        found = sorted(
            entry.name for entry in os.scandir(directory)
            if entry.name.endswith((".yaml", ".yml", ".json")) and entry.is_file()
        )
    except OSError:
        found = []
    if not found:
        return "give the path of a .yaml or .json spec file"
    listing = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
    return f"give the path of a spec file in it: {listing}"
