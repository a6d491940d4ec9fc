"""``--set`` overrides: ``dotted.path=value`` applied to the raw spec data before validation, and
the attribution of an error to the ``--set`` that caused it.

An error is reported against a ``--set`` (``--set train.epochs=1: train: ...``) rather than the
file when the override set the value at the error's path, a mapping holding it, a value inside it
(``train.epochs`` for a rule about the whole ``train:`` section), or created the mapping the error
is in (``nodes.fc9.op=relu`` adds a node ``fc9`` the file does not have).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import yaml

from ..errors import SpecError


def apply_override(data: dict, item: str, file: str | None = None) -> None:
    """Apply one ``dotted.path=value`` override to raw spec data, in place.

    The value is parsed as YAML (so ``0.1`` is a number, ``[1, 2]`` a list, ``true`` a bool).
    Missing intermediate mappings are created; the result is validated with the rest of the spec.
    """
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SpecError(
            f"--set expects PATH=VALUE, received {item!r}",
            hint="for example --set train.optimizer.lr=0.1",
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    parts = key.split(".")
    node: Any = data
    for i, part in enumerate(parts):
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            slot: Any = _list_index(node, part, where, item)
        elif isinstance(node, dict):
            slot = part
        else:
            raise SpecError(
                f"--set {item!r}: '{'.'.join(parts[:i])}' is a {type(node).__name__}, not a mapping",
                path=where,
                hint="check the path",
            )
        if i == len(parts) - 1:
            node[slot] = value
            return
        if isinstance(node, dict) and node.get(slot) is None:
            node[slot] = {}
        node = node[slot]


def _list_index(node: list, part: str, where: str, item: str) -> int:
    if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
        raise SpecError(
            f"--set {item!r}: '{part}' is not an index of a list of {len(node)} items",
            path=where,
            hint=f"use an index from 0 to {len(node) - 1}",
        )
    return int(part)


def override_for(path: str, overrides: list[str], in_file: Collection[str] = ()) -> str | None:
    """The last ``--set`` item an error at ``path`` (dotted) comes from, if one.

    An item counts when its key is the path, holds it (``train.optimizer`` for
    ``train.optimizer.lr``), lies under it (``train.epochs`` for an error about ``train``), or
    shares with it a mapping that is not in the file (``in_file``: the dotted paths the file
    has), which the override must have created (only judged when ``in_file`` is known).
    """
    if not path:
        return None
    found = None
    for item in overrides:
        key = item.partition("=")[0].strip()
        if key == path or path.startswith(key + ".") or key.startswith(path + "."):
            found = item
            continue
        shared = _common_prefix(key, path)
        if shared and in_file and shared not in in_file:
            found = item
    return found


def _common_prefix(one: str, other: str) -> str:
    shared = []
    for a, b in zip(one.split("."), other.split(".")):
        if a != b:
            break
        shared.append(a)
    return ".".join(shared)
