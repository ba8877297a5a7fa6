"""TOML specs: the tree tomllib reads, and where each key of it is written (tomllib
keeps no positions), so that every error names the key's line and column.
"""

from __future__ import annotations

import re
import sys
from typing import Dict, List, Optional, Tuple

from .errors import LimitExceeded, Location, SpecError, SpecSyntaxError
from .spec_file import MAX_DEPTH, _NUMBER_BOUNDS, _finite_float, _Lines

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.9/3.10 only
    import tomli as tomllib


def _read_toml(lines: _Lines):
    """The tree of a TOML text and a function that says where each of its keys is."""
    text = lines.text
    hint = 'strings need quotes: weight_dtype = "fp16", memory = "24GiB"'
    try:
        tree = tomllib.loads(text, parse_float=_finite_float)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", message)
        loc = lines.at(int(m.group(1)), int(m.group(2))) if m else lines.end()
        message = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", message)
        raise SpecSyntaxError(f"TOML syntax: {message[:1].lower() + message[1:]}", loc, hint=hint,
                              format="toml") from None
    except RecursionError:
        offset = _toml_too_deep(text)
        raise LimitExceeded[SpecError](f"tables and lists are nested more than {MAX_DEPTH} levels deep",
                                       lines.offset(offset) if offset is not None else lines.at(1, 1),
                                       hint="a spec needs two or three levels", what="nesting", limit=MAX_DEPTH) from None
    except ValueError as exc:  # an integer beyond Python's 4,300-digit conversion limit
        m = re.search(r"[0-9A-Za-z_]{4300,}", text)
        loc = lines.offset(m.start(), len(m.group())) if m else lines.at(1, 1)
        if m:
            raise LimitExceeded[SpecError]("this integer is too long", loc, hint=_NUMBER_BOUNDS, what="digits",
                                           amount=len(m.group())) from None
        raise SpecSyntaxError(f"TOML value: {exc}", loc, hint=_NUMBER_BOUNDS, format="toml") from None

    return tree, _TomlIndex(lines).locate


# One token of TOML text, for finding where keys are (tomllib does not keep positions).
_TOML_TOKEN = re.compile(
    r'(?P<nl>\n)|(?P<ws>[ \t\r]+)|(?P<comment>#[^\n]*)'
    r'|(?P<mlstr>"""(?:[^\\]|\\[\s\S])*?"""(?!")|\'\'\'[\s\S]*?\'\'\'(?!\'))'
    r'|(?P<str>"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\')'
    r'|(?P<punct>[\[\]{}=,.])|(?P<bare>[A-Za-z0-9_+:\-]+)|(?P<other>.)'
)


def _toml_key(token: str) -> str:
    if token.startswith('"'):
        try:
            return tomllib.loads("k = " + token)["k"]
        except (tomllib.TOMLDecodeError, KeyError):
            return token[1:-1]
    if token.startswith("'"):
        return token[1:-1]
    return token


def _toml_too_deep(text: str) -> Optional[int]:
    depth = 0
    for m in _TOML_TOKEN.finditer(text):
        token = m.group()
        if m.lastgroup == "punct" and token in "[{":
            depth += 1
            if depth + 1 > MAX_DEPTH:
                return m.start()
        elif m.lastgroup == "punct" and token in "]}":
            depth = max(0, depth - 1)
    return None


class _TomlIndex:
    """Where each key path of a TOML text is written: table headers, dotted keys,
    quoted keys and keys of inline tables; built in one pass, on first use."""

    def __init__(self, lines: _Lines) -> None:
        self.lines = lines
        self.index: Optional[Dict[Tuple[str, ...], Tuple[int, int]]] = None

    def _build(self) -> Dict[Tuple[str, ...], Tuple[int, int]]:
        index: Dict[Tuple[str, ...], Tuple[int, int]] = {}
        table: Tuple[str, ...] = ()
        stack: List[Optional[Tuple[str, ...]]] = []  # inline tables (their path) and arrays (None)
        mode, parts, first, last_end, path = "start", [], 0, 0, ()
        for m in _TOML_TOKEN.finditer(self.lines.text):
            kind, token = m.lastgroup, m.group()
            if kind in ("ws", "comment"):
                continue
            if kind == "nl":
                if not stack:
                    mode = "start"
                continue
            if mode == "start":
                if token == "[" and not stack:
                    mode, parts, first = "header", [], m.start()
                elif kind in ("bare", "str"):
                    mode, parts, first, last_end = "key", [_toml_key(token)], m.start(), m.end()
                elif token == "}" and stack:
                    stack.pop()
                    mode = "after"
            elif mode == "header":
                if kind in ("bare", "str"):
                    parts.append(_toml_key(token))
                elif token == "]":
                    table = tuple(parts)
                    for n in range(1, len(table) + 1):  # [a.b] also says where table a is
                        index.setdefault(table[:n], (first, m.end() - first))
                    mode = "skip"
            elif mode == "key":
                if kind in ("bare", "str"):
                    parts.append(_toml_key(token))
                    last_end = m.end()
                elif token == "=":
                    prefix = stack[-1] if stack and stack[-1] is not None else table
                    path = prefix + tuple(parts)
                    for n in range(len(prefix) + 1, len(path) + 1):  # a.b = 1 also says where a is
                        index.setdefault(path[:n], (first, last_end - first))
                    mode = "value"
            elif mode == "value":
                if token == "{":
                    stack.append(path)
                    mode = "start"
                elif token == "[":
                    stack.append(None)
                    mode = "array"
                else:
                    mode = "after"
            elif mode == "array":
                if token in "[{" and kind == "punct":
                    stack.append(None)
                elif token in "]}" and kind == "punct":
                    stack.pop()
                    if not stack or stack[-1] is not None:
                        mode = "after"
            elif mode == "after":
                if stack and stack[-1] is not None:
                    if token == ",":
                        mode = "start"
                    elif token == "}":
                        stack.pop()
        return index

    def locate(self, node: dict, section: Tuple[str, ...], key: str) -> Location:
        if self.index is None:
            self.index = self._build()
        path = section + (key,)
        while path:
            if path in self.index:
                offset, width = self.index[path]
                return self.lines.offset(offset, width if path == section + (key,) else 1)
            path = path[:-1]  # the nearest place known: the table the key is in
        return self.lines.at(1, 1)
