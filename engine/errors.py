"""One error hierarchy for everything a user can get wrong.

Every error carries a :class:`Location` (file, line, column and the offending
line) so that the command line can render it once, the same way everywhere::

    formulas/my.formula:3:14: error: unknown function 'sqr'
        weights = sqr(P) * 2
                  ^
      did you mean 'sqrt'?

Library users catch :class:`EngineError`; the CLI turns it into exit status 2.

Two ways to catch an error, for two questions:

* **where** it happened — the *families*: :class:`FormulaError` (a formula file),
  :class:`SpecError` (a spec file or a value given on the command line),
  :class:`BindingError` (an output asked for that cannot be computed or does not exist),
  :class:`EvaluationError` (a formula at the bound values), :class:`SolveError` (an
  inverse question), and :class:`RangeError` (a sweep range, a kind of SpecError);
* **what** the mistake is — the *kinds*: one class per kind of mistake, with the facts
  of it as attributes (:class:`UnknownName` has ``.name``, ``.known`` and ``.suggestion``,
  :class:`CyclicDefinition` has ``.cycle``...).

A kind that can happen in several places is one class, raised as a member of the
family where it happened: ``UnknownName[SpecError]`` is the unknown name of a spec
key or ``--set``, ``UnknownName[FormulaError]`` the one a formula uses. Both are
``UnknownName``; only the first is a ``SpecError``. ``Kind[Family]`` is a subclass
of both, made once and kept, so ``except UnknownName[SpecError]`` works too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Optional

__all__ = [
    "Location",
    "EngineError",
    # families
    "FormulaError",
    "SpecError",
    "BindingError",
    "EvaluationError",
    "SolveError",
    "RangeError",
    "PlotFileError",
    "MissingDependency",
    # kinds
    "FormulaSyntaxError",
    "SpecSyntaxError",
    "ArgumentSyntaxError",
    "RangeSyntaxError",
    "UnreadableFile",
    "LimitExceeded",
    "ValueTooLarge",
    "UnknownName",
    "UnknownFunction",
    "UnknownUnit",
    "UnknownKey",
    "UnknownModelType",
    "WrongArgumentCount",
    "TypeMismatch",
    "NoRealValue",
    "DuplicateDefinition",
    "CyclicDefinition",
    "InvalidValue",
    "WrongKind",
    "NoDependence",
    "RequirementNotMet",
    "UnboundInput",
    "IncompleteVariant",
    "InconsistentVariants",
    "UnusedName",
    # helpers
    "suggest",
    "closest",
    "did_you_mean",
    "printable",
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
    A kind's structured attributes (its ``fields``, with their defaults) are given
    as keywords and read as attributes; :meth:`facts` returns them all.
    """

    kind = "error"  # the word the rendered message starts with
    fields: Dict[str, Any] = {}  # this class's own structured attributes → their defaults

    def __init__(
        self,
        message: str,
        location: Optional[Location] = None,
        hint: Optional[str] = None,
        notes: Iterable[str] = (),
        **facts: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint
        self.notes = tuple(notes)
        declared = type(self)._all_fields()
        unknown = sorted(set(facts) - set(declared))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no attribute {', '.join(unknown)} "
                            f"(its attributes: {', '.join(declared) or 'none'})")
        for name, default in declared.items():
            setattr(self, name, facts.get(name, default))

    @classmethod
    def _all_fields(cls) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            out.update(klass.__dict__.get("fields", {}))
        return out

    def facts(self) -> Dict[str, Any]:
        """The structured attributes of this error, by name."""
        return {name: getattr(self, name) for name in type(self)._all_fields()}

    @property
    def path(self) -> Optional[str]:
        return self.location.path if self.location else None

    @property
    def line(self) -> Optional[int]:
        return self.location.line if self.location else None

    @property
    def column(self) -> Optional[int]:
        return self.location.column if self.location else None

    def relocated(self, location: Optional[Location], **changes: Any) -> "EngineError":
        """The same error (class and facts) at another location; ``changes`` may replace the
        message, hint, notes or a fact."""
        facts = self.facts()
        own = {k: changes.pop(k) for k in ("message", "hint", "notes") if k in changes}
        facts.update(changes)
        return type(self)(own.get("message", self.message), location, own.get("hint", self.hint),
                          own.get("notes", self.notes), **facts)

    def moved(self, family: type, location: Optional[Location], **changes: Any) -> "EngineError":
        """The same kind of mistake raised in another ``family``, at ``location`` (a built-in
        formula's error that a spec's value caused is that value's SpecError). The kind is the
        most specific class of this error that belongs to no other family; its facts are
        kept; ``changes`` replace the message, hint, notes or a fact."""
        families = [k for k in _ALL_FAMILIES if not issubclass(family, k)]
        target = family
        for klass in type(self).__mro__:
            if (issubclass(klass, EngineError) and not klass.__name__.startswith("_")
                    and "_made_of" not in klass.__dict__ and not klass.__dict__.get("_family")
                    and not any(issubclass(klass, k) for k in families)):
                target = klass[family] if klass is not EngineError else family
                break
        fields = target._all_fields()
        facts = {k: v for k, v in self.facts().items() if k in fields}
        facts.update({k: v for k, v in changes.items() if k in fields})
        return target(changes.get("message", self.message), location, changes.get("hint", self.hint),
                      changes.get("notes", self.notes), **facts)

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

    # -- Kind[Family] -------------------------------------------------------
    def __class_getitem__(cls, family: type) -> type:
        return _in_family(cls, family)

    def __reduce__(self):
        cls = type(self)
        made = cls.__dict__.get("_made_of")
        return (_restore, (made or cls,), self.__dict__.copy())

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.args = (state.get("message", ""),)


@functools.lru_cache(maxsize=None)
def _in_family(kind: type, family: type) -> type:
    """``kind`` raised as a member of ``family``: a subclass of both (made once)."""
    if not (isinstance(family, type) and issubclass(family, EngineError)):
        raise TypeError(f"{kind.__name__}[...] takes an EngineError family, not {family!r}")
    if issubclass(kind, family):
        return kind
    return type(kind.__name__, (kind, family), {
        "__module__": kind.__module__,
        "__qualname__": f"{kind.__qualname__}[{family.__qualname__}]",
        "__doc__": kind.__doc__,
        "_made_of": (kind, family),
    })


def _restore(made):
    cls = _in_family(*made) if isinstance(made, tuple) else made
    return cls.__new__(cls)


# ---------------------------------------------------------------------------
# families: where the mistake is


class FormulaError(EngineError):
    """A formula file is wrong: syntax, duplicate names, cycles, unknown functions, types."""

    _family = True


class SpecError(EngineError):
    """A spec file or a value given on the command line (--set, --gpu, a sweep range) is wrong:
    syntax, unknown key, invalid value."""

    _family = True


class BindingError(EngineError):
    """An output was asked for that does not exist, or whose inputs are not bound."""

    _family = True


class EvaluationError(EngineError):
    """A formula has no real value at the bound point (division by zero, ...).
    ``rule`` is the definition that failed (None if unknown)."""

    _family = True
    fields = {"rule": None}


class SolveError(EngineError):
    """An inverse question cannot be answered as asked."""

    _family = True


class RangeError(SpecError):
    """A sweep range ``NAME=START:STOP[:STEP]`` is wrong. ``text`` is the range as written,
    ``part`` the part at fault: name, start, stop, step or range (the whole of it)."""

    _family = True
    fields = {"text": "", "part": "range"}


class PlotFileError(EngineError):
    """The plot file cannot be drawn: ``file`` as given; ``reason`` is "suffix" (not .png or
    .svg) or "unwritable"."""

    _family = True
    fields = {"file": "", "reason": ""}


class MissingDependency(EngineError):
    """An optional package a command needs is not installed: ``package``, and ``extra``, the
    pip extra that installs it (vram-eval[plot], vram-eval[validate])."""

    _family = True
    fields = {"package": "", "extra": ""}


# ---------------------------------------------------------------------------
# kinds: what the mistake is


class FormulaSyntaxError(FormulaError):
    """A formula file does not follow the grammar. ``found`` is the unexpected text (a
    token or a character; None at the end of the file or where nothing in particular is)."""

    fields = {"found": None}


class SpecSyntaxError(SpecError):
    """A spec file is not valid TOML, YAML or JSON: ``format`` is "toml", "yaml" or "json"."""

    fields = {"format": ""}


class ArgumentSyntaxError(SpecError):
    """A command-line value is not written as it must be (``--set NAME=VALUE``):
    ``option`` is the option, ``text`` what was given."""

    fields = {"option": "", "text": ""}


class RangeSyntaxError(RangeError):
    """A sweep range, or one of its parts, is not written as NAME=START:STOP[:STEP]."""


class UnreadableFile(EngineError):
    """A file cannot be read as what it is given for. ``file`` is its name as given;
    ``reason`` one of: "missing", "directory", "not regular" (a pipe, a device, a socket),
    "not UTF-8", "bad name" (a NUL byte), "format" (not a format vram-eval reads), "empty"
    (a directory without formula files), "unreadable" (the system refused: permissions...),
    "truncated" (a weight file shorter than its header says), "fetch" (``--fetch`` could not read
    it from the Hub), "outside" (a path the web page does not open)."""

    fields = {"file": "", "reason": ""}


class LimitExceeded(EngineError):
    """Something is beyond one of vram-eval's bounds: ``what`` names the bounded quantity
    ("file size", "lines", "line length", "entries", "nesting", "digits", "points", "value",
    ...), ``limit`` the bound, ``amount`` how much there is (None when not counted)."""

    fields = {"what": "", "limit": None, "amount": None}


class ValueTooLarge(LimitExceeded, EvaluationError):
    """A value beyond the exact bound (2^4096): reported, never worked out."""

    def __init__(self, message: str, location: Optional[Location] = None, hint: Optional[str] = None,
                 notes: Iterable[str] = (), **facts: Any) -> None:
        facts.setdefault("what", "value")
        super().__init__(message, location, hint, notes, **facts)


class _Suggesting(EngineError):
    """A kind that names something unknown and may suggest the closest known one."""

    _named_by = "name"
    _known_in = "known"

    def __init__(self, message: str, location: Optional[Location] = None, hint: Optional[str] = None,
                 notes: Iterable[str] = (), **facts: Any) -> None:
        facts[self._known_in] = tuple(facts.get(self._known_in, ()))
        if "suggestion" not in facts:
            facts["suggestion"] = closest(str(facts.get(self._named_by, "")), facts[self._known_in])
        super().__init__(message, location, hint, notes, **facts)


class UnknownName(_Suggesting):
    """A name of an input or output that the formulas neither define nor declare: used in a
    formula (``[FormulaError]``), a spec key or ``--set NAME`` (``[SpecError]``), ``--output``
    or ``explain NAME`` (``[BindingError]``), ``--for`` or ``--target`` (``[SolveError]``).
    ``name`` as written, ``known`` the names it could have been, ``suggestion`` the closest
    of them (or None)."""

    fields = {"name": "", "known": (), "suggestion": None}


class UnknownFunction(_Suggesting, FormulaError):
    """A formula calls a function the language does not have: ``name``, ``known`` (the
    functions), ``suggestion``."""

    fields = {"name": "", "known": (), "suggestion": None}


class UnknownUnit(_Suggesting, FormulaError):
    """A formula declares a unit the language does not have: ``name``, ``known``, ``suggestion``."""

    fields = {"name": "", "known": (), "suggestion": None}


class UnknownKey(_Suggesting):
    """A lookup with a key its table does not have: a formula's table at the bound values
    (``[EvaluationError]``), the GPU catalog (``[SpecError]``, ``table`` "gpus"), the Hugging
    Face catalog's model types (:class:`UnknownModelType`). ``table`` names the table, ``key``
    is the key as given, ``keys`` the table's keys, ``suggestion`` the closest (or None)."""

    fields = {"table": "", "key": "", "keys": (), "suggestion": None}
    _named_by = "key"
    _known_in = "keys"


class UnknownModelType(UnknownKey, SpecError):
    """A config.json's model_type is not in the catalog. Raised when the spec is bound unless
    ``--set arch=...`` says which block to read it with; ``model_type`` is the type as written."""

    fields = {"model_type": ""}

    def __init__(self, message: str, location: Optional[Location] = None, hint: Optional[str] = None,
                 notes: Iterable[str] = (), **facts: Any) -> None:
        facts.setdefault("table", "model_types")
        facts.setdefault("key", facts.get("model_type", ""))
        facts.setdefault("suggestion", None)  # a similar name is often another family: never guessed
        super().__init__(message, location, hint, notes, **facts)


class WrongArgumentCount(FormulaError):
    """A function is called with too few or too many arguments: ``function``, ``given``,
    ``least`` and ``most`` (None: no upper bound)."""

    fields = {"function": "", "given": 0, "least": 0, "most": None}


class TypeMismatch(EngineError):
    """A value of one type where the formulas need another: a string, a table or a condition
    in arithmetic, a number where a condition must be (``[FormulaError]`` when the formula
    itself says so, ``[EvaluationError]`` when the bound values do; ``[SolveError]`` when an
    output swept or searched over a range of an input holds one, or when a sweep range's
    point is written as a count for memory, as memory for a count: ``found`` "a count" or
    "memory"). ``expected`` and ``found`` name the types in words ("a number", "a condition",
    "a string", "a table")."""

    fields = {"expected": "", "found": ""}


class NoRealValue(EngineError):
    """A formula has no real value: a division by zero, a root or logarithm of a negative
    number, an infinite or complex result — of constants (``[FormulaError]``) or at the
    bound values (``[EvaluationError]``). ``operation`` names it: "division", "sqrt",
    "log", "power", "infinite", "complex", "not a number"."""

    fields = {"operation": ""}


class DuplicateDefinition(EngineError):
    """One name given twice where it may be given once: a definition or input
    (``[FormulaError]``), an alias, a table's key, a spec's key (``[SpecError]``), a GPU
    catalog id. ``name`` is the name, ``first`` where it was given first (a Location, or
    None where unknown)."""

    fields = {"name": "", "first": None}


class CyclicDefinition(FormulaError):
    """Definitions that depend on each other in a cycle. ``cycle`` is the names in order,
    the first repeated at the end: ("a", "b", "a")."""

    fields = {"cycle": ()}


class InvalidValue(EngineError):
    """A value that the thing it is given to does not take: a spec's or ``--set``'s value
    for an input (``[SpecError]``), a budget (``[SolveError]``), a point of a sweep range
    (``[RangeError]``; ``[SolveError]`` where the range is well formed but its input does
    not take the point: a negative count, a fraction of a count), a catalog's entry.
    ``name`` is what it is given to (an input, a key, a range's part; an output whose value
    memory cannot have, ``[EvaluationError]``),
    ``value`` the value as given, ``allowed`` the values it takes
    where they are a list (else None), ``expected`` what it takes, in words."""

    fields = {"name": "", "value": None, "allowed": None, "expected": ""}


class WrongKind(EngineError):
    """A name of the wrong kind for what is asked of it: a table set in a spec
    (``[SpecError]``), a choice or a table solved for (``[SolveError]``). ``name``; ``actual``
    is what it is ("table", "choice", "bool"), ``wanted`` what was needed ("an input", "a number")."""

    fields = {"name": "", "actual": "", "wanted": ""}


class NoDependence(SolveError):
    """An inverse question about an input the target does not depend on (or, at these values,
    does not change with): ``target``, ``name``."""

    fields = {"target": "", "name": ""}


class RequirementNotMet(EngineError):
    """A requirement of the formulas (``require COND "doc"``) does not hold: at the bound
    values (``[SpecError]``) or at a point of a sweep (``[SolveError]``). ``rule`` is the
    requirement, ``values`` the values of the names it tests."""

    fields = {"rule": None, "values": None}


class UnboundInput(EngineError):
    """An output asked for whose inputs are not set (``[BindingError]``); a budget neither
    given nor in the spec (``[SpecError]``); a name without a value in an output swept or
    searched over a range of another input (``[SolveError]``). ``name`` is the output (or
    what needs the value), ``missing`` the inputs to set."""

    fields = {"name": "", "missing": ()}


# --- what `vram-eval check` finds in the formula files as a whole -------------


class IncompleteVariant(FormulaError):
    """A variant file (formulas/arch/gpt.formula) leaves out a name of its directory's
    interface: a name another variant defines that a file outside the directory uses.
    ``name``; ``variant`` the one that lacks it ("arch=gpt"); ``defined_by`` the variants
    that define it; ``used_at`` where a file outside uses it."""

    fields = {"name": "", "variant": "", "defined_by": (), "used_at": None}


class InconsistentVariants(FormulaError):
    """Variants declare one interface name differently: ``name``, and ``declarations``:
    (variant, "input" or "definition", unit) for each."""

    fields = {"name": "", "declarations": ()}


class UnusedName(FormulaError):
    """An input that nothing reads (no definition, requirement or expectation uses it, and
    no variant directory is named after it), or a variant's definition that nothing uses:
    a spec that sets it changes nothing. ``name``; ``variant`` where it is unused
    ("arch=llama"; "" in every variant)."""

    fields = {"name": "", "variant": ""}


_ALL_FAMILIES = (FormulaError, SpecError, BindingError, EvaluationError, SolveError, RangeError, PlotFileError,
                 MissingDependency)

# ---------------------------------------------------------------------------


def closest(name: str, known: Iterable[str]) -> Optional[str]:
    """The known name closest to ``name`` (a typo's likely meaning), or None."""
    import difflib  # only when there is something to suggest

    known = list(known)
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if not match:
        lowered = {k.lower(): k for k in known}
        if name.lower() in lowered:
            match = [lowered[name.lower()]]
    return match[0] if match else None


def suggest(name: str, known: Iterable[str]) -> Optional[str]:
    """'did you mean ...?' for the closest known name, or None."""
    match = closest(name, known)
    return did_you_mean(match)


def did_you_mean(match: Optional[str]) -> Optional[str]:
    return f"did you mean '{match}'?" if match else None


def printable(text: object, limit: Optional[int] = None) -> str:
    """``text`` as a message quotes it: every character that is not printable escaped as
    Python writes it in a string (``\\r``, ``\\n``, ``\\t``, ``\\x1b``, ``\\x00``, a lone
    surrogate as ``\\ud800``), so that a value cannot move the terminal's cursor or change its
    colours; cut to ``limit`` characters (before escaping, "..." at the end) when given."""
    text = str(text)
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 3)] + "..."
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
                   if not 0xD800 <= ord(c) <= 0xDFFF else f"\\u{ord(c):04x}" for c in text)
