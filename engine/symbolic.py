"""Evaluation with SymPy: the rules' values as expressions of free inputs, and the cases the
plain evaluator leaves to SymPy.

The forward question computes with Python's Fraction (engine/forward.py, on the node tables);
the questions that vary an input — solve, sensitivity, sweep — need every value as an
expression of that input, and a value the plain arithmetic does not cover (an irrational root,
a logarithm) or an error to be reported in SymPy's words is worked out here. Expressions have
the values of their direct dependencies substituted (``xreplace``), so SymPy only ever does
exact arithmetic on numbers and the free input, never symbolic simplification.
"""

from __future__ import annotations

import warnings
from fractions import Fraction
from typing import Dict, FrozenSet, Mapping, Optional

from sympy import Basic, Rational, Symbol, false, log, nan, true, zoo
from sympy.logic.boolalg import BooleanAtom
from sympy.utilities.exceptions import SymPyDeprecationWarning

from .errors import EvaluationError, LimitExceeded, NoRealValue, TypeMismatch, UnknownKey
from .exact import Unsupported, evaluate_exact, to_python_value, to_sympy_value
from .rules import Rule, RuleSet
from .symbols import Lookup, Member, MissingKey, Table, Text, TextSet, substitute

__all__ = ["evaluate_values", "sympy_value", "value_by_sympy", "holds_by_sympy", "SympyView"]


def sympy_value(value, name: Optional[str] = None) -> Basic:
    """A value the plain evaluator gives (Fraction, bool, str, tuple, dict) as SymPy; a dict
    (a table's value) becomes the Table ``name``. A SymPy value is itself."""
    cls = value.__class__
    if cls is Fraction:
        return Rational(value.numerator, value.denominator)
    if cls is bool:
        return true if value else false
    if cls is str:
        return Text(value)
    if cls is tuple:
        return TextSet(*(Text(v) for v in value))
    if cls is dict:
        return Table(name or "table", [(k, sympy_value(v)) for k, v in value.items()])
    if cls is int:
        return Rational(value)
    return value


class SympyView(Mapping):
    """Plain values seen as SymPy values (each converted once, when first read)."""

    def __init__(self, plain: Mapping[str, object]) -> None:
        self._plain = plain
        self._seen: Dict[str, Basic] = {}

    def __getitem__(self, name: str) -> Basic:
        try:
            return self._seen[name]
        except KeyError:
            value = self._seen[name] = sympy_value(self._plain[name], name)
            return value

    def __iter__(self):
        return iter(self._plain)

    def __len__(self) -> int:
        return len(self._plain)

    def __contains__(self, name) -> bool:
        return name in self._plain


def value_by_sympy(rule: Rule, values: Mapping[str, object]) -> Basic:
    """The value of ``rule`` at plain ``values`` of its dependencies, by SymPy: what the plain
    evaluator leaves to it (an irrational result), and every error, in SymPy's words."""
    symbols = {Symbol(d): sympy_value(values[d], d) for d in rule.deps}
    return _value_of(rule, symbols)


def holds_by_sympy(rule: Rule, values: Mapping[str, object]) -> Optional[bool]:
    """A condition's truth at ``values`` by SymPy (None: undecided, or an error on the way)."""
    try:
        ok = substitute(rule.expr, {Symbol(d): sympy_value(values[d], d) for d in rule.deps})
    except (TypeError, ValueError, MissingKey):
        return None
    if isinstance(ok, BooleanAtom):
        return bool(ok)
    return None


def evaluate_values(ruleset: RuleSet, bound: Mapping[str, Basic], only=None, free=frozenset(), known=None):
    """``(values, missing)`` for a mapping name → SymPy value.

    ``only`` limits the work to those names (say, the closure of one output); ``free``
    names symbols that may stay in the values — bind ``x`` to ``Symbol("x")`` to get
    every output as an expression of ``x`` (focus does, where the residual cannot hold the
    function). ``known``, ``(values, missing)`` already worked out at the same point, is taken as
    it is, not computed again. The walk is the plain evaluator's (forward.walk)."""
    from .forward import walk

    free = frozenset(free)

    def value_of(rule: Rule, values, lacking):
        plain = {}  # the dependencies' values as Python numbers, bools and strings, for exact.py
        for d in rule.deps:
            if d in values:
                try:
                    plain[d] = to_python_value(values[d])
                except Unsupported:
                    pass
        if lacking:
            # An unset input only in a branch not taken (or an and/or's operand after the
            # deciding one) leaves the value decided (as forward's walk).
            return _fast_value(rule, plain) if rule.expression.lazy else None
        value = _fast_value(rule, plain)  # None when a dependency is symbolic, or on any doubt
        if value is None:
            value = _value_of(rule, {Symbol(d): values[d] for d in rule.deps}, free)
        return value

    return walk(ruleset, bound, value_of, only, known)


def _fast_value(rule: Rule, plain: Mapping[str, object]) -> Optional[Basic]:
    """The rule's value by exact.py, or None to let SymPy do it (irrational results, errors)."""
    try:
        return to_sympy_value(evaluate_exact(rule.expr, plain))
    except (Unsupported, ArithmeticError, TypeError, ValueError, MissingKey, RecursionError):
        return None  # SymPy recomputes it and reports any error in its own words


def _value_of(rule: Rule, symbols: Mapping[Symbol, Basic], free=frozenset()) -> Basic:
    expr = rule.expr
    subs = {Symbol(d): symbols[Symbol(d)] for d in rule.deps}
    _check_kinds(rule, subs)
    if not free:
        _check_logs(rule, subs)
    try:
        with warnings.catch_warnings():
            # SymPy only warns when a table or a list lands in a sum; here that is an error.
            warnings.simplefilter("error", SymPyDeprecationWarning)
            value = substitute(expr, subs)
    except MissingKey as exc:
        raise UnknownKey[EvaluationError](
            f"'{rule.name}': the table {exc.table.table_name} has no key {exc.key}",
            rule.location,
            hint="keys: " + ", ".join(exc.table.entries), rule=rule,
            table=exc.table.table_name, key=exc.key.value, keys=tuple(exc.table.entries),
        ) from None
    except ZeroDivisionError:
        raise NoRealValue[EvaluationError](f"'{rule.name}' divides by zero at these values (x / 0 or x % 0)",
                                           rule.location, rule=rule, operation="division") from None
    except (TypeError, ValueError, AttributeError, SymPyDeprecationWarning) as exc:
        raise TypeMismatch[EvaluationError](
            f"'{rule.name}' cannot be computed from these values ({_plain(exc)})",
            rule.location,
            hint="true/false and strings cannot be used in arithmetic; write (A if flag else B)", rule=rule,
            expected="a number", found="true/false or a string",
        ) from None
    except RecursionError:
        raise LimitExceeded[EvaluationError](f"'{rule.name}' is nested too deeply to evaluate", rule.location,
                                             rule=rule, what="nesting") from None
    if free and _names(value) and _names(value) <= free:
        return value
    return _checked(rule, value)


def _check_kinds(rule: Rule, subs: Mapping[Symbol, Basic]) -> None:
    """A table or a list is only ever looked up or searched: anywhere else it is an error
    that names it (SymPy would put it in a sum and fail somewhere inside)."""
    for symbol, value in subs.items():
        if isinstance(value, (Table, TextSet)) and _used_outside(rule.expr, symbol):
            what = "the table" if isinstance(value, Table) else "the list"
            how = "look a value up with table[key]" if isinstance(value, Table) else 'test it with "item" in list'
            raise TypeMismatch[EvaluationError](f"'{rule.name}' uses {what} '{symbol.name}' as a value", rule.location,
                                                hint=f"{what} cannot be used in arithmetic or compared; {how}",
                                                rule=rule, expected="a number", found=what.replace("the ", "a "))


def _used_outside(expr: Basic, symbol: Symbol) -> bool:
    """Does ``symbol`` appear in ``expr`` other than as a Lookup's table or a Member's list?"""
    stack = [expr]
    while stack:
        node = stack.pop()
        if node == symbol:
            return True
        if isinstance(node, Lookup):
            stack.extend(a for a in node.args[1:])
            if node.args[0] != symbol:
                stack.append(node.args[0])
            continue
        if isinstance(node, Member):
            stack.append(node.args[0])
            continue
        stack.extend(getattr(node, "args", ()))
    return False


def _check_logs(rule: Rule, subs: Mapping[Symbol, Basic]) -> None:
    """log() of zero or a negative number, and log(x, b) with b <= 0 or b = 1, are errors
    (SymPy turns log(x, 0) into 0 without a word)."""
    if not rule.expr.has(log):
        return
    for node in rule.expr.atoms(log):
        argument = node.args[0].xreplace(subs) if subs else node.args[0]
        if argument.is_number and argument.is_real and argument <= 0:
            raise NoRealValue[EvaluationError](
                f"'{rule.name}' takes the logarithm of {argument} at these values (log needs a positive number; "
                "log(x, base) a positive base other than 1)", rule.location, rule=rule, operation="log")


def _names(value: Basic) -> FrozenSet[str]:
    return frozenset(s.name for s in value.free_symbols if not isinstance(s, Text)) if isinstance(value, Basic) else frozenset()


def _plain(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) < 120 else text[:117] + "..."


def _checked(rule: Rule, value: Basic) -> Basic:
    """A value must be a finite real number, a boolean, a string, a list or a table."""
    if isinstance(value, (BooleanAtom, Text, TextSet, Table)):
        return value
    if value.has(zoo, nan) or value.has(Symbol("zoo")):
        raise NoRealValue[EvaluationError](f"'{rule.name}' divides by zero at these values", rule.location, rule=rule,
                                           operation="division")
    if not value.is_number:
        raise TypeMismatch[EvaluationError](
            f"'{rule.name}' does not reduce to a number at these values: {value}",
            rule.location,
            hint="is a string compared with < or >, or a true/false used as a number?", rule=rule,
            expected="a number", found="an expression with names left in it",
        )
    if value.is_real is False:
        raise NoRealValue[EvaluationError](f"'{rule.name}' has no real value at these values ({value})", rule.location,
                                           hint="a square root or logarithm of a negative number?", rule=rule,
                                           operation="complex")
    if value.is_finite is False:
        raise NoRealValue[EvaluationError](f"'{rule.name}' is infinite at these values", rule.location, rule=rule,
                                           operation="infinite")
    return value


