"""One error hierarchy for everything a user can get wrong.

Every error carries a :class:`Location` (file, line, column and the offending
line) so that the command line can render it once, the same way everywhere::

    formulas/my.formula:3:14: error: unknown function 'sqr'
        weights = sqr(P) * 2
                  ^
      did you mean 'sqrt'?

Library users catch :class:`EngineError`; the CLI turns it into exit status 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

__all__ = [
    "Location",
    "EngineError",
    "FormulaError",
    "FormulaSyntaxError",
    "SpecError",
    "UnknownModelType",
    "BindingError",
    "EvaluationError",
    "ValueTooLarge",
    "SolveError",
    "suggest",
]

# A source line longer than this is shown as a window around the column, so a
# 10 MB line does not flood the terminal.
_WINDOW = 70


@dataclass(frozen=True)
class Location:
    """Where something is: a path, and optionally a 1-based line and column."""

    path: Optional[str] = None
    line: Optional[int] = None
    column: Optional[int] = None
    source_line: Optional[str] = None
    width: int = 1  # how many characters the caret underlines

    def __str__(self) -> str:
        parts = [self.path or "<input>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    @classmethod
    def in_text(cls, path: Optional[str], text: str, line: int, column: int, width: int = 1) -> "Location":
        """A location in ``text``, with the offending line cut out of it."""
        lines = text.splitlines()
        source = lines[line - 1] if 0 < line <= len(lines) else None
        return cls(path, line, column, source, max(1, width))

    def excerpt(self) -> str:
        """The offending line with a caret under the column ('' if unknown)."""
        if self.source_line is None:
            return ""
        src = self.source_line.rstrip("\r\n").expandtabs(1)
        col = (self.column or 1) - 1
        width = self.width
        if len(src) > 2 * _WINDOW:
            start = max(0, col - _WINDOW // 2)
            end = min(len(src), start + _WINDOW)
            prefix = "..." if start > 0 else ""
            suffix = "..." if end < len(src) else ""
            src = prefix + src[start:end] + suffix
            col = col - start + len(prefix)
            width = min(width, end - start)
        text = "    " + src + "\n"
        if self.column is not None:
            text += "    " + " " * col + "^" * max(1, min(width, max(1, len(src) - col))) + "\n"
        return text


class EngineError(Exception):
    """Base of every error vram-eval reports to a user (exit status 2).

    ``message`` says what is wrong, ``location`` where, ``hint`` what to do,
    and ``notes`` are extra located lines (for example each step of a cycle).
    """

    kind = "error"

    def __init__(
        self,
        message: str,
        location: Optional[Location] = None,
        hint: Optional[str] = None,
        notes: Iterable[str] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint
        self.notes = tuple(notes)

    @property
    def path(self) -> Optional[str]:
        return self.location.path if self.location else None

    @property
    def line(self) -> Optional[int]:
        return self.location.line if self.location else None

    @property
    def column(self) -> Optional[int]:
        return self.location.column if self.location else None

    def render(self) -> str:
        """The one-paragraph message the CLI prints on stderr."""
        head = f"{self.location}: " if self.location else ""
        text = f"{head}{self.kind}: {self.message}\n"
        if self.location:
            text += self.location.excerpt()
        for note in self.notes:
            text += f"  {note}\n"
        if self.hint:
            text += f"  {self.hint}\n"
        return text

    def __str__(self) -> str:
        return self.render().rstrip("\n")


class FormulaError(EngineError):
    """A formula file is wrong: duplicate names, cycles, unknown functions, types."""


class FormulaSyntaxError(FormulaError):
    """A formula file does not follow the grammar."""


class SpecError(EngineError):
    """A spec file or a --set value is wrong: syntax, unknown key, invalid value."""


class UnknownModelType(SpecError):
    """A config.json's model_type is not in the catalog. Raised when the spec is bound unless
    ``--set arch=...`` says which block to read it with; ``model_type`` is the type as written."""

    def __init__(self, message: str, location: Optional[Location] = None, hint: Optional[str] = None,
                 model_type: str = "") -> None:
        super().__init__(message, location, hint)
        self.model_type = model_type


class BindingError(EngineError):
    """An output was asked for whose inputs are not bound."""


class EvaluationError(EngineError):
    """A formula has no real value at the bound point (division by zero, ...).
    ``rule`` is the definition that failed (None if unknown)."""

    def __init__(self, message: str, location: Optional[Location] = None, hint: Optional[str] = None,
                 notes: Iterable[str] = (), rule=None) -> None:
        super().__init__(message, location, hint, notes)
        self.rule = rule


class ValueTooLarge(EvaluationError):
    """A value beyond the exact bound (2^4096): reported, never worked out."""


class SolveError(EngineError):
    """An inverse question cannot be answered as asked."""


def suggest(name: str, known: Iterable[str]) -> Optional[str]:
    """'did you mean ...?' for the closest known name, or None."""
    import difflib  # only when there is something to suggest

    known = list(known)
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if not match:
        lowered = {k.lower(): k for k in known}
        if name.lower() in lowered:
            match = [lowered[name.lower()]]
    return f"did you mean '{match[0]}'?" if match else None

