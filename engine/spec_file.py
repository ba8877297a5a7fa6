"""Reading a spec file safely, whatever its format, and the bounds every spec is read within.

Input is hostile until checked: only regular files are read, within the bounds below
(numbers within units.MAX_DIGITS and MAX_MAGNITUDE), as UTF-8 text of printable strings.
Also the helpers the format modules share: numbers no input can take, values in messages.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import List, Optional

from . import resources
from .errors import InvalidValue, LimitExceeded, Location, SpecError, UnreadableFile, suggest
from .safe_read import FileTooLarge, NotRegular, read_regular
from .units import MAX_DIGITS, MAX_MAGNITUDE_TEXT

__all__ = ["MAX_BYTES", "MAX_LINE", "MAX_LINES", "MAX_ENTRIES", "MAX_DEPTH", "MAX_STRING"]

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
                raise LimitExceeded[SpecError](
                    f"'{_short(key)}': the string is {len(item):,} characters long; values are limited "
                    f"to {MAX_STRING:,}", where, hint="input values are short names such as \"bf16\"",
                    what="string length", limit=MAX_STRING, amount=len(item))
            m = _BAD_CHARACTER.search(item)
            if m:
                raise InvalidValue[SpecError](
                    f"'{_short(key)}': the string holds the character U+{ord(m.group()):04X}, "
                    "which a spec may not contain", where,
                    hint="spec strings are printable text: no control characters or lone surrogates",
                    name=str(key), value=item, expected="printable text")


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


def _read_text(p: Path, shown: str) -> str:
    """The text of a spec file: a regular file of at most MAX_BYTES, UTF-8, byte-order mark dropped."""
    data = _read_bytes(p, shown)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = len(data[: exc.start].rsplit(b"\n", 1)[-1].decode("utf-8", "replace")) + 1
        raise UnreadableFile[SpecError](f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x})",
                                        Location(shown, line, column), hint="spec files are UTF-8 TOML, YAML or JSON",
                                        file=shown, reason="not UTF-8") from None
    if text.startswith("\ufeff"):  # a byte-order mark, as some editors write
        text = text[1:]
    return text


def _read_bytes(p: Path, shown: str) -> bytes:
    """The bytes of a regular file of at most MAX_BYTES; anything else is refused before it is read."""
    unreadable = UnreadableFile[SpecError]
    try:
        return read_regular(p, MAX_BYTES)
    except FileNotFoundError:
        raise unreadable("no such file", Location(shown), hint=_nearby_specs_hint(p), file=shown,
                         reason="missing") from None
    except IsADirectoryError:
        raise unreadable("this is a directory, not a spec file", Location(shown),
                         hint="give a .toml, .yaml or config.json file", file=shown, reason="directory") from None
    except NotRegular as exc:
        raise unreadable(f"this is {exc.kind}, not a spec file", Location(shown),
                         hint="vram-eval reads a spec only from a regular file: save it as a .toml, .yaml or "
                         "config.json file", file=shown, reason="not regular") from None
    except FileTooLarge as exc:
        raise LimitExceeded[SpecError](f"the file is larger than {_kib(MAX_BYTES)}, the most vram-eval reads as a spec",
                                       Location(shown),
                                       hint="a spec is a few KiB: give the model's own .toml, .yaml or config.json",
                                       what="file size", limit=MAX_BYTES, amount=exc.size) from None
    except ValueError:  # an embedded NUL byte
        raise unreadable("this is not a usable file name", Location(shown), file=shown, reason="bad name") from None
    except OSError as exc:
        raise unreadable(f"cannot read the file: {exc.strerror}", Location(shown), file=shown,
                         reason="unreadable") from None


def _check_lines(lines: _Lines) -> None:
    if len(lines.lines) > MAX_LINES + (lines.lines[-1] == ""):
        raise LimitExceeded[SpecError](f"the file has more than {MAX_LINES:,} lines, the most a spec may have",
                                       lines.at(MAX_LINES + 1, 1),
                                       hint="a spec is a few dozen lines: is this the right file?",
                                       what="lines", limit=MAX_LINES, amount=len(lines.lines))
    for number, line in enumerate(lines.lines, 1):
        if len(line) > MAX_LINE:
            raise LimitExceeded[SpecError](f"line {number} is longer than {_kib(MAX_LINE)} ({len(line):,} characters), "
                                           "the longest line a spec may have", lines.at(number, MAX_LINE + 1),
                                           hint="a spec is a few dozen short lines: is this the right file?",
                                           what="line length", limit=MAX_LINE, amount=len(line))


def _nearby_specs_hint(p: Path) -> Optional[str]:
    try:
        known = [s.name for s in resources.specs_dir().glob("*.toml")]
    except OSError:  # pragma: no cover
        return None
    guess = suggest(p.name, known)
    return (guess[:-1] + f" (in {resources.specs_dir()})") if guess else None


def _finite_float(text: str):
    value = float(text)
    return value if math.isfinite(value) else _BadNumber(text, "not a finite number")


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
