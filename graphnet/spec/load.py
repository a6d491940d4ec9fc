"""Loading a spec: read the text (YAML or JSON), remember the line of every key, apply ``--set``
overrides, validate with the pydantic models, and turn pydantic's errors into one located
:class:`~graphnet.errors.SpecError` (``file:line: dotted.path: what; received x (how to fix)``).

A key given twice in one mapping is an error (YAML and JSON parsers would silently keep the last).
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import BaseModel, Tag, ValidationError

from ..errors import SpecError, closest, did_you_mean, first_to_report
from .models import Spec, SpecRule, dotted, place
from .overrides import apply_override

_MERGE_TAG = "tag:yaml.org,2002:merge"


def load_spec(path: str | Path, overrides: list[str] | None = None) -> Spec:
    """Read, parse and structurally validate a spec file (YAML or JSON).

    ``overrides`` are ``dotted.path=value`` strings (the CLI's ``--set``), applied before
    validation so they are validated exactly like the file. Graph-level checks (ops, roles,
    shapes) are done by :func:`graphnet.graph.build_graph`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError(
            f"cannot read spec: {error.strerror or error}",
            file=str(path),
            hint="check the path",
        ) from None
    return parse_spec(text, file=str(path), overrides=overrides)


def parse_spec(text: str, file: str | None = None, overrides: list[str] | None = None) -> Spec:
    """Parse spec text (YAML or JSON; JSON is tried first when the text starts with '{')."""
    data, lines = _parse_text(text, file)
    if not isinstance(data, dict):
        raise SpecError(
            f"the spec must be a mapping at the top level, received {type(data).__name__}",
            file=file,
            line=1,
            hint="start the file with keys such as `name:` and `inputs:`",
        )
    for item in overrides or []:
        apply_override(data, item, file)
    return validate_spec_data(data, file=file, lines=lines, overrides=overrides)


def validate_spec_data(
    data: dict,
    file: str | None = None,
    lines: dict[str, int] | None = None,
    overrides: list[str] | None = None,
) -> Spec:
    """Validate raw spec data. ``lines`` maps dotted spec paths to lines of ``file``; an error in
    a value one of ``overrides`` set is reported against that ``--set``."""
    lines = lines or {}
    overrides = list(overrides or [])
    try:
        spec = Spec.model_validate(data)
    except ValidationError as error:
        raise _spec_error_from_pydantic(error, data, file, lines, overrides) from None
    spec._file = file
    spec._lines = lines
    spec._overrides = overrides
    return spec


# ----------------------------------------------------------------------------------------------
# Text -> data, and the line of every key
# ----------------------------------------------------------------------------------------------


def _parse_text(text: str, file: str | None) -> tuple[Any, dict[str, int]]:
    is_json = text.lstrip().startswith("{")
    # Valid JSON has no raw tab inside a string, so tabs are whitespace that YAML's composer
    # (which gives the lines of JSON too) would refuse.
    lines = _line_map(text.replace("\t", " ") if is_json else text, file)
    if is_json:
        try:
            data = json.loads(text, object_pairs_hook=_json_mapping(file))
        except json.JSONDecodeError as error:
            raise SpecError(
                f"invalid JSON: {error.msg}", file=file, line=error.lineno,
                hint="fix the JSON syntax at that line",
            ) from None
    else:
        try:
            data = yaml.load(text, Loader=_loader(file))  # a SafeLoader: plain data only
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            problem = getattr(error, "problem", None) or str(error)
            raise SpecError(
                f"invalid YAML: {problem}", file=file,
                line=mark.line + 1 if mark is not None else None,
                hint="fix the YAML syntax at that line",
            ) from None
    return data, lines


def _duplicate(
    key: Any, first: int | None, file: str | None, line: int | None, path: str | None = None
) -> SpecError:
    where = f" (first at line {first})" if first is not None else ""
    return SpecError(
        f"duplicate key '{key}'{where}", path=path, file=file, line=line,
        hint="a key may appear once in a mapping; remove or rename one",
    )


def _loader(file: str | None) -> type[yaml.SafeLoader]:
    class SpecLoader(yaml.SafeLoader):
        """A SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue  # `<<: *base` then a key of base is an override, not a duplicate
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: the base class reports it
                line = key_node.start_mark.line + 1
                if first is not None:
                    raise _duplicate(key, first, file, line)
                seen[key] = line
            return super().construct_mapping(node, deep=deep)

    return SpecLoader


def _json_mapping(file: str | None):
    def build(pairs: list[tuple[str, Any]]) -> dict:
        mapping: dict[str, Any] = {}
        for key, value in pairs:
            if key in mapping:
                raise _duplicate(key, None, file, None)
            mapping[key] = value
        return mapping

    return build


def _line_map(text: str, file: str | None) -> dict[str, int]:
    """Dotted spec path -> 1-based line, from YAML's node tree (JSON is read by the same
    composer). A key given twice in one mapping is reported here, with its path and both lines."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}  # the parser reports the syntax error
    lines: dict[str, int] = {}
    stack: list[tuple[str, Any]] = [("", root)]
    visited: set[int] = set()  # an alias reaches a node twice (or, recursive, forever)
    while stack:  # iterative walk, in document order
        path, node = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        children: list[tuple[str, Any]] = []
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue
                child = f"{path}.{key_node.value}" if path else str(key_node.value)
                line = key_node.start_mark.line + 1
                identity = (key_node.tag, key_node.value)
                if identity in seen:
                    raise _duplicate(key_node.value, seen[identity], file, line, child)
                seen[identity] = line
                lines[child] = line
                children.append((child, value_node))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                child = f"{path}.{index}" if path else str(index)
                lines[child] = item.start_mark.line + 1
                children.append((child, item))
        stack.extend(reversed(children))
    return lines


# ----------------------------------------------------------------------------------------------
# pydantic's errors -> one located SpecError
# ----------------------------------------------------------------------------------------------


def _spec_error_from_pydantic(
    error: ValidationError, data: dict, file: str | None, lines: dict[str, int], overrides: list[str]
) -> SpecError:
    errors = error.errors()
    first = first_to_report(errors)
    kind = first["type"]
    loc = tuple(first["loc"])
    path = _data_path(loc, data, names_key=kind in ("missing", "extra_forbidden"))
    cause = first.get("ctx", {}).get("error") if kind == "value_error" else None
    if isinstance(cause, SpecRule):
        path += cause.at
    received = first.get("input")
    uncounted = 1
    if kind == "extra_forbidden":
        key = path[-1] if path else "?"
        known = _fields_at(loc[:-1])
        message = f"unknown key '{key}'"
        hint = did_you_mean(str(key), known, "allowed keys") if known else "remove it"
        if _is_misspelling(first, errors):
            uncounted = 2  # the typo's "missing" twin is the same mistake
    elif kind == "missing":
        message = f"missing required key '{path[-1] if path else '?'}'"
        hint = "add it"
    else:
        message = str(cause) if cause is not None else first["msg"]
        if not isinstance(received, dict):  # a rule about a whole mapping names its values
            message += f"; received {_short(received)}"
        hint = cause.hint if isinstance(cause, SpecRule) and cause.hint else _hint_for(kind, first)
    others = len(errors) - uncounted
    if others > 0:
        message += f" (+{others} more error{'s' if others > 1 else ''})"
    error = SpecError(message, path=dotted(path) or "<top>", hint=hint)
    # An error in a value that came from --set is reported against the --set, not the file.
    place(error, path, file, lines, overrides)
    return error


def _is_misspelling(extra: dict, errors: list[dict]) -> bool:
    """Is the unknown key of ``extra`` close to a key reported missing in the same mapping?"""
    parent = tuple(extra["loc"][:-1])
    missing = [str(e["loc"][-1]) for e in errors if e["type"] == "missing" and tuple(e["loc"][:-1]) == parent]
    return closest(str(extra["loc"][-1]), missing) is not None


def _data_path(loc: tuple, data: Any, names_key: bool = True) -> tuple:
    """pydantic's error location without the union tags it inserts ('sgd', 'count', ...).

    Walks the raw data along ``loc``: a part that names a key or index present in the data is
    kept; at the end of the data, the last part is kept only if the error is about that key
    (``names_key``: a missing or unknown key); anything else is a tag pydantic added for a union
    member (the model-level error of ``{type: sgd, nesterov: true}`` ends in the tag 'sgd').
    """
    path: list[Any] = []
    node = data
    parts = list(loc)
    for i, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif part == "[key]":
            continue  # pydantic's marker for an error in a dict key (the key itself is kept)
        elif names_key and isinstance(node, dict) and isinstance(part, str) and i == len(parts) - 1:
            path.append(part)  # a missing or unknown key
    return tuple(path)


def _fields_at(loc: tuple) -> list[str]:
    """The keys allowed in the mapping at pydantic's location ``loc`` (union tags included), for
    "did you mean" on an unknown key."""
    annotation: Any = Spec
    parts = list(loc)
    while True:
        annotation = _unwrap(annotation)
        if not parts:
            break
        part = parts.pop(0)
        origin = typing.get_origin(annotation)
        if _is_model(annotation):
            field = annotation.model_fields.get(part)
            if field is None:
                return []
            annotation = field.annotation
        elif origin in (Union, types.UnionType):
            annotation = _union_member(annotation, part)
        elif origin is list:
            annotation = typing.get_args(annotation)[0]
        elif origin is dict:
            annotation = typing.get_args(annotation)[1]
        else:
            return []
    return list(annotation.model_fields) if _is_model(annotation) else []


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated[...]`` and ``X | None`` down to what validates a present value."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _union_member(union: Any, tag: Any) -> Any:
    """The member of ``union`` that pydantic's location part ``tag`` names, or None."""
    for member in typing.get_args(union):
        tags: list[Any] = []
        if typing.get_origin(member) is Annotated:
            tags = [m.tag for m in typing.get_args(member)[1:] if isinstance(m, Tag)]
        inner = _unwrap(member)
        if tag in tags:
            return inner
        if _is_model(inner):
            if tag == inner.__name__:
                return inner
            type_field = inner.model_fields.get("type")
            if type_field is not None and tag in typing.get_args(type_field.annotation):
                return inner  # a discriminated union's tag is the `type:` value
    return None


def _hint_for(kind: str, err: dict) -> str | None:
    if kind.startswith("literal_error"):
        expected = err.get("ctx", {}).get("expected")
        return f"use one of: {expected}" if expected else None
    if kind == "string_pattern_mismatch":
        return "names start with a letter or '_' and use letters, digits, '_' or '-'"
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        return "use a value in the allowed range"
    if kind in {"int_parsing", "int_type", "float_parsing", "float_type", "int_from_float"}:
        return "use a number"
    if kind == "union_tag_invalid":
        return "set `type:` to one of " + str(err.get("ctx", {}).get("expected_tags"))
    return None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
