"""Spec text -> plain data and the line of every key, within limits.

Spec text may be hostile: nesting 10,000 deep, a YAML "billion laughs", a 5,000-digit integer.
``parse_text`` returns plain data (dicts, lists, strings, numbers) and a map of dotted spec path
-> line, or raises one :class:`~graphnet.errors.SpecError` at the line of the problem, quickly:
the limits below are checked while parsing, before any of the data is built.

- YAML goes through libyaml's event stream (the C parser when PyYAML has it, else PyYAML's own),
  built into data by one iterative pass that also records the line of every key and refuses a
  key given twice, nesting deeper than ``MAX_DEPTH``, aliases expanding to more than
  ``MAX_ALIAS_NODES`` values, and integers longer than ``MAX_INT_DIGITS``.
- JSON (text starting with ``{``) is read by :mod:`json` (strict JSON, at C speed) and its lines
  by a scan of its tokens.
- ``parse_value`` reads a ``--set`` value, with the same limits.

Syntax errors are explained by :mod:`.syntax`; reading the file is :mod:`.files`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from ..errors import SpecError, clip
from .files import MAX_SPEC_BYTES, too_large
from .syntax import json_syntax_error, yaml_syntax_error

MAX_DEPTH = 100  # nested mappings and lists; real specs nest 6 deep
MAX_ALIAS_NODES = 100_000  # values that YAML aliases (`*name`, `<<: *name`) may add in all
MAX_INT_DIGITS = 100  # no spec value needs more; Python refuses to parse 4,300

# libyaml's parser when PyYAML was built with it (10x faster than the pure-Python one).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = yaml.resolver.Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()

# First characters of plain scalars that may resolve to something other than a string.
_TYPED_FIRST = set(yaml.resolver.Resolver.yaml_implicit_resolvers)  # '' too: empty is null
_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


def parse_text(text: str, file: str | None) -> tuple[Any, dict[str, int]]:
    """(data, lines): the plain data of spec text (JSON when it starts with '{', else YAML) and
    a map of dotted spec path (``nodes.fc1.op``, ``outputs.0``) -> 1-based line."""
    if len(text) > MAX_SPEC_BYTES:
        raise too_large(file, len(text.encode("utf-8", errors="replace")))
    if text.lstrip().startswith("{"):
        return _parse_json(text, file)
    return _YamlBuilder(text, file).build()


def parse_value(raw: str, where: str) -> Any:
    """A ``--set`` value parsed as YAML (``0.1`` a number, ``[1, 2]`` a list, ``true`` a bool),
    within the spec's limits; text that is not valid YAML is kept as a string. ``where`` names
    the --set in errors."""
    if not raw.strip():
        return ""
    try:
        data, _ = _YamlBuilder(raw, where, plain_syntax_errors=True).build()
    except yaml.YAMLError:
        return raw
    except SpecError as error:
        error.line = None  # a line of a one-line value says nothing
        raise
    return data


def _depth_error(file: str | None, line: int | None) -> SpecError:
    return SpecError(
        f"nesting deeper than {MAX_DEPTH} levels", file=file, line=line,
        hint="a spec nests mappings and lists a few levels deep; is a bracket repeated?",
    )


def _digits_error(digits: int, file: str | None, line: int | None) -> SpecError:
    return SpecError(
        f"an integer of {digits:,} digits; a spec's integers have at most {MAX_INT_DIGITS}",
        file=file, line=line, hint="use a value in the allowed range",
    )


def _duplicate_key(key: Any, first: int, file: str | None, line: int, path: str) -> SpecError:
    return SpecError(
        f"duplicate key '{clip(str(key))}' (first at line {first})",
        path=clip(path, 200), file=file, line=line,
        hint="a key may appear once in a mapping; remove or rename one",
    )


# -- YAML ----------------------------------------------------------------------------------------


class _Frame:
    """A mapping or list being built, on the builder's stack."""

    __slots__ = ("value", "is_list", "path", "anchor", "size", "height", "key", "key_line",
                 "has_key", "seen", "merges", "line")

    def __init__(self, value: Any, path: str, anchor: str | None, line: int) -> None:
        self.value = value
        self.is_list = isinstance(value, list)
        self.path = path  # dotted spec path of this collection ("" at the top)
        self.anchor = anchor
        self.size = 1  # values in it, itself included, with aliases expanded
        self.height = 1  # levels of nesting in it
        self.key: Any = None  # a mapping's key waiting for its value
        self.key_line = 0
        self.has_key = False
        self.seen: dict[Any, int] = {}  # a mapping's keys -> line, to refuse one given twice
        self.merges: list[dict] = []  # mappings merged in with `<<:`, in order
        self.line = line


class _YamlBuilder:
    """One pass over libyaml's events building the data, the line map, and checking limits.

    Iterative (a list nested 10,000 deep is an error, not a RecursionError). An alias is
    expanded to a copy of the value it names, counted against ``MAX_ALIAS_NODES`` before it is
    copied, so a "billion laughs" is refused after a few thousand values and the data is a tree
    (a --set changes one place, never every place an alias was used).
    """

    def __init__(self, text: str, file: str | None, plain_syntax_errors: bool = False) -> None:
        self.text = text
        self.file = file
        self.plain_syntax_errors = plain_syntax_errors  # raise yaml's own error (for --set)
        self.lines: dict[str, int] = {}
        self.anchors: dict[str, tuple[Any, int, int] | None] = {}  # None while being built
        self.expanded = 0
        self.stack: list[_Frame] = []
        self.root: Any = None
        self.documents = 0

    def build(self) -> tuple[Any, dict[str, int]]:
        parser = _LOADER(self.text)
        try:
            while True:
                event = parser.get_event()  # (yaml.parse's generator costs a third more)
                if type(event) is yaml.StreamEndEvent:
                    break
                self._on(event)
        except yaml.YAMLError as error:
            if getattr(error, "problem", None) == "exceeded maximum nesting depth":
                # libyaml's own limit (1,000 levels), met while it scans ahead of our check
                raise _depth_error(self.file, error.problem_mark.line + 1) from None
            if self.plain_syntax_errors:
                raise
            raise yaml_syntax_error(error, self.text, self.file) from None
        finally:
            parser.dispose()
        return self.root, self.lines

    # -- events ----------------------------------------------------------------------------

    def _on(self, event: yaml.Event) -> None:
        kind = type(event)
        if kind is yaml.ScalarEvent:
            self._scalar(event)
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            self._start(event, kind is yaml.MappingStartEvent)
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            self._end()
        elif kind is yaml.AliasEvent:
            self._alias(event)
        elif kind is yaml.DocumentStartEvent:
            self.documents += 1
            if self.documents > 1:
                raise SpecError(
                    "invalid YAML: a second document starts here ('---'); a spec is one document",
                    file=self.file, line=event.start_mark.line + 1,
                    hint="remove the '---' and what follows, or merge the two",
                )

    def _start(self, event: Any, mapping: bool) -> None:
        line = event.start_mark.line + 1
        if event.tag not in (None, "!") and event.tag != (_MAP if mapping else _SEQ):
            raise self._tag_error(event.tag, line)
        if len(self.stack) >= MAX_DEPTH:
            raise _depth_error(self.file, line)
        parent = self.stack[-1] if self.stack else None
        if parent is not None and not parent.is_list and not parent.has_key:
            raise SpecError(
                "a mapping or list used as a key", file=self.file, line=line,
                hint="keys are plain names such as `units:`",
            )
        path = self._child_path(parent, line) if parent is not None else ""
        frame = _Frame({} if mapping else [], path, event.anchor, line)
        if event.anchor is not None:
            self.anchors[event.anchor] = None  # an alias to it before its end is recursive
        self.stack.append(frame)

    def _end(self) -> None:
        frame = self.stack.pop()
        value = frame.value
        if frame.merges:  # as PyYAML: merged keys first, the first merge to give a key wins,
            merged: dict = {}  # and the mapping's own keys override them
            for source in frame.merges:
                for key, item in source.items():
                    merged.setdefault(key, item)
            merged.update(value)
            value = merged
        if frame.anchor is not None:
            self.anchors[frame.anchor] = (value, frame.size, frame.height)
        self._add(value, frame.size, frame.height, frame.line, placed=True)

    def _scalar(self, event: Any) -> None:
        line = event.start_mark.line + 1
        parent = self.stack[-1] if self.stack else None
        expects_key = parent is not None and not parent.is_list and not parent.has_key
        if expects_key and self._is_merge(event):
            self._add(None, 1, 0, line, merge_key=True)
            return
        value = event.value
        if event.tag is not None or (event.implicit[0] and value[:1] in _TYPED_FIRST):
            value = value if self._is_merge(event) else self._construct(event, line)
        # else quoted, or plain text that no implicit type (number, bool, null...) starts like
        if event.anchor is not None:
            self.anchors[event.anchor] = (value, 1, 0)
        self._add(value, 1, 0, line)

    def _alias(self, event: Any) -> None:
        line = event.start_mark.line + 1
        name = event.anchor
        if name not in self.anchors:
            raise SpecError(
                f"unknown alias '*{name}'", file=self.file, line=line,
                hint=f"define the anchor first (`&{name}` before a value)",
            )
        anchored = self.anchors[name]
        if anchored is None:
            raise SpecError(
                f"alias '*{name}' is used inside the value it names (a recursive structure)",
                file=self.file, line=line, hint="a spec is a tree: copy the value instead",
            )
        value, size, height = anchored
        self.expanded += size
        if self.expanded > MAX_ALIAS_NODES:
            raise SpecError(
                f"aliases expand to more than {MAX_ALIAS_NODES:,} values (an alias bomb?)",
                file=self.file, line=line, hint="write the values out, or use fewer nested aliases",
            )
        if len(self.stack) + height > MAX_DEPTH:
            raise _depth_error(self.file, line)
        self._add(_copy(value), size, height, line)

    # -- placing a value --------------------------------------------------------------------

    def _child_path(self, parent: _Frame, line: int) -> str:
        """The dotted path of the next value of ``parent``, recording its line."""
        if parent.is_list:
            index = len(parent.value)
            path = f"{parent.path}.{index}" if parent.path else str(index)
            self.lines[path] = line
            return path
        key = parent.key
        if key is _MERGE_KEY:
            return parent.path
        path = f"{parent.path}.{key}" if parent.path else str(key)
        self.lines[path] = parent.key_line
        return path

    def _add(
        self, value: Any, size: int, height: int, line: int, placed: bool = False, merge_key: bool = False
    ) -> None:
        """Put a finished value into the collection being built (as a key, a value or an item).
        ``size`` and ``height`` count its values and levels; ``placed``: its path was recorded
        when it started (a mapping or list); ``merge_key``: it is the `<<` of a merge."""
        if not self.stack:
            self.root = value
            return
        parent = self.stack[-1]
        parent.size += size
        if height >= parent.height:
            parent.height = height + 1
        if parent.is_list:
            if not placed:
                self._child_path(parent, line)
            parent.value.append(value)
            return
        if not parent.has_key:
            self._take_key(parent, value, line, merge_key)
            return
        key = parent.key
        if not placed:
            self._child_path(parent, line)
        parent.has_key = False
        if key is _MERGE_KEY:
            parent.merges.extend(self._merge_sources(value, line))
        else:
            parent.value[key] = value

    def _take_key(self, parent: _Frame, key: Any, line: int, is_merge: bool) -> None:
        if is_merge:
            parent.key, parent.has_key, parent.key_line = _MERGE_KEY, True, line
            return
        try:
            first = parent.seen.get(key)
        except TypeError:  # a list or mapping that came in through an alias
            raise SpecError(
                "a mapping or list used as a key", file=self.file, line=line,
                hint="keys are plain names such as `units:`",
            ) from None
        if first is not None:
            path = f"{parent.path}.{key}" if parent.path else str(key)
            raise _duplicate_key(key, first, self.file, line, path)
        parent.seen[key] = line
        parent.key, parent.has_key, parent.key_line = key, True, line

    def _merge_sources(self, value: Any, line: int) -> list[dict]:
        """``<<: *base`` or ``<<: [*a, *b]`` (a's keys win over b's): the mappings to merge."""
        sources = value if isinstance(value, list) else [value]
        if not all(isinstance(source, dict) for source in sources):
            raise SpecError(
                "`<<:` merges a mapping or a list of mappings", file=self.file, line=line,
                hint="write `<<: *name` where `&name` marks a mapping",
            )
        return sources

    # -- scalars ----------------------------------------------------------------------------

    def _is_merge(self, event: Any) -> bool:
        return event.value == "<<" and event.tag is None and event.implicit[0]

    def _construct(self, event: Any, line: int) -> Any:
        value = event.value
        tag = event.tag
        if tag is None or tag == "!":
            tag = _RESOLVER.resolve(yaml.ScalarNode, value, event.implicit)
        if tag == _STR:
            return value
        if tag == _INT:
            digits = sum(ch.isdigit() for ch in value)
            if digits > MAX_INT_DIGITS:  # int() of 5,000 digits is a ValueError; of 10^6, slow
                raise _digits_error(digits, self.file, line)
        constructor = yaml.constructor.SafeConstructor.yaml_constructors.get(tag)
        collection = tag in (_MAP, _SEQ) or tag.endswith((":omap", ":pairs", ":set"))
        if constructor is None or collection:
            raise self._tag_error(tag, line)
        node = yaml.ScalarNode(tag, value, event.start_mark, event.end_mark, event.style)
        try:
            return constructor(_CONSTRUCTOR, node)
        except (yaml.YAMLError, ValueError) as error:
            problem = getattr(error, "problem", None) or str(error)
            raise SpecError(
                f"cannot read {clip(value)!r} as {tag.rsplit(':', 1)[-1]}: {problem}",
                file=self.file, line=line, hint="quote it to keep it as text",
            ) from None

    def _tag_error(self, tag: str | None, line: int) -> SpecError:
        shown = str(tag)
        if shown.startswith("tag:yaml.org,2002:"):
            shown = "!!" + shown[len("tag:yaml.org,2002:"):]  # as it was written
        return SpecError(
            f"YAML tag '{clip(shown)}' is not allowed in a spec", file=self.file, line=line,
            hint="a spec holds plain mappings, lists, text and numbers; remove the tag",
        )


_MERGE_KEY = object()  # the key of a `<<:` entry, which merges rather than sets


def _copy(value: Any) -> Any:
    """A deep copy of plain data, without recursion."""
    if not isinstance(value, (dict, list)):
        return value
    top = {} if isinstance(value, dict) else []
    pending = [(value, top)]
    while pending:
        source, target = pending.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in items:
            if isinstance(item, (dict, list)):
                copied: Any = {} if isinstance(item, dict) else []
                pending.append((item, copied))
                item = copied
            if isinstance(target, dict):
                target[key] = item
            else:
                target.append(item)
    return top


# -- JSON ----------------------------------------------------------------------------------------

_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],:]|[^\s{}\[\],:"]+', re.DOTALL)


class _JsonLimit(Exception):
    """An integer too long to parse: the token scan finds and locates it."""


def _json_int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS + 1:
        raise _JsonLimit  # located by the token scan
    return int(text)


def _parse_json(text: str, file: str | None) -> tuple[Any, dict[str, int]]:
    """Strict JSON through :mod:`json`, then the line of every key from a scan of its tokens
    (which also finds keys given twice, and where a limit is passed)."""
    try:
        data = json.loads(text, parse_int=_json_int)
    except json.JSONDecodeError as error:
        raise json_syntax_error(error, text, file) from None
    except (_JsonLimit, RecursionError):
        _json_lines(text, file)  # raises the located error
        raise _depth_error(file, None) from None  # (not reached: the scan finds it)
    return data, _json_lines(text, file)


class _JsonFrame:
    """An object or array open in the token scan of ``_json_lines``."""

    __slots__ = ("path", "is_object", "key_path", "index", "seen")

    def __init__(self, path: str, is_object: bool) -> None:
        self.path = path
        self.is_object = is_object
        self.key_path: str | None = None  # an object's key waiting for its value
        self.index = 0  # an array's next index
        self.seen: dict[str, int] = {}  # an object's keys -> line


def _json_lines(text: str, file: str | None) -> dict[str, int]:
    """Dotted path -> line for valid JSON text; refuses duplicate keys, deep nesting and long
    integers with the line they are at."""
    lines: dict[str, int] = {}
    stack: list[_JsonFrame] = []
    line, last = 1, 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        line += text.count("\n", last, match.start())
        last = match.start()
        first = token[0]
        if first in ",:":
            continue
        if first in "}]":
            stack.pop()
            continue
        frame = stack[-1] if stack else None
        if frame is not None and frame.is_object and frame.key_path is None:  # a key
            key = json.loads(token) if "\\" in token else token[1:-1]
            path = f"{frame.path}.{key}" if frame.path else key
            if key in frame.seen:
                raise _duplicate_key(key, frame.seen[key], file, line, path)
            frame.seen[key] = line
            lines[path] = line
            frame.key_path = path
            continue
        path = _json_value_path(frame, line, lines)
        if first in "{[":
            if len(stack) >= MAX_DEPTH:
                raise _depth_error(file, line)
            stack.append(_JsonFrame(path, first == "{"))
        elif first != '"' and not any(mark in token for mark in ".eE"):
            digits = sum(ch.isdigit() for ch in token)
            if digits > MAX_INT_DIGITS:
                raise _digits_error(digits, file, line)
    return lines


def _json_value_path(frame: _JsonFrame | None, line: int, lines: dict[str, int]) -> str:
    """The path of the value that starts in ``frame`` (an array item's line is recorded)."""
    if frame is None:
        return ""
    if frame.is_object:
        path, frame.key_path = frame.key_path or "", None
        return path
    path = f"{frame.path}.{frame.index}" if frame.path else str(frame.index)
    frame.index += 1
    lines[path] = line
    return path
