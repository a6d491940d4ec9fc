"""Plain data: what a header may hold, decoded from msgpack with limits and checked without
recursion before any model looks at it.

A header holds maps with string keys, lists, strings, integers in the signed 64-bit range,
floats, booleans and nil: exactly what JSON can say, so a model converts to JSON and back without
loss. No binary strings, no extension types (msgpack's Timestamp, type -1, included), no
duplicate keys, nesting at most ``MAX_DEPTH`` deep, at most ``MAX_ITEMS`` entries in a map or a
list, strings of at most ``MAX_STRING`` characters (map keys ``MAX_KEY``).
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

from ..errors import ModelFileError, short

MAX_DEPTH = 32
MAX_ITEMS = 1 << 20
MAX_STRING = 1 << 20
MAX_KEY = 1024
INT64 = (-(1 << 63), (1 << 63) - 1)

NOT_PLAIN_HINT = "the file was edited or written by another program; see docs/model-format.md"


class _BadKey(Exception):
    def __init__(self, problem: str) -> None:
        self.problem = problem


def _pairs(pairs: list[tuple[Any, Any]]) -> dict:
    """msgpack's object_pairs_hook: a map, refusing keys that are not strings and a key seen
    twice (msgpack would keep the last one silently, so an edited file could hide a second value
    behind the first)."""
    result: dict = {}
    for key, value in pairs:
        if type(key) is not str:
            raise _BadKey(f"a map key is {type(key).__name__} {short(key)}; keys are strings")
        if key in result:
            raise _BadKey(f"has the key {short(key)} twice")
        result[key] = value
    return result


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ModelFileError(f"msgpack extension type {code} is not allowed in a model file")


def unpack(data: bytes, file: str, what: str, *, allow_bin: bool = False) -> Any:
    """Decode one msgpack value that fills ``data`` exactly, then check it is plain data.

    ``allow_bin`` admits binary strings (format 1 kept its weights in them)."""
    try:
        value = msgpack.unpackb(
            data, raw=False, strict_map_key=False, use_list=True, object_pairs_hook=_pairs,
            ext_hook=_refuse_ext, max_str_len=MAX_STRING * 4, max_bin_len=len(data),
            max_array_len=MAX_ITEMS, max_map_len=MAX_ITEMS, max_ext_len=64,
        )
    except ModelFileError as error:
        raise ModelFileError(f"{what}: {error.message}", file=file, hint=NOT_PLAIN_HINT) from None
    except _BadKey as bad:
        separator = " " if bad.problem.startswith("has ") else ": "
        raise ModelFileError(f"{what}{separator}{bad.problem}", file=file, hint=NOT_PLAIN_HINT) from None
    except msgpack.ExtraData:
        raise ModelFileError(f"{what} has bytes after its end", file=file, hint=NOT_PLAIN_HINT) from None
    except (msgpack.StackError, RecursionError):
        raise ModelFileError(f"{what} is nested too deeply", file=file, hint=NOT_PLAIN_HINT) from None
    except Exception as error:  # msgpack's errors: FormatError, StackError, ValueError, Unicode...
        raise ModelFileError(
            f"{what} is not valid msgpack ({type(error).__name__}: {short(str(error), 120)})",
            file=file, hint="the file is truncated or corrupted",
        ) from None
    check(value, file, what, allow_bin=allow_bin)
    return value


def check(value: Any, file: str, what: str, *, allow_bin: bool = False) -> None:
    """Refuse anything that is not plain data within the limits (iteratively: a deep file cannot
    exhaust the stack)."""
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, where = stack.pop()
        problem = _problem(item, depth, allow_bin)
        if problem is not None:
            raise ModelFileError(f"{what}{' at ' + where if where else ''}: {problem}", file=file,
                                 hint=NOT_PLAIN_HINT)
        if isinstance(item, dict):
            for key, child in item.items():
                stack.append((child, depth + 1, f"{where}.{key}" if where else str(key)))
        elif isinstance(item, list):
            for index, child in enumerate(item):
                stack.append((child, depth + 1, f"{where}.{index}" if where else str(index)))


def _problem(item: Any, depth: int, allow_bin: bool) -> str | None:
    kind = type(item)
    if kind in (dict, list):
        if depth >= MAX_DEPTH:
            return f"nested more than {MAX_DEPTH} levels deep"
        if len(item) > MAX_ITEMS:
            return f"{len(item):,} entries, more than the {MAX_ITEMS:,} allowed"
        if kind is dict:
            for key in item:
                if type(key) is not str:
                    return f"a map key is {type(key).__name__} {short(key)}; keys are strings"
                if len(key) > MAX_KEY:
                    return f"a map key of {len(key):,} characters, more than the {MAX_KEY} allowed"
        return None
    if kind is str:
        return None if len(item) <= MAX_STRING else (
            f"a string of {len(item):,} characters, more than the {MAX_STRING:,} allowed")
    if kind is int:
        return None if INT64[0] <= item <= INT64[1] else (
            f"the integer {short(item)} is outside the signed 64-bit range "
            "(larger integers are written as strings)")
    if kind in (float, bool, type(None)):
        return None
    if kind is bytes and allow_bin:
        return None
    if kind is bytes:
        return "binary data is not allowed in a header"
    if isinstance(item, msgpack.Timestamp):
        return "msgpack extension type -1 (a timestamp) is not allowed in a model file"
    return f"a value of type {kind.__name__} is not allowed"


def to_plain(value: Any, file: str | None = None) -> Any:
    """``value`` as plain data for a header, or a ModelFileError naming what cannot be stored.

    Tuples become lists and numpy scalars Python numbers; maps keep their order. Anything else
    (arrays, sets, objects) is refused: tensors go in the tensor groups, not in the header."""
    def refuse(where: str, what: str, hint: str | None = None) -> ModelFileError:
        return ModelFileError(f"cannot save: {what}", file=file, path=where or None, hint=hint)

    def convert(item: Any, depth: int, where: str) -> Any:
        if depth > MAX_DEPTH:
            raise refuse(where, f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, np.generic) and not isinstance(item, (np.void, np.str_, np.bytes_)):
            item = item.item()
        if item is None or isinstance(item, bool):
            return item if item is None else bool(item)
        if isinstance(item, str):
            return str(item)
        if isinstance(item, float):
            return float(item)
        if isinstance(item, int):
            if not INT64[0] <= item <= INT64[1]:
                raise refuse(where, f"the integer {short(item)} is outside the signed 64-bit range",
                             hint="write large integers as strings (rng_state_to_plain does for random states)")
            return int(item)
        if isinstance(item, dict):
            out = {}
            for key, child in item.items():
                if not isinstance(key, str):
                    raise refuse(where, f"the key {short(key)} is not a string")
                out[str(key)] = convert(child, depth + 1, f"{where}.{key}" if where else key)
            return out
        if isinstance(item, (list, tuple)):
            return [convert(child, depth + 1, f"{where}.{i}") for i, child in enumerate(item)]
        raise refuse(where, f"a {type(item).__name__} cannot be stored in a model file's header",
                     hint="use maps, lists, strings, numbers, booleans and None; arrays go in the tensor "
                          "groups (optimizer=, state=)")
    return convert(value, 0, "")
