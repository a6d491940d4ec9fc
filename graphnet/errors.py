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


def raise_all(errors: list[GraphnetError]) -> None:
    """Raise the first of ``errors`` carrying the others (up to ``MAX_REPORTED`` in all, plus one
    line counting the rest) in ``more``; do nothing when the list is empty."""
    if not errors:
        return
    first, rest = errors[0], list(errors[1:MAX_REPORTED])
    if len(errors) > MAX_REPORTED:
        rest.append(type(first)(f"... and {len(errors) - MAX_REPORTED} more errors", file=first.file))
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
    """The known name most like ``name`` (a likely typo of it), or None."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
    return close[0] if close else None


def did_you_mean(name: str, known: Iterable[Any], listing: str = "known") -> str:
    """The hint for a name that is not one of ``known``:
    ``did you mean 'units'? its attributes: units, bias`` (``listing`` names the list)."""
    known = [str(k) for k in known]
    close = closest(name, known)
    prefix = f"did you mean '{close}'? " if close is not None else ""
    return f"{prefix}{listing}: {', '.join(known)}"


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
