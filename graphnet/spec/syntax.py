"""Syntax errors of YAML and JSON in plain words, at the line that holds the mistake.

Parsers report where they gave up, which for a missing '}' is often lines below the mistake, in
their own terms ("did not find expected ',' or '}'"). These functions turn a parser's error into
a SpecError saying what is wrong ("a '{' opened at line 3 is never closed", "trailing comma
before '}'") at the line to fix.
"""

from __future__ import annotations

import json
import re

import yaml

from ..errors import SpecError

_CLOSER = {"{": "}", "[": "]"}


def json_syntax_error(error: json.JSONDecodeError, text: str, file: str | None) -> SpecError:
    """The SpecError for invalid JSON: a trailing comma, a bracket never closed, a missing
    comma (at the line before, where it is missing), or json's message in plain words."""
    pos = error.pos
    before = len(text[:pos].rstrip())  # the mistake is often at the end of the previous token
    previous = text[before - 1] if before else ""
    previous_line = text.count("\n", 0, max(before - 1, 0)) + 1
    at = text[pos] if pos < len(text) else ""
    line, hint = error.lineno, "fix the JSON syntax at that line"
    if previous == "," and at in ("}", "]") and error.msg in _EXPECTING_AN_ITEM:
        message = f"trailing comma before '{at}'"
        line, hint = previous_line, "remove the ',' after the last item (JSON allows none)"
    elif not text[pos:].strip():  # the text ended with something open
        opener = _unclosed_opener(text, 0, len(text), quotes='"', comments=False)
        message = "the text ends too early"
        if opener is not None:
            char, line = opener
            message = f"a '{char}' opened at line {line} is never closed"
            hint = f"add the matching '{_CLOSER[char]}'"
    elif error.msg == "Expecting ',' delimiter":
        message = "missing ',' between two items (or a bracket closed too early)"
        line = previous_line
    else:
        message = _JSON_WORDS.get(error.msg, error.msg)
    return SpecError(f"invalid JSON: {message}", file=file, line=line, hint=hint)


_EXPECTING_AN_ITEM = ("Expecting value", "Expecting property name enclosed in double quotes")
_JSON_WORDS = {
    "Expecting value": "a value is missing here",
    "Expecting property name enclosed in double quotes": "expected a key in double quotes",
    "Expecting ':' delimiter": "expected ':' after the key",
    "Unterminated string starting at": "a string opened here is never closed (a missing '\"')",
    "Invalid control character at": "a raw tab or line break inside a string (write \\t or \\n)",
    "Extra data": "more text after the end of the spec's top-level '{...}'",
    "Invalid \\escape": "an invalid '\\' escape in a string (write '\\\\' for a backslash)",
}


def yaml_syntax_error(error: yaml.YAMLError, text: str, file: str | None) -> SpecError:
    """The SpecError for invalid YAML, in plain words, at the line of the mistake: for an
    unclosed bracket or quote, or a key without ':', the line where it starts (PyYAML reports
    where it gave up, often the next line or the end of the file)."""
    if isinstance(error, yaml.reader.ReaderError):  # no marks, a character position
        code = ord(error.character) if isinstance(error.character, str) else int(error.character)
        line = text.count("\n", 0, error.position) + 1
        return SpecError(
            f"invalid YAML: a control character ({code:#04x}); a spec is plain text",
            file=file, line=line, hint="remove it",
        )
    problem = getattr(error, "problem", None) or ""
    mark = getattr(error, "problem_mark", None)
    context = getattr(error, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    message, hint = problem or str(error).splitlines()[0], "fix the YAML syntax at that line"
    if mark is not None and context is not None:
        start = context.line + 1  # where the thing the parser was reading began
        if problem.startswith("did not find expected ',' or"):
            guess = ("{" if problem.endswith("'}'") else "[", start)  # the bracket being read
            opener = _unclosed_opener(text, context.index, mark.index, quotes="'\"", comments=True)
            char, line = opener or guess
            message = f"a '{char}' opened at line {line} is never closed"
            hint = f"add the matching '{_CLOSER[char]}' (or a ',' between its items)"
        elif problem == "found unexpected end of stream":
            message, line = f"a quote opened at line {start} is never closed", start
            hint = "add the closing quote"
        elif problem == "could not find expected ':'" and mark.index - context.index >= 1024:
            message, line = "a key longer than 1,024 characters (YAML's limit for a key)", start
            hint = "use a shorter key"
        elif problem == "could not find expected ':'":
            message, line = "a key without ':' after it", start
            hint = "write `key: value`, or indent the line under its key"
        elif problem.startswith("did not find expected key"):
            message = f"this line is not indented like the keys of the mapping at line {start}"
        elif problem.startswith("did not find expected '-' indicator"):
            message = f"this line is not indented like the items of the list at line {start}"
    if problem.startswith("mapping values are not allowed"):
        message = "unexpected ':' (is the line indented like its neighbours? quote a value holding ': ')"
    elif problem == "found character that cannot start any token" and _char_at(text, mark) == "\t":
        message = "a tab character; YAML indents with spaces only"
    return SpecError(f"invalid YAML: {message}", file=file, line=line, hint=hint)


def _char_at(text: str, mark: yaml.Mark | None) -> str:
    return text[mark.index:mark.index + 1] if mark is not None else ""


def _unclosed_opener(
    text: str, start: int, end: int, quotes: str, comments: bool
) -> tuple[str, int] | None:
    """Which '{' or '[' between ``start`` and ``end`` is the one never closed, as (char, line).

    Brackets match by nesting, so a missing '}' makes a later '}' close the wrong opener and the
    parser fail far below the mistake. Indentation tells where a bracket's content really ended:
    an opener whose closer comes after a line indented no deeper than the opener's own line
    (the content went back out before the closer) is the one missing its closer. Failing that,
    the innermost opener still open at ``end``.
    """
    scanned = text[start:end]
    base_line = text.count("\n", 0, start) + 1
    pattern = _bracket_pattern(quotes, comments)
    stack: list[tuple[str, int]] = []
    pairs: list[tuple[str, int, int]] = []
    line, last = base_line, 0
    for match in pattern.finditer(scanned):
        token = match.group()
        if token[0] not in "{}[]":
            continue
        line += scanned.count("\n", last, match.start())
        last = match.start()
        if token in "{[":
            stack.append((token, line))
        elif stack:
            char, opened = stack.pop()
            pairs.append((char, opened, line))
    next_out = _next_line_not_deeper(text.splitlines())
    candidates = sorted(
        (opened, char) for char, opened, closed in pairs if next_out.get(opened, closed) < closed
    )
    if candidates:
        opened, char = candidates[0]
        return char, opened
    return stack[-1] if stack else None


def _bracket_pattern(quotes: str, comments: bool) -> re.Pattern:
    parts = []
    if '"' in quotes:
        parts.append(r'"(?:[^"\\\n]|\\.)*"')
    if "'" in quotes:
        parts.append(r"'(?:[^'\n]|'')*'")
    if comments:
        parts.append(r"(?:(?<=\s)|^)#[^\n]*")
    parts.append(r"[{}\[\]]")
    return re.compile("|".join(parts), re.MULTILINE)


def _next_line_not_deeper(lines: list[str]) -> dict[int, int]:
    """1-based line -> the next non-blank line indented no deeper than it (a monotonic stack:
    linear in the number of lines)."""
    result: dict[int, int] = {}
    waiting: list[tuple[int, int]] = []  # (indent, line), indents increasing
    for number, text in enumerate(lines, start=1):
        stripped = text.lstrip(" ")
        if not stripped.strip():
            continue
        indent = len(text) - len(stripped)
        while waiting and waiting[-1][0] >= indent:
            result[waiting.pop()[1]] = number
        waiting.append((indent, number))
    return result
