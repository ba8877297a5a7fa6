"""Lark parse tree → :class:`Rule` objects holding SymPy expressions.

The :class:`FormulaTransformer` has one method per grammar rule (as in Lark's
own examples). It builds SymPy objects directly — ``Symbol`` for every name,
exact ``Integer``/``Rational`` for every number — and never passes text to
``sympify``/``parse_expr``/``eval``: those run Python code and would turn the
names ``N``, ``E``, ``I``, ``S``, ``Q``, ``O`` or ``beta`` into SymPy objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import sympy
from lark import Token, Transformer, v_args
from lark.exceptions import VisitError
from sympy import (
    Abs,
    Add,
    And,
    Eq,
    Ge,
    Gt,
    Le,
    Lt,
    Max,
    Min,
    Mod,
    Mul,
    Ne,
    Not,
    Or,
    Piecewise,
    Pow,
    Rational,
    Symbol,
    ceiling,
    floor,
    log,
    sqrt,
)
from sympy.logic.boolalg import Boolean, false, true

from .errors import (DuplicateDefinition, FormulaError, LimitExceeded, Location, NoRealValue, TypeMismatch,
                     UnknownFunction, UnknownUnit, UnreadableFile, WrongArgumentCount, closest, did_you_mean)
from .parse import parse_text

# The statements that hold a condition instead of a name: a requirement (an error when it does
# not hold) and an expectation (a warning).
CONDITIONS = ("requirement", "expectation")
from .nodes import Expression, Malformed, checked
from .nodes_sympy import Unencodable, encode_exprs
from .rules import FormulaFile, Rule
from .safe_read import FileTooLarge, NotRegular, read_regular
from .symbols import Lookup, Member, Table, Text, TextEq, TextSet
from .units import BYTE_UNITS, UNIT_NAMES, NumberTooLarge, parse_number

__all__ = ["FormulaTransformer", "read_formula_file", "parse_formulas", "FUNCTIONS"]

# name → (SymPy constructor, fewest arguments, most arguments or None)
FUNCTIONS = {
    "min": (Min, 1, None),
    "max": (Max, 1, None),
    "ceil": (ceiling, 1, 1),
    "floor": (floor, 1, 1),
    "sqrt": (sqrt, 1, 1),
    "log": (log, 1, 2),  # log(x) natural, log(x, base)
    "abs": (Abs, 1, 1),
}

# 2^MAX_POWER_BITS is the largest exact power worked out while reading a file.
MAX_POWER_BITS = 4096
# Bounds on one formula file, far above any real one (the whole built-in model is under
# 1,000 lines, its longest line 175 characters): past them a file is refused at once
# with a located error instead of taking minutes or gigabytes to parse.
MAX_FILE_BYTES = 1 << 20
MAX_LINES = 5_000
MAX_LINE_LENGTH = 4_000
MAX_TABLE_ENTRIES = 1_000

_COMPARE = {"<": Lt, "<=": Le, ">": Gt, ">=": Ge}


class _Located(Exception):
    """Raised inside the transformer; turned into ``error`` (a FormulaError kind) with a Location
    and the kind's ``facts``. ``first``: (line, column, width) of the first of a duplicate."""

    def __init__(self, message: str, line: int, column: int, width: int = 1, hint: Optional[str] = None,
                 error: type = FormulaError, first: Optional[tuple] = None, **facts):
        super().__init__(message)
        self.message, self.line, self.column, self.width, self.hint = message, line, column, width, hint
        self.error, self.first, self.facts = error, first, facts

    def located(self, path: Optional[str], text: str) -> FormulaError:
        facts = dict(self.facts)
        if self.first is not None:
            facts["first"] = Location.in_text(path, text, *self.first)
        return self.error(self.message, Location.in_text(path, text, self.line, self.column, self.width),
                          hint=self.hint, **facts)


_TypeMismatch = TypeMismatch[FormulaError]
_NoValue = NoRealValue[FormulaError]
_Limit = LimitExceeded[FormulaError]
_Unreadable = UnreadableFile[FormulaError]


def _what(x) -> str:
    """A value's type in words, for a TypeMismatch."""
    if isinstance(x, Text):
        return "a string"
    if isinstance(x, Table):
        return "a table"
    if isinstance(x, TextSet):
        return "a list"
    if _is_condition(x):
        return "a condition"
    return "a number"


def _at(node) -> tuple:
    """(line, column, width) of a token or a tree's meta."""
    if isinstance(node, Token):
        return node.line, node.column, len(node.value)
    return node.line, node.column, max(1, node.end_pos - node.start_pos) if node.end_line == node.line else 1


def _is_condition(x) -> bool:
    return isinstance(x, Boolean) and not isinstance(x, Symbol)


def _numeric(x, meta, what: str = "this"):
    """Check that x can stand in arithmetic."""
    if isinstance(x, Text):
        raise _Located(f"the string {x} cannot be used as a number", *_at(meta),
                       hint="strings can only be compared with == or != and used as table keys",
                       error=_TypeMismatch, expected="a number", found="a string")
    if isinstance(x, Table):
        raise _Located("a table cannot be used as a number", *_at(meta), hint="look a value up with table[key]",
                       error=_TypeMismatch, expected="a number", found="a table")
    if _is_condition(x):
        raise _Located("a condition cannot be used as a number", *_at(meta),
                       hint="write (A if CONDITION else B) to choose between numbers",
                       error=_TypeMismatch, expected="a number", found="a condition")
    return x


def _condition(x, meta):
    if isinstance(x, Text) or isinstance(x, Table) or not isinstance(x, (Boolean, Symbol)):
        raise _Located("expected a condition here (a comparison, true/false or a boolean input)", *_at(meta),
                       hint="compare it, for example  x > 0", error=_TypeMismatch, expected="a condition",
                       found=_what(x))
    return x


def _relation(kind, left, right):
    """A comparison, decided now only if both sides are numbers. Left symbolic it is built
    unevaluated: SymPy's assumption queries on symbols cost more than parsing the file."""
    if left.is_number and right.is_number:
        return kind(left, right)
    return kind(left, right, evaluate=False)


@v_args(meta=True)
class FormulaTransformer(Transformer):
    """Parse tree → statements. Expression methods return SymPy objects."""

    # --- statements -----------------------------------------------------
    def start(self, meta, items):
        return [item for item in items if item is not None]

    def definition(self, meta, items):
        name = items[0]
        unit = doc = value = None
        for item in items[1:]:
            if isinstance(item, tuple) and item[0] == "unit":
                unit = item[1]
            elif isinstance(item, tuple) and item[0] == "doc":
                doc = item[1] if doc is None else doc + " " + item[1]
            else:
                value = item
        if isinstance(value, list):  # a table literal
            return ("table", name, unit, doc, Table(str(name), value), meta, ())
        return ("definition", name, unit, doc, value, meta, ())

    def input_decl(self, meta, items):
        name = items[0]
        unit = doc = default = None
        aliases = ()
        for item in items[1:]:
            if isinstance(item, tuple) and item[0] == "unit":
                unit = item[1]
            elif isinstance(item, tuple) and item[0] == "doc":
                doc = item[1]
            elif isinstance(item, tuple) and item[0] == "aliases":
                aliases = item[1]
            else:
                default = item
        return ("input", name, unit, doc, default, meta, aliases)

    def requirement(self, meta, items):
        cond = _condition(items[0], meta)
        doc = items[1][1] if len(items) > 1 else None
        return ("requirement", None, None, doc, cond, meta, ())

    def expectation(self, meta, items):
        cond = _condition(items[0], meta)
        doc = items[1][1] if len(items) > 1 else None
        return ("expectation", None, None, doc, cond, meta, ())

    def aliases(self, meta, items):
        return ("aliases", tuple(str(t) for t in items))

    def unit(self, meta, items):
        tok = items[0]
        if str(tok) not in UNIT_NAMES:
            guess = closest(str(tok), UNIT_NAMES)
            hint = did_you_mean(guess) or "known units: " + ", ".join(UNIT_NAMES)
            raise _Located(f"unknown unit [{tok}]", *_at(tok), hint=hint, error=UnknownUnit, name=str(tok),
                           known=tuple(UNIT_NAMES), suggestion=guess)
        return ("unit", str(tok))

    def doc(self, meta, items):
        return ("doc", str(items[0])[1:-1])

    def table(self, meta, items):
        if len(items) > MAX_TABLE_ENTRIES:
            raise _Located(f"a table of {len(items):,} entries is more than the limit of {MAX_TABLE_ENTRIES:,}",
                           *_at(meta), error=_Limit, what="table entries", limit=MAX_TABLE_ENTRIES, amount=len(items))
        seen = {}
        first = {}
        for key, value, key_tok, value_meta in items:
            if key in seen:
                raise _Located(f"key '{key}' appears twice in this table", *_at(key_tok),
                               error=DuplicateDefinition[FormulaError], first=first[key], name=key)
            if value.free_symbols and not all(isinstance(s, Text) for s in value.free_symbols):
                raise _Located("table values must be numbers, not formulas", *_at(value_meta),
                               hint="define the formula as its own name and look the key up in a condition",
                               error=_TypeMismatch, expected="a number", found="a formula")
            seen[key] = value
            first[key] = _at(key_tok)
        return list(seen.items())

    def entry(self, meta, items):
        key_tok, value = items
        key = str(key_tok)[1:-1] if key_tok.type == "STRING" else str(key_tok)
        return key, value, key_tok, meta

    # --- expressions ----------------------------------------------------
    def conditional(self, meta, items):
        then, cond, otherwise = items
        return Piecewise((then, _condition(cond, meta)), (otherwise, true))

    def or_test(self, meta, items):
        return Or(*(_condition(x, meta) for x in items))

    def and_test(self, meta, items):
        return And(*(_condition(x, meta) for x in items))

    def negation(self, meta, items):
        return Not(_condition(items[0], meta))

    def compare(self, meta, items):
        left, op, right = items
        op = str(op)
        names = isinstance(left, Symbol) and isinstance(right, Symbol)
        if isinstance(left, Text) or isinstance(right, Text) or (names and op in ("==", "!=")):
            if op not in ("==", "!="):
                raise _Located(f"strings cannot be compared with {op}", *_at(meta),
                               hint="use == or !=", error=_TypeMismatch, expected="a number", found="a string")
            eq = TextEq(left, right)
            return eq if op == "==" else Not(eq)
        if _is_condition(left) or _is_condition(right):
            raise _Located("conditions cannot be compared; combine them with and/or", *_at(meta),
                           error=_TypeMismatch, expected="a number", found="a condition")
        if op == "==":
            return _relation(Eq, left, right)
        if op == "!=":
            return _relation(Ne, left, right)
        return _relation(_COMPARE[op], _numeric(left, meta), _numeric(right, meta))

    def member(self, meta, items):
        item, collection = items
        if not isinstance(item, Text):
            raise _Located('the left side of "in" must be a "string"', *_at(meta), hint='for example  "q" in lora_targets',
                           error=_TypeMismatch, expected="a string", found=_what(item))
        if not isinstance(collection, Symbol) or isinstance(collection, Text):
            raise _Located('the right side of "in" must be the name of a list input', *_at(meta),
                           error=_TypeMismatch, expected="the name of a list input", found=_what(collection))
        return Member(item, collection)

    def non_member(self, meta, items):
        return Not(self.member(meta, items))

    def binary(self, meta, items):
        left, op, right = items
        _numeric(left, meta)
        _numeric(right, meta)
        if op.type == "PLUS":
            return Add(left, right)
        if op.type == "MINUS":
            return Add(left, -right)
        if op.type == "STAR":
            return Mul(left, right)
        if right == 0:
            raise _Located("division by zero", *_at(op), error=_NoValue, operation="division")
        if op.type == "SLASH":
            return Mul(left, Pow(right, -1))
        return Mod(left, right)

    def negative(self, meta, items):
        return -_numeric(items[1], meta)

    def positive(self, meta, items):
        return _numeric(items[1], meta)

    def power(self, meta, items):
        base, op, exponent = items
        _numeric(base, meta)
        _numeric(exponent, meta)
        if base.is_number and exponent.is_number:
            if base == 0 and exponent.is_negative:
                raise _Located("division by zero (0 to a negative power)", *_at(op), error=_NoValue, operation="power")
            if exponent.is_Integer and abs(base) > 1:
                bits = abs(int(exponent)) * abs(int(sympy.floor(sympy.log(abs(base), 2)) + 1))
                if bits > MAX_POWER_BITS:
                    raise _Located("this power is too large to work out exactly", *_at(op),
                                   hint=f"exact results are limited to about 2^{MAX_POWER_BITS}",
                                   error=_Limit, what="power (bits)", limit=MAX_POWER_BITS, amount=bits)
        return Pow(base, exponent)

    def number(self, meta, items):
        tok = items[0]
        try:
            value = parse_number(str(tok))
        except NumberTooLarge:
            raise _Located(f"the number {tok} is out of range", *_at(tok), hint="exponents are limited to ±400",
                           error=_Limit, what="number") from None
        return Rational(value.numerator, value.denominator)

    def quantity(self, meta, items):
        tok = items[0]
        text = str(tok)
        unit = text.rstrip()
        for suffix in sorted(BYTE_UNITS, key=len, reverse=True):
            if unit.endswith(suffix):
                number_text = unit[: -len(suffix)]
                break
        try:
            value = parse_number(number_text) * BYTE_UNITS[suffix]
        except NumberTooLarge:
            raise _Located(f"the number {tok} is out of range", *_at(tok), error=_Limit, what="number") from None
        return Rational(value.numerator, value.denominator)

    def string(self, meta, items):
        return Text(str(items[0])[1:-1])

    def true(self, meta, items):
        return true

    def false(self, meta, items):
        return false

    def name(self, meta, items):
        return Symbol(str(items[0]))

    def call(self, meta, items):
        name_tok, args = items[0], items[1:]
        name = str(name_tok)
        if name not in FUNCTIONS:
            guess = closest(name, FUNCTIONS)
            hint = did_you_mean(guess) or "known functions: " + ", ".join(sorted(FUNCTIONS))
            raise _Located(f"unknown function '{name}'", *_at(name_tok), hint=hint, error=UnknownFunction, name=name,
                           known=tuple(sorted(FUNCTIONS)), suggestion=guess)
        func, least, most = FUNCTIONS[name]
        if len(args) < least or (most is not None and len(args) > most):
            want = str(least) if least == most else (f"{least} or more" if most is None else f"{least} to {most}")
            raise _Located(f"{name}() takes {want} argument{'s' if want != '1' else ''}, not {len(args)}", *_at(name_tok),
                           error=WrongArgumentCount, function=name, given=len(args), least=least, most=most)
        for arg in args:
            _numeric(arg, meta)
        if name in ("sqrt", "log") and args[0].is_number and (args[0].is_negative or (name == "log" and args[0].is_zero)):
            raise _Located(f"{name}() of {args[0]} has no real value", *_at(name_tok), error=_NoValue, operation=name)
        if name == "log" and len(args) == 2 and args[1].is_number and (args[1] <= 0 or args[1] == 1):
            raise _Located(f"log(x, {args[1]}) has no value: a logarithm's base must be positive and not 1",
                           *_at(name_tok), error=_NoValue, operation="log")
        return func(*args)

    def text_list(self, meta, items):
        return TextSet(*(Text(str(t)[1:-1]) for t in items if t is not None))

    def lookup(self, meta, items):
        table_tok, key_tok = items
        key = Text(str(key_tok)[1:-1]) if key_tok.type == "STRING" else Symbol(str(key_tok))
        return Lookup(Symbol(str(table_tok)), key)


def check_size(text: str, path: Optional[str]) -> None:
    """Refuse a text past the bounds above, naming the bound and where it is passed."""
    lines = text.count("\n") + 1
    if lines > MAX_LINES:
        raise _Limit(f"{lines:,} lines is more than the limit of {MAX_LINES:,} for one formula file",
                     Location(path, MAX_LINES + 1), hint="split it into several files (a directory of them)",
                     what="lines", limit=MAX_LINES, amount=lines)
    for number, line in enumerate(text.split("\n"), 1):
        if len(line) > MAX_LINE_LENGTH:
            raise _Limit(
                f"line {number} is {len(line):,} characters long, more than the limit of {MAX_LINE_LENGTH:,}",
                Location(path, number, MAX_LINE_LENGTH + 1, line[: MAX_LINE_LENGTH + 40]),
                hint="break it into indented continuation lines or named definitions",
                what="line length", limit=MAX_LINE_LENGTH, amount=len(line))


def parse_formulas(text: str, path: Optional[str] = None, builtin: bool = False) -> FormulaFile:
    """Formula text → :class:`FormulaFile`; raises :class:`FormulaError` (located)."""
    check_size(text, path)
    tree = parse_text(text, path)
    try:
        statements = FormulaTransformer().transform(tree)
    except VisitError as exc:
        inner = exc.orig_exc
        if isinstance(inner, _Located):
            raise inner.located(path, text) from None
        if isinstance(inner, RecursionError):
            raise _too_deep(tree, text, path) from None
        raise
    except RecursionError:
        raise _too_deep(tree, text, path) from None

    lines = text.splitlines()
    rules: List[Rule] = []
    requirements: List[Rule] = []
    expressions = _expressions([s[4] for s in statements])
    for (kind, name_tok, unit, doc, _, meta, aliases), expression in zip(statements, expressions):
        name = str(name_tok) if name_tok is not None else None
        line, column = meta.line, meta.column
        rule = Rule(
            name=name,
            kind=kind,
            expression=expression,
            unit=unit,
            doc=doc or "",
            aliases=aliases,
            location=Location(path, line, column, lines[line - 1] if 0 < line <= len(lines) else None,
                              max(1, len(name)) if name else 1),
            text=_as_written(text[meta.start_pos : meta.end_pos]),
            comment=_comment_above(lines, line),
            builtin=builtin,
        )
        (requirements if kind in CONDITIONS else rules).append(rule)
    return FormulaFile(path=path, rules=tuple(rules), requirements=tuple(requirements), builtin=builtin)


def _too_deep(tree, text: str, path: Optional[str]) -> FormulaError:
    """'nested too deeply', at the statement that is (found by transforming each alone)."""
    line = None
    for statement in tree.children:
        try:
            FormulaTransformer().transform(statement)
        except (RecursionError, VisitError) as exc:
            if isinstance(exc, RecursionError) or isinstance(exc.orig_exc, RecursionError):
                line = getattr(getattr(statement, "meta", None), "line", None)
                break
        except Exception:
            continue
    where = Location.in_text(path, text, line, 1) if line else Location(path)
    return _Limit("this expression is nested too deeply to read (hundreds of levels of operators)", where,
                  hint="split it into named definitions", what="nesting")


def _expressions(exprs) -> List[Optional[Expression]]:
    """Each statement's expression, SymPy and node table both (one table for the file: a
    subtree several statements share is one node, as in the parse cache)."""
    try:
        raw, roots = encode_exprs(exprs)
        table = checked(raw)
    except (Unencodable, Malformed, ValueError, TypeError, RecursionError):
        return [None if e is None else Expression.of(e) for e in exprs]
    return [None if e is None else Expression(table, root, e) for e, root in zip(exprs, roots)]


def _as_written(span: str) -> str:
    """The statement's own lines: without the comments and blank lines after it."""
    lines = span.splitlines()
    while len(lines) > 1 and (not lines[-1].strip() or lines[-1].lstrip().startswith("#")):
        lines.pop()
    return "\n".join(lines).rstrip()


def _comment_above(lines: List[str], line: int) -> str:
    """The block of '#' comment lines right above a statement: its notes and sources."""
    out = []
    i = line - 2
    while i >= 0 and lines[i].lstrip().startswith("#"):
        out.append(lines[i].lstrip()[1:].strip())
        i -= 1
    return "\n".join(reversed(out))


def read_formula_file(path: Path, builtin: bool = False, shown: Optional[str] = None) -> FormulaFile:
    """Read and parse one file; missing, unreadable or non-UTF-8 files are located errors.
    ``shown`` is the path errors name (default: ``path`` as given)."""
    shown = shown or str(path)
    try:
        data = read_regular(Path(path), MAX_FILE_BYTES)
    except NotRegular as exc:
        raise _Unreadable(f"this is not a regular file ({exc.kind})", Location(shown),
                          hint="give a .formula text file", file=shown, reason="not regular") from None
    except FileTooLarge as exc:
        size = f"{exc.size:,} bytes, " if exc.size is not None else ""
        raise _Limit(f"the file is {size}more than the limit of {MAX_FILE_BYTES:,} for one formula file",
                     Location(shown), hint="split it into several files", what="file size", limit=MAX_FILE_BYTES,
                     amount=exc.size) from None
    except ValueError:  # an embedded NUL byte
        raise _Unreadable("this is not a usable file name", Location(shown), file=shown, reason="bad name") from None
    except IsADirectoryError:
        raise _Unreadable("this is a directory, not a formula file", Location(shown),
                          hint="pass the directory itself to --formulas to load every *.formula in it",
                          file=shown, reason="directory") from None
    except FileNotFoundError:
        raise _Unreadable("no such file", Location(shown), file=shown, reason="missing") from None
    except OSError as exc:
        raise _Unreadable(f"cannot read the file: {exc.strerror}", Location(shown), file=shown,
                          reason="unreadable") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        source = data.split(b"\n")[line - 1].decode("utf-8", "replace")
        raise _Unreadable(
            f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x})",
            Location(shown, line, column, source),
            hint="formula files are UTF-8 text; is this the right file?", file=shown, reason="not UTF-8",
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return parse_formulas(text, shown, builtin=builtin)
