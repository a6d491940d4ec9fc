"""What a file is, when it is not a graphnet model file: the error says what it looks like.

People pass the wrong file: the spec instead of the model, a picture, an archive, an empty file
left by a crashed copy. Naming what was received is the quickest way to the fix.
"""

from __future__ import annotations

import re

from ..errors import ModelFileError
from .layout import MAGIC

V1_MAGIC = b"graphnet-model"
SNIFF_BYTES = 4096  # how much of the start of a file is looked at

_SIGNATURES = [
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x93NUMPY", "a NumPy .npy array"),
    (b"PK\x03\x04", "a zip archive (an .npz?)"),
    (b"\x1f\x8b", "a gzip file"),
    (b"\x80\x02", "a Python pickle (never loaded: pickles run code)"),
    (b"\x80\x03", "a Python pickle (never loaded: pickles run code)"),
    (b"\x80\x04", "a Python pickle (never loaded: pickles run code)"),
    (b"\x80\x05", "a Python pickle (never loaded: pickles run code)"),
]
_SPEC_KEYS = re.compile(r"^(format|name|inputs|nodes|layers|outputs|train)\s*:", re.MULTILINE)
_HINT = "pass a .gnm file written by `graphnet run`"


def is_format1(head: bytes) -> bool:
    """A format-1 file: one msgpack map (fixmap, map16 or map32) holding the marker string."""
    return bool(head) and (0x80 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF)) and V1_MAGIC in head[:64]


def is_model_file(head: bytes) -> bool:
    """Does a file starting with ``head`` claim to be a graphnet model file (any format)?
    For other loaders: a spec loader given a model file can say so."""
    return head.startswith(MAGIC) or is_format1(head)


def foreign(head: bytes, size: int, file: str) -> ModelFileError:
    """The error for a file that does not start like a model file (``head``: its first bytes)."""
    if size == 0:
        return ModelFileError("the file is empty (0 bytes), not a model file", file=file, hint=_HINT)
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            return ModelFileError(f"this is {what}, not a graphnet model file", file=file, hint=_HINT)
    if MAGIC.startswith(head[: len(MAGIC)]) and size < len(MAGIC):
        return ModelFileError(f"the file is truncated: {size} bytes, less than the prelude", file=file,
                              hint="use an intact copy of the file")
    text = _as_text(head)
    if text is not None:
        looks_like_spec = text.lstrip().startswith("{") or _SPEC_KEYS.search(text) is not None
        if looks_like_spec:
            return ModelFileError(
                "this is a spec, not a model file; did you mean `graphnet run` or `graphnet validate`?"
                + _encoding_note(head), file=file,
                hint="a model file is what `graphnet run` writes (runs/NAME.gnm)")
        return ModelFileError("this is a text file, not a graphnet model file" + _encoding_note(head),
                              file=file, hint=_HINT)
    return ModelFileError(
        "not a graphnet model file (it does not start with the model file signature)", file=file, hint=_HINT)


def _as_text(head: bytes) -> str | None:
    """The start of the file as text, if it looks like text (no NUL, mostly printable)."""
    if not head or b"\x00" in head:
        return None
    printable = sum(1 for b in head if b >= 0x20 or b in (0x09, 0x0A, 0x0D))
    if printable < 0.95 * len(head):
        return None
    return head.decode("utf-8", errors="replace")


def _encoding_note(head: bytes) -> str:
    """' (and not UTF-8: byte 0xe9 at line 1)' when the text is not valid UTF-8."""
    try:
        head.decode("utf-8")
        return ""
    except UnicodeDecodeError as error:
        if error.start >= len(head) - 3 and len(head) >= SNIFF_BYTES:
            return ""  # a character cut by the end of the sniffed bytes
        line = head[: error.start].count(b"\n") + 1
        return f" (and not UTF-8 text: byte 0x{head[error.start]:02x} at line {line})"
