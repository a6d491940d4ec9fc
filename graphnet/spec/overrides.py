"""``--set`` overrides: ``dotted.path=value`` applied to the raw spec data before validation, and
the attribution of an error to the ``--set`` that caused it.

An error is reported against a ``--set`` (``--set train.epochs=1: train: ...``) rather than the
file when the override set the value at the error's path, a mapping holding it, a value inside it
(``train.epochs`` for a rule about the whole ``train:`` section), or created the mapping the error
is in (``nodes.fc9.op=relu`` adds a node ``fc9`` the file does not have).

An override into a node or input the spec does not have (``nodes.fc3.attrs.units=5`` with no
``fc3``) is an error naming it and listing the ones it has, rather than a new, half-made entry
reported as "missing required key 'op'"; so is one into `layers:` when the spec uses `nodes:`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ..errors import SpecError, clip, did_you_mean, listed
from .text import MAX_DEPTH, parse_value

# Mappings whose keys are names the user chose (``nodes.<name>``, ``inputs.<name>``), and the key
# that defines a new entry there: `--set nodes.fc9.op=relu` adds a node, but
# `--set nodes.fc3.attrs.units=5` with no node fc3 is a mistake in the name, not a new node.
_NAMED = {"nodes": ("node", "op"), "inputs": ("input", "shape")}


def apply_override(data: dict, item: str, file: str | None = None) -> None:
    """Apply one ``dotted.path=value`` override to raw spec data, in place.

    The value is parsed as YAML (so ``0.1`` is a number, ``[1, 2]`` a list, ``true`` a bool).
    Missing intermediate mappings are created, except a node or input the spec does not have
    (unless the override defines it: ``nodes.NEW.op=...``, ``inputs.NEW.shape=...``) and the
    ``layers:`` section of a spec that declares ``nodes:``. The result is validated with the
    rest of the spec.
    """
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SpecError(
            f"--set expects PATH=VALUE, received {item!r}",
            hint="for example --set train.optimizer.lr=0.1",
        )
    where = f"--set {clip(item, 200)}"
    parts = key.split(".")
    if len(parts) > MAX_DEPTH:
        raise SpecError(
            f"the path has {len(parts)} parts; a spec nests at most {MAX_DEPTH} levels",
            file=where, hint="check the path",
        )
    value = parse_value(raw, where)
    _check_names(data, parts, where)
    node: Any = data
    for i, part in enumerate(parts):
        path = clip(".".join(parts[: i + 1]), 200)  # for messages
        if isinstance(node, list):
            slot: Any = _list_index(node, part, path, where)
        elif isinstance(node, dict):
            slot = part
        else:
            raise SpecError(
                f"'{clip('.'.join(parts[:i]))}' is a {type(node).__name__}, not a mapping",
                path=path, file=where, hint="check the path",
            )
        if i == len(parts) - 1:
            node[slot] = value
            return
        if isinstance(node, dict) and node.get(slot) is None:
            node[slot] = {}
        node = node[slot]


def _check_names(data: dict, parts: list[str], where: str) -> None:
    """Refuse an override into a node, an input or a `layers:` section the spec does not have
    (creating it would only lead to a confusing "missing required key" about the new entry)."""
    section = parts[0]
    if section == "layers" and len(parts) > 1 and data.get("layers") is None and data.get("nodes"):
        raise SpecError(
            "the spec has no `layers` section (it declares its graph with `nodes:`)",
            path="layers", file=where,
            hint="set a node's attribute instead, e.g. --set nodes.<name>.attrs.<attribute>=...",
        )
    if section not in _NAMED or len(parts) < 3:
        return  # `nodes.NEW={op: relu, ...}` gives a whole entry
    what, defining = _NAMED[section]
    entries = data.get(section)
    name = parts[1]
    if isinstance(entries, dict) and name in entries:
        return
    if len(parts) == 3 and parts[2] == defining:
        return  # `nodes.NEW.op=relu` adds a node
    known = list(entries) if isinstance(entries, dict) else []
    if section == "nodes" and data.get("layers") is not None:
        hint = (
            "nodes made by the `layers:` shorthand (fc1, fc2, ...) are changed through layers, "
            "e.g. --set layers.sizes=[...]"
        )
        if known:
            hint += f"; the spec's own nodes: {listed(known)}"
    elif known:
        hint = did_you_mean(name, known, f"its {what}s")
    else:
        hint = f"the spec has no `{section}:` entries"
    name = clip(name)
    hint += f"; to add a {what}, set its {defining} first (--set {section}.{name}.{defining}=...)"
    raise SpecError(f"there is no {what} '{name}'", path=f"{section}.{name}", file=where, hint=hint)


def _list_index(node: list, part: str, path: str, where: str) -> int:
    digits = part.lstrip("-")
    if not digits.isdigit() or len(digits) > 18 or not -len(node) <= int(part) < len(node):
        raise SpecError(
            f"'{clip(part)}' is not an index of a list of {len(node)} items",
            path=path, file=where,
            hint=f"use an index from 0 to {len(node) - 1}" if node else "the list is empty",
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
