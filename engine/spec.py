"""Spec files (TOML, YAML, Hugging Face config.json) and ``--set`` → bindings.

Reading and binding are two steps:

1. :func:`load_spec` reads a file into :class:`Entry` objects — key, raw
   value and location — without knowing the formulas. TOML/YAML sections are
   for people and do not change meaning; a config.json's keys are translated
   by ``specs/catalog/huggingface.toml`` and the rest ignored.
2. :func:`bind` checks each entry against a :class:`RuleSet`: the key must
   name an input or definition (or an alias), the value must suit it
   ("24GiB" for memory, "13B" for counts, one of the allowed strings…).

No TOML/YAML/JSON object leaves this module: values become exact SymPy
numbers, :class:`Text`, :class:`TextSet` or true/false.

Input is hostile until checked: only regular files are read, within the bounds
below (MAX_BYTES, MAX_LINE, MAX_LINES, MAX_ENTRIES, MAX_DEPTH, MAX_STRING; numbers
within units.MAX_DIGITS and MAX_MAGNITUDE); duplicate keys are refused in every
format; and each value is checked against its input's unit where it enters
(counts whole and >= 0, memory >= 0, booleans only from booleans).
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import stat
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from sympy import Basic, Integer, Rational
from sympy.logic.boolalg import false, true

from . import resources
from .errors import Location, SpecError, suggest
from .rules import RuleSet
from .symbols import Text, TextSet
from .units import MAX_DIGITS, MAX_MAGNITUDE, MAX_MAGNITUDE_TEXT, NumberTooLarge, parse_quantity, unit_hint

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.9/3.10 only
    import tomli as tomllib

__all__ = ["Entry", "Spec", "Binding", "load_spec", "parse_set", "bind", "METADATA_KEYS",
           "MAX_BYTES", "MAX_LINE", "MAX_LINES", "MAX_ENTRIES", "MAX_DEPTH", "MAX_STRING"]

# Keys that describe a spec rather than bind an input.
METADATA_KEYS = {
    "name": "the model's name, shown in reports",
    "description": "free text",
    "source": "where the numbers come from",
    "notes": "free text",
}


@dataclass(frozen=True)
class Entry:
    """One key of a spec (or one --set), before it is checked against the formulas."""

    key: str  # as written, e.g. "hidden_size"
    value: object  # the raw value: int, float, str, bool or list
    location: Location
    target: Optional[str] = None  # the input it binds, when it differs from key (config.json)
    optional: bool = False  # skip silently if the formulas have no such input (config.json)
    value_at: Optional[Location] = None  # where the value is, when known apart from the key (--set)

    @property
    def name(self) -> str:
        return self.target or self.key


@dataclass(frozen=True)
class Spec:
    path: Optional[str]
    name: Optional[str]
    entries: Tuple[Entry, ...]
    metadata: Dict[str, str]
    kind: str  # "toml" | "yaml" | "config.json" | "none"

    def chosen(self) -> Dict[str, Tuple[object, Location]]:
        """Raw values by key, for choosing formula variants before binding."""
        return {e.name: (_raw_text(e.value), e.location) for e in self.entries}


@dataclass(frozen=True)
class Binding:
    name: str  # the canonical input name
    value: Basic
    location: Location
    key: str  # the key as the user wrote it

    @property
    def source(self) -> str:
        return str(self.location.path)


def _raw_text(value):
    return value if isinstance(value, str) else None


# ---------------------------------------------------------------------------
# bounds: every spec is read within these, whatever it holds

# The largest spec file read (any format). Real specs and Hugging Face config.json
# files are 1-20 KiB; the pure-Python TOML and YAML parsers need up to 4 s per MiB
# of dense tokens (a list of 500,000 numbers), so this keeps the worst case near a second.
MAX_BYTES = 256 * 1024
# The longest line, in characters (a minified config.json of a real model is < 10 KiB).
MAX_LINE = 64 * 1024
# The most lines in a spec (real ones have 10-200): refuses a 100,000-line file at once,
# before a parser spends seconds on it.
MAX_LINES = 10_000
# The most keys and list items in a spec, counted where they are read (every key and
# list item of a TOML or YAML spec, a YAML alias counted each time it is used; a
# config.json's top-level keys). Real specs have fewer than 100 and config.json files
# fewer than 150; the pure-Python YAML parser needs about a second for 10,000 keys.
# Also bounds the expansion of YAML alias bombs ("billion laughs").
MAX_ENTRIES = 1_000
# The deepest nesting of tables and lists (a spec needs 2 or 3 levels).
MAX_DEPTH = 32
# The longest string value of an input (dtypes, optimizers, GPU names are < 30 characters;
# free-text metadata such as description or notes is not bound by it): keeps every message
# that quotes a value to one paragraph.
MAX_STRING = 1_000

_NUMBER_BOUNDS = (f"numbers in a spec must be finite, have at most {MAX_DIGITS} digits and be at most "
                  f"{MAX_MAGNITUDE_TEXT} in magnitude")


def _kib(n: int) -> str:
    return f"{n // 1024:,} KiB" if n < (1 << 20) else f"{n // (1 << 20):,} MiB"


class _BadNumber:
    """A number the parser read but no input can take (inf, nan, 1e400, 5000 digits).

    It travels as the raw value of its key so that the error names the key and its line."""

    __slots__ = ("text", "why")

    def __init__(self, text: str, why: str) -> None:
        self.text = text if len(text) <= 40 else text[:20] + "..." + f" ({len(text):,} characters)"
        self.why = why

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


def _short(text: object, limit: int = 60) -> str:
    """``text`` for a message: at most ``limit`` characters, control characters escaped
    (a key or value must not move the terminal's cursor or change its colours)."""
    text = str(text)
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
                   if not 0xD800 <= ord(c) <= 0xDFFF else f"\\u{ord(c):04x}" for c in text)


# Characters no spec string may hold: control characters other than tab and newlines, and
# lone surrogates (which JSON's "\ud800" and YAML can produce, but no output can encode).
_BAD_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# ... and what a quoted line of an error message may not show raw (a stray \r included).
_UNSHOWABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")


def _check_text(key: object, value: object, where: Location, metadata: bool = False) -> None:
    """Refuse strings with control characters or lone surrogates (an escape sequence in a
    model's name would reach the terminal through every report), and input values longer
    than MAX_STRING."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, str):
            if len(item) > MAX_STRING and not metadata:
                raise SpecError(f"'{_short(key)}': the string is {len(item):,} characters long; values are limited "
                                f"to {MAX_STRING:,}", where, hint="input values are short names such as \"bf16\"")
            m = _BAD_CHARACTER.search(item)
            if m:
                raise SpecError(f"'{_short(key)}': the string holds the character U+{ord(m.group()):04X}, "
                                "which a spec may not contain", where,
                                hint="spec strings are printable text: no control characters or lone surrogates")


class _Lines:
    """The lines of a spec, for cutting locations out of it (split once, not per key)."""

    def __init__(self, shown: str, text: str) -> None:
        self.shown = shown
        self.text = text
        self.lines = text.split("\n")
        self._starts: Optional[List[int]] = None

    def at(self, line: Optional[int], column: Optional[int] = None, width: int = 1) -> Location:
        if line is None:
            return Location(self.shown)
        line = max(1, min(line, len(self.lines)))
        # One character for one, so that the caret stays under its column.
        source = _UNSHOWABLE.sub("\ufffd", self.lines[line - 1].rstrip("\r"))
        return Location(self.shown, line, column, source, max(1, width))

    def offset(self, offset: int, width: int = 1) -> Location:
        """The location of a character offset into the text."""
        import bisect

        if self._starts is None:
            starts, pos = [], 0
            for line in self.lines:
                starts.append(pos)
                pos += len(line) + 1
            self._starts = starts
        line = bisect.bisect_right(self._starts, offset)
        return self.at(line, offset - self._starts[line - 1] + 1, width)

    def end(self) -> Location:
        """The end of the document: after the last non-blank line."""
        for number in range(len(self.lines), 0, -1):
            if self.lines[number - 1].strip():
                return self.at(number, len(self.lines[number - 1].rstrip("\r")) + 1)
        return self.at(1, 1)


def find_spec(path: str) -> Path:
    """``path`` itself if it exists, else a built-in spec of that name: ``llama13b``,
    ``llama13b.toml`` and ``specs/llama13b.toml`` all find the installed
    ``specs/llama13b.toml`` from any directory."""
    p = Path(path)
    try:
        if p.exists():
            return p
        builtin = resources.specs_dir()
        name = p.name if p.parent in (Path("."), Path("specs")) else None
        if name:
            for candidate in (builtin / name, builtin / f"{name}.toml"):
                if candidate.is_file():
                    return candidate
    except (OSError, ValueError):  # a name too long, a NUL byte: _read_bytes says so
        pass
    return p


def load_spec(path: str) -> Spec:
    """Read a spec file into entries; every problem is a located SpecError."""
    shown = _UNSHOWABLE.sub("\ufffd", str(path))
    p = find_spec(path)
    data = _read_bytes(p, shown)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = len(data[: exc.start].rsplit(b"\n", 1)[-1].decode("utf-8", "replace")) + 1
        raise SpecError(f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x})", Location(shown, line, column),
                        hint="spec files are UTF-8 TOML, YAML or JSON") from None
    if text.startswith("\ufeff"):  # a byte-order mark, as some editors write
        text = text[1:]
    suffix = p.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml", ".toml"):
        raise SpecError(f"unknown spec format '{_short(suffix or p.name)}'", Location(shown),
                        hint="a spec is a .toml, .yaml/.yml or Hugging Face config.json file")
    lines = _Lines(shown, text)
    _check_lines(lines)
    if suffix == ".json":
        return _read_config_json(lines)
    if suffix in (".yaml", ".yml"):
        tree, locate, kind = _read_yaml(lines) + ("yaml",)
    else:
        tree, locate, kind = _read_toml(lines), _TomlIndex(lines).locate, "toml"
    return _from_tree(tree, lines, locate, kind)


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _read_bytes(p: Path, shown: str) -> bytes:
    """The bytes of a regular file of at most MAX_BYTES; anything else is refused before it is read."""
    not_regular_hint = "vram-eval reads a spec only from a regular file: save it as a .toml, .yaml or config.json file"
    too_large = SpecError(f"the file is larger than {_kib(MAX_BYTES)}, the most vram-eval reads as a spec",
                          Location(shown), hint="a spec is a few KiB: give the model's own .toml, .yaml or config.json")
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise SpecError("no such file", Location(shown), hint=_nearby_specs_hint(p)) from None
    except ValueError:  # an embedded NUL byte
        raise SpecError("this is not a usable file name", Location(shown)) from None
    except OSError as exc:
        raise SpecError(f"cannot read the file: {exc.strerror}", Location(shown)) from None
    if stat.S_ISDIR(st.st_mode):
        raise SpecError("this is a directory, not a spec file", Location(shown),
                        hint="give a .toml, .yaml or config.json file")
    if not stat.S_ISREG(st.st_mode):
        raise SpecError(f"this is {_file_kind(st.st_mode)}, not a spec file", Location(shown), hint=not_regular_hint)
    if st.st_size > MAX_BYTES:
        raise too_large
    # O_NONBLOCK: should the path have become a FIFO since the stat, opening it cannot block.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(p, flags)
    except OSError as exc:
        raise SpecError(f"cannot read the file: {exc.strerror}", Location(shown)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SpecError(f"this is {_file_kind(st.st_mode)}, not a spec file", Location(shown),
                            hint=not_regular_hint)
        chunks, size = [], 0
        while size <= MAX_BYTES:  # at most MAX_BYTES + 1 bytes, whatever the file claims
            chunk = os.read(fd, min(1 << 16, MAX_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise SpecError(f"cannot read the file: {exc.strerror}", Location(shown)) from None
    finally:
        os.close(fd)
    if size > MAX_BYTES:
        raise too_large
    return b"".join(chunks)


def _check_lines(lines: _Lines) -> None:
    if len(lines.lines) > MAX_LINES + (lines.lines[-1] == ""):
        raise SpecError(f"the file has more than {MAX_LINES:,} lines, the most a spec may have",
                        lines.at(MAX_LINES + 1, 1), hint="a spec is a few dozen lines: is this the right file?")
    for number, line in enumerate(lines.lines, 1):
        if len(line) > MAX_LINE:
            raise SpecError(f"line {number} is longer than {_kib(MAX_LINE)} ({len(line):,} characters), "
                            "the longest line a spec may have", lines.at(number, MAX_LINE + 1),
                            hint="a spec is a few dozen short lines: is this the right file?")


def _nearby_specs_hint(p: Path) -> Optional[str]:
    try:
        known = [s.name for s in resources.specs_dir().glob("*.toml")]
    except OSError:  # pragma: no cover
        return None
    guess = suggest(p.name, known)
    return (guess[:-1] + f" (in {resources.specs_dir()})") if guess else None


# ---------------------------------------------------------------------------
# TOML


def _finite_float(text: str):
    value = float(text)
    return value if math.isfinite(value) else _BadNumber(text, "not a finite number")


def _read_toml(lines: _Lines) -> dict:
    text = lines.text
    hint = 'strings need quotes: weight_dtype = "fp16", memory = "24GiB"'
    try:
        return tomllib.loads(text, parse_float=_finite_float)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", message)
        loc = lines.at(int(m.group(1)), int(m.group(2))) if m else lines.end()
        message = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", message)
        raise SpecError(f"TOML syntax: {message[:1].lower() + message[1:]}", loc, hint=hint) from None
    except RecursionError:
        offset = _toml_too_deep(text)
        raise SpecError(f"tables and lists are nested more than {MAX_DEPTH} levels deep",
                        lines.offset(offset) if offset is not None else lines.at(1, 1),
                        hint="a spec needs two or three levels") from None
    except ValueError as exc:  # an integer beyond Python's 4,300-digit conversion limit
        m = re.search(r"[0-9A-Za-z_]{4300,}", text)
        loc = lines.offset(m.start(), len(m.group())) if m else lines.at(1, 1)
        what = "this integer is too long" if m else f"TOML value: {exc}"
        raise SpecError(what, loc, hint=_NUMBER_BOUNDS) from None


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


# ---------------------------------------------------------------------------
# YAML


class _YamlProblem(Exception):
    def __init__(self, message: str, mark, hint: Optional[str] = None) -> None:
        super().__init__(message)
        self.message, self.mark, self.hint = message, mark, hint


@functools.lru_cache(maxsize=1)
def _yaml_loader():
    """yaml.SafeLoader (the same types and tags as yaml.safe_load) that refuses duplicate
    keys, counts keys and list items, bounds nesting, and remembers where each key is."""
    import yaml  # only YAML specs pay for importing it

    class Loader(yaml.SafeLoader):
        def __init__(self, stream) -> None:
            super().__init__(stream)
            self.depth = 0
            self.count = 0
            self.key_marks: Dict[int, Dict[object, object]] = {}
            self.keep: List[dict] = []  # keeps the mapped dicts (and so their ids) alive

        def compose_node(self, parent, index):
            event = self.peek_event()
            if (index is None and parent is not None) or isinstance(index, int):  # a key, or a list item
                self.count += 1
                if self.count > MAX_ENTRIES:
                    raise _YamlProblem(f"more than {MAX_ENTRIES:,} keys and list items, the most a spec may have",
                                       event.start_mark, hint="a spec has a few dozen keys: is this the right file?")
            nested = isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent))
            if nested:
                self.depth += 1
                if self.depth > MAX_DEPTH:
                    raise _YamlProblem(f"mappings and lists are nested more than {MAX_DEPTH} levels deep",
                                       event.start_mark, hint="a spec needs two or three levels")
            try:
                return super().compose_node(parent, index)
            finally:
                if nested:
                    self.depth -= 1

        def construct_yaml_map(self, node):
            data: dict = {}
            yield data
            own: Dict[object, object] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # keys merged in with << may be overridden, as YAML says
                key = self.construct_object(key_node)
                try:
                    hash(key)
                except TypeError:
                    continue  # construct_mapping says "found unhashable key"
                if key in own:
                    raise _YamlProblem(f"'{_short(key)}' is set twice in one mapping", key_node.start_mark,
                                       hint=f"the first is on line {own[key].line + 1}; each key may appear once")
                own[key] = key_node.start_mark
            data.update(self.construct_mapping(node))
            marks: Dict[object, object] = {}
            for key_node, _ in node.value:  # merged keys first, then the mapping's own
                key = self.construct_object(key_node)
                try:
                    marks[key] = key_node.start_mark
                except TypeError:
                    pass
            self.key_marks[id(data)] = marks
            self.keep.append(data)

        def construct_yaml_int(self, node):
            text = self.construct_scalar(node)
            if len(text) > MAX_DIGITS:
                return _BadNumber(text, f"longer than {MAX_DIGITS} digits")
            return super().construct_yaml_int(node)

        def construct_yaml_float(self, node):
            value = super().construct_yaml_float(node)
            return value if math.isfinite(value) else _BadNumber(self.construct_scalar(node), "not a finite number")

    Loader.add_constructor("tag:yaml.org,2002:map", Loader.construct_yaml_map)
    Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)
    Loader.add_constructor("tag:yaml.org,2002:float", Loader.construct_yaml_float)
    return Loader


def _read_yaml(lines: _Lines):
    import yaml

    try:
        loader = _yaml_loader()(lines.text)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, found before parsing
        raise SpecError(f"YAML syntax: character #x{exc.character:04x} is not allowed in YAML",
                        lines.offset(exc.position), hint="special (control) characters are not allowed") from None
    try:
        tree = loader.get_single_data()
    except _YamlProblem as exc:
        mark = exc.mark
        raise SpecError(exc.message, lines.at(mark.line + 1, mark.column + 1), hint=exc.hint) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        loc = lines.at(mark.line + 1, mark.column + 1) if mark else lines.at(1, 1)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"YAML syntax: {problem}", loc) from None
    except RecursionError:  # pragma: no cover - nesting is bounded above
        raise SpecError(f"mappings and lists are nested more than {MAX_DEPTH} levels deep", lines.at(1, 1)) from None
    finally:
        loader.dispose()
    marks = loader.key_marks

    def locate(node: dict, section: Tuple[str, ...], key) -> Location:
        mark = marks.get(id(node), {}).get(key)
        if mark is None:
            return lines.at(1, 1)
        return lines.at(mark.line + 1, mark.column + 1, len(str(key)))

    return ({} if tree is None else tree), locate


# ---------------------------------------------------------------------------
# TOML and YAML trees → entries


def _from_tree(tree, lines: _Lines, locate, kind: str) -> Spec:
    shown = lines.shown
    if not isinstance(tree, dict):
        raise SpecError("a spec must be a table of keys and values", lines.at(1, 1))
    entries: List[Entry] = []
    metadata: Dict[str, str] = {}
    seen: Dict[str, str] = {}
    count = 0

    def limit(where: Location) -> SpecError:
        return SpecError(f"more than {MAX_ENTRIES:,} keys and list items, the most a spec may have", where,
                         hint="a spec has a few dozen keys: is this the right file?")

    def too_deep(where: Location) -> SpecError:
        return SpecError(f"tables and lists are nested more than {MAX_DEPTH} levels deep", where,
                         hint="a spec needs two or three levels")

    def measure(value, depth: int, where: Location) -> None:
        """Count the items of a list value (aliases expanded, as the engine would)."""
        nonlocal count
        stack = [(value, depth)]
        while stack:
            item, level = stack.pop()
            if isinstance(item, (list, dict)):
                if level > MAX_DEPTH:
                    raise too_deep(where)
                count += len(item)
                if count > MAX_ENTRIES:
                    raise limit(where)
                stack.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))

    def walk(node: dict, section: Tuple[str, ...]) -> None:
        nonlocal count
        for key, value in node.items():
            count += 1
            if count > MAX_ENTRIES:
                raise limit(locate(node, section, key))
            if isinstance(value, dict):
                if len(section) + 2 > MAX_DEPTH:
                    raise too_deep(locate(node, section, key))
                walk(value, section + (str(key),))
                continue
            where = locate(node, section, key)
            key = str(key)
            measure(value, len(section) + 2, where)
            dotted = ".".join(section + (key,))
            if key in seen:
                raise SpecError(f"'{_short(key)}' is set twice: as {_short(seen[key])} and as {_short(dotted)}",
                                where, hint="sections are only for readers; each key may appear once")
            seen[key] = dotted
            _check_text(key, value, where, metadata=key in METADATA_KEYS and not section)
            if key in METADATA_KEYS and not section:
                metadata[key] = str(value)
                continue
            entries.append(Entry(key, value, where))

    walk(tree, ())
    return Spec(shown, metadata.get("name"), tuple(entries), metadata, kind)


# ---------------------------------------------------------------------------
# Hugging Face config.json


@functools.lru_cache(maxsize=1)
def _hf_catalog() -> dict:
    path = resources.catalog_path("huggingface.toml")
    return tomllib.loads(path.read_text(encoding="utf-8"))


class _JsonDuplicate(Exception):
    pass


def _json_pairs(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise _JsonDuplicate(key)
        out[key] = value
    return out


def _json_int(text: str):
    digits = len(text.lstrip("-"))
    return int(text) if digits <= MAX_DIGITS else _BadNumber(text, f"longer than {MAX_DIGITS} digits")


def _json_constant(text: str):
    return _BadNumber(text, "not a finite number")


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],:]', re.S)


def _json_scan(text: str):
    """(event, depth, key token, offset, object number) for each key and each opening
    bracket of a JSON text: where things are, which json.loads does not say."""
    stack: List[str] = []
    expect_key = False
    objects: List[int] = []
    serial = 0
    for m in _JSON_TOKEN.finditer(text):
        token = m.group()
        if token in "{[":
            stack.append(token)
            if token == "{":
                serial += 1
                objects.append(serial)
            expect_key = token == "{"
            yield "open", len(stack), None, m.start(), None
        elif token in "}]":
            if stack:
                if stack.pop() == "{":
                    objects.pop()
            expect_key = False
        elif token == ",":
            expect_key = bool(stack) and stack[-1] == "{"
        elif token == ":":
            expect_key = False
        elif expect_key:
            yield "key", len(stack), token, m.start(), objects[-1] if objects else 0
            expect_key = False


def _json_decode_key(token: str) -> str:
    try:
        return json.loads(token)
    except ValueError:
        return token[1:-1]


def _json_too_deep(value) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                return True
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return False


def _read_config_json(lines: _Lines) -> Spec:
    text, shown = lines.text, lines.shown
    too_deep = f"objects and lists are nested more than {MAX_DEPTH} levels deep"

    def deep_location() -> Location:
        for event, depth, _, offset, _ in _json_scan(text):
            if event == "open" and depth > MAX_DEPTH:
                return lines.offset(offset)
        return lines.at(1, 1)

    try:
        tree = json.loads(text, object_pairs_hook=_json_pairs, parse_int=_json_int,
                          parse_float=_finite_float, parse_constant=_json_constant)
    except json.JSONDecodeError as exc:
        raise SpecError(f"JSON syntax: {exc.msg}", lines.at(exc.lineno, exc.colno)) from None
    except _JsonDuplicate as exc:
        key = exc.args[0]
        where, seen = lines.at(1, 1), set()
        for event, _, token, offset, obj in _json_scan(text):
            if event == "key" and _json_decode_key(token) == key:
                if obj in seen:
                    where = lines.offset(offset, len(token))
                    break
                seen.add(obj)
        raise SpecError(f"\"{_short(key)}\" is set twice in one JSON object", where,
                        hint="each key may appear once (Python's json would silently keep the last)") from None
    except RecursionError:
        raise SpecError(too_deep, deep_location(), hint="a config.json needs two or three levels") from None
    if not isinstance(tree, dict):
        raise SpecError("a config.json must be a JSON object", lines.at(1, 1))
    if _json_too_deep(tree):
        raise SpecError(too_deep, deep_location(), hint="a config.json needs two or three levels")

    if len(tree) > MAX_ENTRIES:
        where = lines.at(1, 1)
        for number, (event, depth, token, offset, _) in enumerate(
                (e for e in _json_scan(text) if e[0] == "key" and e[1] == 1), 1):
            if number > MAX_ENTRIES:
                where = lines.offset(offset, len(token))
                break
        raise SpecError(f"more than {MAX_ENTRIES:,} keys, the most a config.json may have", where,
                        hint="is this a model's config.json?")

    positions: Dict[str, Tuple[int, int]] = {}
    scan = (e for e in _json_scan(text) if e[0] == "key" and e[1] == 1)

    def locate(key: str) -> Location:
        """Where a top-level key is: the text is scanned only as far as needed."""
        while key not in positions:
            found = next(scan, None)
            if found is None:
                return lines.at(1, 1)
            positions.setdefault(_json_decode_key(found[2]), (found[3], len(found[2])))
        offset, width = positions[key]
        return lines.offset(offset + 1, width - 2)  # the key, inside its quotes

    catalog = _hf_catalog()
    keys: Dict[str, str] = catalog.get("keys", {})
    values: Dict[str, Dict[str, str]] = catalog.get("values", {})
    model_types: Dict[str, dict] = catalog.get("model_types", {})
    known = "known: " + ", ".join(sorted(model_types))
    if not any(key in keys and value is not None for key, value in tree.items()):
        raise SpecError("this config.json has none of the fields vram-eval reads", lines.at(1, 1),
                        hint="expected keys such as hidden_size, num_hidden_layers, num_attention_heads, vocab_size")
    entries: List[Entry] = []
    model_type = tree.get("model_type")
    if model_type is None:
        raise SpecError('this config.json has no "model_type", so the architecture is unknown', lines.at(1, 1),
                        hint=f'add "model_type" ({known}), or write a TOML spec with arch = "llama" or "gpt" '
                        "and the sizes instead")
    where = locate("model_type")
    if not isinstance(model_type, str):
        raise SpecError(f'"model_type" must be a string such as "llama", not {_describe(model_type)}', where,
                        hint=known)
    if model_type not in model_types:
        hint = suggest(model_type, model_types)
        raise SpecError(
            f"model_type \"{_short(model_type)}\" is not one vram-eval knows",
            where,
            hint=(hint + " " if hint else "") + known + "; or write a TOML spec with arch = \"gpt\" or \"llama\"",
        )
    # The model type's bindings come first; the config's own keys (later entries win)
    # override them, except those the catalog fixes for the type.
    for target, value in model_types[model_type].items():
        entries.append(Entry("model_type", value, where, target=target))
    bound = set(catalog.get("fixed", {}).get(model_type, ()))
    for key, value in tree.items():
        if key not in keys or value is None:
            continue
        target = keys[key]
        if target in bound:
            # The first of several config keys for one input wins (e.g. n_embd and hidden_size).
            continue
        _check_text(key, value, locate(key))
        if target in values and isinstance(value, str):
            value = values[target].get(value, value)
        entries.append(Entry(key, value, locate(key), target=target, optional=True))
        bound.add(target)
    # A file named config.json is named by its directory (a Hub snapshot); any other by itself.
    path = Path(shown)
    name = tree.get("_name_or_path") or (path.parent.name if path.name == "config.json" else "") or path.stem
    _check_text("_name_or_path", str(name), locate("_name_or_path"), metadata=True)
    return Spec(shown, str(name), tuple(entries), {"name": str(name)}, "config.json")


# ---------------------------------------------------------------------------
# --set NAME=VALUE


def parse_set(text: str) -> Entry:
    """``--set s=4096`` → an Entry located on the command line."""
    shown = _UNSHOWABLE.sub("\ufffd", text)
    if "=" not in text:
        raise SpecError("--set needs NAME=VALUE", Location("--set", None, 1, shown, len(text)),
                        hint="for example  --set s=4096  or  --set weight_dtype=bf16")
    key, value = text.split("=", 1)
    key, value = key.strip(), value.strip()
    if not key:
        raise SpecError("--set needs a name before '='", Location("--set", None, 1, shown))
    if value == "":
        raise SpecError(f"--set {_short(key)}= needs a value", Location("--set", None, len(text) + 1, shown))
    raw: object = value
    if value.lower() in ("true", "false"):  # the documented spellings, in any case
        raw = value.lower() == "true"
    elif "," in value:
        raw = [v.strip() for v in value.split(",") if v.strip()]
    start = text.index("=") + 1
    start += len(text[start:]) - len(text[start:].lstrip())
    value_at = Location("--set", None, start + 1, shown, len(value))
    _check_text(key, raw, value_at)
    return Entry(key, raw, Location("--set", None, 1, shown, len(key)), value_at=value_at)


# ---------------------------------------------------------------------------
# binding


def bind(ruleset: RuleSet, entries: Iterable[Entry]) -> Dict[str, Binding]:
    """Check entries against the formulas; later entries override earlier ones."""
    bindings: Dict[str, Binding] = {}
    known = ruleset.known_names()
    for entry in entries:
        name = ruleset.resolve(entry.name)
        if name is None and entry.optional:
            continue
        if name is None:
            hint = suggest(entry.name, known + list(METADATA_KEYS))
            raise SpecError(
                f"unknown key '{_short(entry.key)}'" + (f" (for '{entry.target}')" if entry.target else ""),
                entry.location,
                hint=hint or "run `vram-eval explain --list` to see every input and output name",
            )
        rule = ruleset.rules.get(name)
        if rule is not None and rule.kind == "table":
            raise SpecError(f"'{name}' is a table of the formulas and cannot be set", entry.location,
                            notes=[f"{rule.where}: {name} is defined here"])
        value = _convert(entry, name, ruleset)
        bindings.pop(name, None)  # the latest setting comes last: errors point at it first
        bindings[name] = Binding(name, value, entry.location, entry.key)
    return bindings


def _convert(entry: Entry, name: str, ruleset: RuleSet) -> Basic:
    raw = entry.value
    unit = ruleset.unit(name)
    allowed = ruleset.allowed_values(name)
    is_list = ruleset.is_list_input(name)
    what = f"'{_short(entry.key)}'"
    numeric = unit in ("bytes", "count", "ratio")

    def fail(message: str, hint: Optional[str] = None) -> SpecError:
        return SpecError(f"{what}: {message}", entry.value_at or entry.location, hint=hint)

    if isinstance(raw, _BadNumber):
        raise fail(f"{raw.text} is {raw.why}", _NUMBER_BOUNDS)
    if unit == "bool" and not isinstance(raw, bool):
        # Booleans only from booleans: "yes", "1" or 1 are not silently true.
        if entry.location.path == "--set":
            hint = f"on the command line write --set {_short(entry.key)}=true or --set {_short(entry.key)}=false"
        elif isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
            hint = f"write {raw.strip().lower()} without quotes"
        else:
            hint = "write true or false, without quotes"
        raise fail(f"expects true or false, not {_describe(raw)}", hint)
    if isinstance(raw, bool):
        if unit not in (None, "bool") or allowed is not None:
            raise fail(f"expects {_expects(unit, allowed)}, not {str(raw).lower()}")
        return true if raw else false
    if isinstance(raw, list):
        if not is_list:
            raise fail(f"expects {_expects(unit, allowed)}, not a list")
        items = []
        for item in raw:
            if not isinstance(item, str):
                raise fail(f"list items must be strings, not {_describe(item)}")
            if allowed is not None and item not in allowed:
                raise fail(f"'{_short(item)}' is not one of: {', '.join(sorted(allowed))}", suggest(item, allowed))
            items.append(Text(item))
        return TextSet(*items)
    if isinstance(raw, (int, float)):
        if isinstance(raw, float) and not math.isfinite(raw):
            raise fail(f"{raw} is not a finite number", _NUMBER_BOUNDS)
        if abs(raw) > MAX_MAGNITUDE:
            raise fail(f"{_describe(raw)} is out of range", _NUMBER_BOUNDS)
        number = _exact(raw)
        kind = None
    elif isinstance(raw, str):
        try:
            parsed = parse_quantity(raw)
        except NumberTooLarge as exc:
            raise fail(f"the number '{_short(raw)}' is out of range: {exc}", _NUMBER_BOUNDS) from None
        if parsed is None:
            if numeric:
                fixed = unit_hint(raw)
                if raw.strip().lower().lstrip("+-") in ("inf", "infinity", "nan"):
                    raise fail(f"'{_short(raw)}' is not a finite number", _NUMBER_BOUNDS)
                if any(c.isdigit() and not ("0" <= c <= "9") for c in raw):
                    hint = "write numbers with the ASCII digits 0-9"
                elif fixed:
                    hint = f"did you mean '{raw[: -len(fixed)].strip()}{fixed}'?"
                else:
                    hint = _unit_examples(unit)
                raise fail(f"'{_short(raw)}' is not {_expects(unit, None)}", hint)
            if is_list:
                return _convert(Entry(entry.key, [raw], entry.location, entry.target, value_at=entry.value_at),
                                name, ruleset)
            if allowed is not None and raw not in allowed:
                raise fail(f"'{_short(raw)}' is not one of: {', '.join(sorted(allowed))}", suggest(raw, allowed))
            return Text(raw)
        value, kind = parsed
        number = Rational(value.numerator, value.denominator)
    else:
        raise fail(f"expects {_expects(unit, allowed)}, not {_describe(raw)}")

    shown = _short(raw if isinstance(raw, str) else _describe(raw).replace("the number ", ""))
    if allowed is not None or unit in ("text", "list", "bool") or is_list:
        raise fail(f"expects {_expects(unit, allowed)}, not the number {shown}")
    if kind == "count" and unit == "bytes":
        raise fail(f"'{shown}' is a count (K/M/B/T = 10^3..10^12), but this is memory",
                   'give a byte unit, for example "24GiB" or "80GB"')
    if kind == "bytes" and unit in ("count", "ratio"):
        raise fail(f"'{shown}' is memory, but this is {'a count' if unit == 'count' else 'a plain number'}")
    if unit == "count" and (number.q != 1 or number < 0):
        raise fail(f"a count is a whole number, at least 0, not {shown}",
                   "counts (heads, layers, experts, tokens, GPUs) are whole numbers")
    if unit == "bytes" and number < 0:
        raise fail(f"a memory size cannot be negative ({shown})")
    return number


def _exact(raw) -> Rational:
    """An int or a finite float (checked by the caller) as an exact SymPy number."""
    if isinstance(raw, int):
        return Integer(raw)
    # repr() is the shortest decimal that round-trips: 0.1 stays 1/10.
    f = Fraction(repr(raw))
    return Rational(f.numerator, f.denominator)


def _describe(raw) -> str:
    """A value for a message: "'yes'", "the number 3", "a list", "a table", "a date"."""
    import datetime

    if isinstance(raw, bool):
        return str(raw).lower()
    if isinstance(raw, str):
        return f"'{_short(raw)}'"
    if isinstance(raw, int):
        return f"the number {raw}" if abs(raw) < 10**40 else f"a {len(str(abs(raw))) if raw.bit_length() < 14000 else 'many'}-digit number"
    if isinstance(raw, float):
        return f"the number {raw}"
    if isinstance(raw, _BadNumber):
        return raw.text
    if isinstance(raw, (list, tuple)):
        return "a list"
    if isinstance(raw, dict):
        return "a table"
    if isinstance(raw, (datetime.date, datetime.time)):
        return "a date or time"
    if raw is None:
        return "null"
    return f"a value of type {type(raw).__name__}"


def _expects(unit: Optional[str], allowed) -> str:
    if allowed is not None:
        return "one of: " + ", ".join(sorted(allowed))
    return {
        "bytes": 'a memory size such as "24GiB" or a number of bytes',
        "count": 'a count such as 4096 or "13B"',
        "ratio": "a number",
        "bool": "true or false",
        "text": "a string",
        "list": "a list of strings",
    }.get(unit, "a value")


def _unit_examples(unit: Optional[str]) -> Optional[str]:
    if unit == "bytes":
        return "memory units: KiB MiB GiB TiB (powers of 2), KB MB GB TB (powers of 10)"
    if unit == "count":
        return "count suffixes: K M B T (10^3, 10^6, 10^9, 10^12)"
    return None
