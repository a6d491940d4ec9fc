"""Loading a spec: read the text (YAML or JSON) and the line of every key (``text``), apply
``--set`` overrides, validate with the pydantic models, and turn each of pydantic's errors into a
located :class:`~graphnet.errors.SpecError` (``file:line: dotted.path: what; received x (how to
fix)``), all of them reported at once.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import BaseModel, Tag, ValidationError

from ..errors import MAX_REPORTED, SpecError, clip, did_you_mean, raise_all, short, to_report
from .files import read_spec_file
from .models import Spec, SpecRule, dotted, place
from .overrides import apply_override
from .text import parse_text


def load_spec(path: str | Path, overrides: list[str] | None = None) -> Spec:
    """Read, parse and structurally validate a spec file (YAML or JSON).

    ``overrides`` are ``dotted.path=value`` strings (the CLI's ``--set``), applied before
    validation so they are validated exactly like the file. Graph-level checks (ops, roles,
    shapes) are done by :func:`graphnet.graph.build_graph`. A file that is not a spec (a model
    file, an image, a directory, a FIFO, too large, not UTF-8) is a SpecError saying what it is.
    """
    path = Path(path)
    text = read_spec_file(path)
    return parse_spec(text, file=str(path), overrides=overrides)


def parse_spec(text: str, file: str | None = None, overrides: list[str] | None = None) -> Spec:
    """Parse spec text (YAML or JSON; JSON when the text starts with '{')."""
    data, lines = parse_text(text, file)
    if data is None:
        raise SpecError(
            "the spec holds no data (it is empty or only comments)", file=file,
            hint="a spec starts with keys such as `name:` and `inputs:`",
        )
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
    a value one of ``overrides`` set is reported against that ``--set``. Every error found is
    reported (``raise_all``: the first raised, the others in its ``more``), in file order."""
    lines = lines or {}
    overrides = list(overrides or [])
    errors: list[SpecError] = []
    try:
        spec = Spec.model_validate(data)
    except ValidationError as error:
        errors, total = _spec_errors_from_pydantic(error, data, file, lines, overrides)
    if errors:
        raise_all(errors, total)  # outside the except: no pydantic traceback chained to it
    spec._file = file
    spec._lines = lines
    spec._overrides = overrides
    return spec


# ----------------------------------------------------------------------------------------------
# pydantic's errors -> located SpecErrors, one per mistake
# ----------------------------------------------------------------------------------------------


def _spec_errors_from_pydantic(
    error: ValidationError, data: dict, file: str | None, lines: dict[str, int], overrides: list[str]
) -> tuple[list[SpecError], int]:
    """One located SpecError per mistake pydantic found, in the order of the file (errors from
    a --set after those of the file), and how many mistakes there were. The "missing" twin of a
    typo is dropped (``to_report``), and pydantic's several errors for one value (one per member
    of a union) become one. Only the first few are located (a list of 100,000 bad entries would
    take seconds): no more are shown than ``MAX_REPORTED``."""
    errors: list[SpecError] = []
    paths: set[tuple] = set()
    reported = to_report(error.errors())
    for found in reported[: 4 * MAX_REPORTED]:
        spec_error, path = spec_error_from_pydantic(found, data)
        if path in paths:
            continue  # a value that fits no member of a union: the first member's error says it
        paths.add(path)
        # An error in a value that came from --set is reported against the --set, not the file.
        place(spec_error, path, file, lines, overrides)
        errors.append(spec_error)
    in_file = [e for e in errors if e.file == file]
    from_set = [e for e in errors if e.file != file]
    in_file.sort(key=lambda e: e.line if e.line is not None else 0)
    total = len(errors) if len(reported) <= 4 * MAX_REPORTED else len(reported)
    return in_file + from_set, total


def spec_error_from_pydantic(found: dict, data: dict) -> tuple[SpecError, tuple]:
    """One of pydantic's errors (an entry of ``ValidationError.errors()``) as a SpecError, and
    the path of the value it is about in ``data`` (the validated mapping).

    The message says what is wrong in graphnet's words (``unknown key 'lr'``, ``missing required
    key 'type'``, or pydantic's message or a :class:`SpecRule`'s, then ``; received x`` unless the
    value is a mapping), with a hint on how to fix it. The path has pydantic's union tags removed
    (``train.optimizer.lr``, not ``train.optimizer.sgd.lr``); it becomes the error's dotted
    ``path`` (its keys clipped; ``<top>`` for the whole mapping) and is returned as a tuple for
    :func:`~graphnet.spec.models.place`, which locates the error at its line (it is not located
    yet: ``file`` and ``line`` are unset). Errors with the same path are one mistake (a value
    that fits no member of a union): callers keep the first.

    The allowed keys of an unknown key's hint and the ``type:`` values of a section that does not
    say its type are looked up in the :class:`Spec` models: a caller validating other models (the
    sweep file) replaces that hint with its own.
    """
    kind = found["type"]
    loc = tuple(found["loc"])
    path = _data_path(loc, data, names_key=kind in ("missing", "extra_forbidden"))
    cause = found.get("ctx", {}).get("error") if kind == "value_error" else None
    if isinstance(cause, SpecRule):
        path += cause.at
    received = found.get("input")
    if kind == "extra_forbidden":
        key = clip(str(path[-1])) if path else "?"
        known = _fields_at(loc[:-1])
        message = f"unknown key '{key}'"
        hint = did_you_mean(str(key), known, "allowed keys") if known else "remove it"
    elif kind == "missing":
        message = f"missing required key '{clip(str(path[-1])) if path else '?'}'"
        hint = "add it"
    elif kind == "union_tag_not_found":  # a section of several kinds that does not say which
        message = f"missing required key {found.get('ctx', {}).get('discriminator', 'type')}"
        tags = _type_tags_at(loc)
        hint = f"add `type:`, one of: {', '.join(tags)}" if tags else "add it"
    else:
        message = str(cause) if cause is not None else found["msg"]
        if not isinstance(received, dict):  # a rule about a whole mapping names its values
            message += f"; received {short(received)}"
        hint = cause.hint if isinstance(cause, SpecRule) and cause.hint else _hint_for(kind, found)
    shown = dotted(tuple(clip(str(part)) for part in path))  # a key may be 10 MB long
    return SpecError(message, path=shown or "<top>", hint=hint), path


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
    annotation = _annotation_at(loc)
    return list(annotation.model_fields) if _is_model(annotation) else []


def _type_tags_at(loc: tuple) -> list[str]:
    """The `type:` values the union of sections at ``loc`` accepts (the optimizer's
    'sgd', 'adam', 'adamw'), for a section that does not say its type."""
    tags: list[str] = []
    for member in typing.get_args(_annotation_at(loc)):
        member = _unwrap(member)
        field = member.model_fields.get("type") if _is_model(member) else None
        if field is not None:
            tags += [str(tag) for tag in typing.get_args(field.annotation)]
    return tags


def _annotation_at(loc: tuple) -> Any:
    """The type that validates the value at pydantic's location ``loc`` (None if unknown)."""
    annotation: Any = Spec
    parts = list(loc)
    while True:
        annotation = _unwrap(annotation)
        if not parts:
            return annotation
        part = parts.pop(0)
        origin = typing.get_origin(annotation)
        if _is_model(annotation):
            field = annotation.model_fields.get(part)
            if field is None:
                return None
            annotation = field.annotation
        elif origin in (Union, types.UnionType):
            annotation = _union_member(annotation, part)
        elif origin is list:
            annotation = typing.get_args(annotation)[0]
        elif origin is dict:
            annotation = typing.get_args(annotation)[1]
        else:
            return None


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
