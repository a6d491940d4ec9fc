"""Helpers every data module uses: paths relative to the spec, where an error points, and
one-line messages."""

from __future__ import annotations

from pathlib import Path


def resolve(path: str | Path, base: Path | None) -> Path:
    """``path`` with ``~`` expanded, relative to ``base`` (default: the working directory),
    made absolute (symbolic links are kept: messages show the path the user wrote)."""
    path = Path(path).expanduser()
    if not path.is_absolute():
        path = (base if base is not None else Path.cwd()) / path
    return path.absolute()


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) turned into one space.

    Messages quote errors from numpy, zipfile and urllib; an error is printed on ONE line."""
    return " ".join(str(text).split())


def located(where: str) -> dict[str, str]:
    """The keyword arguments of a DataError about what ``where`` named: a spec path such as
    ``train.data.path`` (the training code locates it in the spec file), or a command-line flag
    such as ``--data-dir x.npz`` (shown as the error's place as it is: not a spec path)."""
    return {"file": where} if where.startswith("--") else {"path": where}
