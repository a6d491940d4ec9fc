"""Typed errors. Every error graphnet raises on bad input is a ``GraphnetError``.

An error knows *where* (the file, the dotted spec path such as ``nodes.fc2.inputs.x`` and the
line in the file), *what* was received, and *how to fix it*. ``str(error)`` renders all of that on
one line, which is what the CLI prints.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class GraphnetError(Exception):
    """Base class of every error graphnet reports to a user."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        file: str | None = None,
        line: int | None = None,
        hint: str | None = None,
        more: list["GraphnetError"] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.file = file
        self.line = line
        self.hint = hint
        # further errors found in the same pass over the same input (all reported at once)
        self.more: list[GraphnetError] = list(more or [])

    def all(self) -> list["GraphnetError"]:
        """This error and the others found with it, in the order found."""
        return [self, *self.more]

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file + (f":{self.line}" if self.line is not None else "")
        elif self.line is not None:
            where = f"line {self.line}"
        parts = []
        if where:
            parts.append(where)
        if self.path:
            parts.append(self.path)
        text = ": ".join(parts + [self.message])
        if self.hint:
            text += f" ({self.hint})"
        return text


MAX_REPORTED = 20  # errors of one input reported at once; the rest are counted


def raise_all(errors: list[GraphnetError], total: int | None = None) -> None:
    """Raise the first of ``errors`` carrying the others (up to ``MAX_REPORTED`` in all, plus one
    line counting the rest) in ``more``; do nothing when the list is empty. ``total`` is the
    number of errors found when only some of them were turned into ``errors``."""
    if not errors:
        return
    total = max(total or 0, len(errors))
    first, rest = errors[0], list(errors[1:MAX_REPORTED])
    if total > MAX_REPORTED:
        rest.append(type(first)(f"... and {total - MAX_REPORTED} more errors", file=first.file))
    first.more = rest
    raise first


class SpecError(GraphnetError):
    """The spec is malformed: unknown keys, bad values, bad references, cycles."""


class ShapeError(SpecError):
    """Static shape inference found inputs that do not fit together."""


class OpError(GraphnetError):
    """An op is unknown, misbehaves, or cannot be loaded."""


class RegistryError(OpError):
    """The op registry is inconsistent (two distributions claim the same op name)."""


class PluginLoadError(OpError):
    """A plugin's entry point failed to import."""


class GradientError(GraphnetError):
    """An op's backward returned gradients of the wrong count, shape or dtype."""


class DataError(GraphnetError):
    """A dataset is missing, corrupt, or does not match the spec's inputs."""


class TrainingError(GraphnetError):
    """Training cannot go on (for example the loss became non-finite)."""


class ModelFileError(GraphnetError):
    """A model file is unreadable, corrupt, or from an unsupported format version."""


# ----------------------------------------------------------------------------------------------
# Helpers for building messages
# ----------------------------------------------------------------------------------------------


def closest(name: str, known: Iterable[Any]) -> str | None:
    """The known name most like ``name`` (a likely typo of it), or None. A name longer than any
    sensible one is nobody's typo (and difflib's time grows with its length)."""
    if len(str(name)) > 200:
        return None
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
    return close[0] if close else None


MAX_LISTED = 40  # names a hint lists before counting the rest (a graph may have 100,000 nodes)


def did_you_mean(name: str, known: Iterable[Any], listing: str = "known") -> str:
    """The hint for a name that is not one of ``known``:
    ``did you mean 'units'? its attributes: units, bias`` (``listing`` names the list, which
    stops after ``MAX_LISTED`` names with a count of the rest)."""
    known = [str(k) for k in known]
    close = closest(name, known)
    prefix = f"did you mean '{close}'? " if close is not None else ""
    return f"{prefix}{listing}: {listed(known)}"


def listed(names: list[str], limit: int = MAX_LISTED) -> str:
    """``a, b, c`` — or the first ``limit`` names and ``... (N more)``."""
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", ... ({len(names) - limit:,} more)"


def clip(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters (``...`` marks a cut): a name or key quoted in a
    message, which may be a 10 MB string in a hostile file."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def short(value: Any, limit: int = 60) -> str:
    """A repr of ``value`` for a message, at most ``limit`` characters (``...`` marks a cut).

    Never builds more than it shows: a list of 10^9 items (an alias bomb) or a string of 16 MiB
    costs as much as a short one, and deep nesting is walked without recursion. Integers too
    large to print are described by their number of digits.
    """
    out: list[str] = []
    size = 0
    # a stack of pending pieces: either text to emit or a value to render
    stack: list[tuple[bool, Any]] = [(False, value)]
    while stack and size <= limit:
        is_text, item = stack.pop()
        if is_text:
            piece = item
        elif isinstance(item, (list, tuple, dict, set, frozenset)):
            piece, parts = _container_pieces(item, limit - size)
            stack.extend(reversed(parts))
        else:
            piece = _scalar_repr(item, limit - size + 4)
        out.append(piece)
        size += len(piece)
    text = "".join(out)
    if size > limit or stack:
        return text[: max(limit - 3, 0)] + "..."
    return text


def _container_pieces(item: Any, budget: int) -> tuple[str, list[tuple[bool, Any]]]:
    """The opening bracket of a container and the pieces that follow it (at most as many items
    as could fit in ``budget`` characters)."""
    if isinstance(item, dict):
        opening, closing = "{", "}"
    elif isinstance(item, list):
        opening, closing = "[", "]"
    elif isinstance(item, tuple):
        opening, closing = "(", ")"
    else:
        opening, closing = "{", "}"
    parts: list[tuple[bool, Any]] = []
    taken = 0
    iterator = iter(item.items() if isinstance(item, dict) else item)
    for entry in iterator:
        if taken > budget // 2 + 1:  # each item prints at least ", x": no need to go further
            parts.append((True, ", ..."))
            break
        if taken:
            parts.append((True, ", "))
        if isinstance(item, dict):
            key, val = entry
            parts.extend([(False, key), (True, ": "), (False, val)])
        else:
            parts.append((False, entry))
        taken += 1
    if isinstance(item, tuple) and taken == 1:
        parts.append((True, ","))
    parts.append((True, closing))
    return opening, parts


def _scalar_repr(item: Any, budget: int) -> str:
    if isinstance(item, str):
        return repr(item[: max(budget, 0)])  # cut before repr: never copy a huge string
    if isinstance(item, (bytes, bytearray)):
        return repr(bytes(item[: max(budget, 0)]))
    if isinstance(item, bool) or item is None or isinstance(item, float):
        return repr(item)
    if isinstance(item, int):
        if item.bit_length() > 200:
            digits = int(item.bit_length() * 0.30103) + 1
            return f"<an integer of about {digits:,} digits>"
        return repr(item)
    if isinstance(item, (int, float, complex)) or type(item).__module__ == "datetime":
        return repr(item)
    return f"<{type(item).__name__}>"


def to_report(errors: list[dict]) -> list[dict]:
    """Which of pydantic's errors (``ValidationError.errors()``) to report: all of them, except
    the "missing" twin of a typo. A typo in a required key causes both "unknown key 'unitz'" and
    "missing 'units'" in the same mapping, and the unknown key, with its "did you mean 'units'?",
    is the one that says what to fix: a missing key close to an unknown key of the same mapping
    is dropped. Each mapping is judged on its own."""
    unknown: dict[tuple, list[str]] = {}
    for e in errors:
        if e["type"] == "extra_forbidden" and e["loc"]:
            unknown.setdefault(tuple(e["loc"][:-1]), []).append(str(e["loc"][-1]))
    kept = []
    for e in errors:
        if e["type"] == "missing" and e["loc"]:
            typos = unknown.get(tuple(e["loc"][:-1]), [])
            if any(closest(typo, [str(e["loc"][-1])]) is not None for typo in typos):
                continue
        kept.append(e)
    return kept


def first_to_report(errors: list[dict]) -> dict:
    """Which of pydantic's errors (``ValidationError.errors()``) to report: the first one, except
    that an unknown key is preferred over a missing one. A typo in a required key causes both,
    and "unknown key 'unitz' (did you mean 'units'?)" is the one that says what to fix."""
    first = errors[0]
    if first["type"] != "missing":
        return first
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    siblings = [e for e in unknown if tuple(e["loc"][:-1]) == tuple(first["loc"][:-1])]
    return (siblings or unknown or [first])[0]
