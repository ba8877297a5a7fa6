"""Exact evaluation of a SymPy expression at known values, with Python's Fraction.

The questions that vary an input (solve, sweep, sensitivity) hold the target as a SymPy
expression of it; evaluating one at a value with SymPy builds and simplifies a new expression,
which costs more than the rest of a question together. This module walks the expression and
computes its value with exact rationals, booleans and strings instead (the forward question
evaluates the node tables directly, engine/nodes.py, in the same semantics). Anything
it does not cover (an irrational root, a logarithm) raises :class:`Unsupported`
and the caller falls back to SymPy — the result is the same, only slower.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Callable, Dict, Mapping

import sympy
from sympy import Abs, Add, Max, Min, Mod, Mul, Piecewise, Pow, Symbol, ceiling, floor
from sympy.core.relational import Equality, GreaterThan, LessThan, StrictGreaterThan, StrictLessThan, Unequality
from sympy.logic.boolalg import ITE, And, BooleanFalse, BooleanTrue, Not, Or

# The bound on exact values and the two signals are the plain evaluator's (engine/nodes.py),
# so that a caller catches the same classes whichever evaluator worked a value out.
from .nodes import MAX_BITS, TooLarge, Unsupported
from .symbols import Lookup, Member, Table, Text, TextEq, TextSet, UnknownKey

__all__ = ["evaluate_exact", "to_python_value", "to_sympy_value", "Unsupported", "TooLarge", "MAX_BITS"]


def to_python_value(value) -> Any:
    """A bound SymPy value → Fraction, bool, str, tuple of str or dict (a table)."""
    if isinstance(value, BooleanTrue):
        return True
    if isinstance(value, BooleanFalse):
        return False
    if isinstance(value, Text):
        return value.value
    if isinstance(value, TextSet):
        return tuple(value.values)
    if isinstance(value, Table):
        return {k: _number(v) for k, v in value.entries.items()}
    return _number(value)


def _number(value) -> Fraction:
    if isinstance(value, sympy.Rational):
        return Fraction(int(value.p), int(value.q))
    raise Unsupported(type(value).__name__)


def to_sympy_value(value):
    """The inverse of to_python_value, for values this module computed."""
    if isinstance(value, bool):
        return sympy.true if value else sympy.false
    if isinstance(value, Fraction):
        return sympy.Integer(value.numerator) if value.denominator == 1 else sympy.Rational(value.numerator, value.denominator)
    if isinstance(value, str):
        return Text(value)
    if isinstance(value, tuple):
        return TextSet(*(Text(v) for v in value))
    raise Unsupported(type(value).__name__)


class MemoEnv(dict):
    """Values of names that also remember the value of each max, min and piecewise node met: an
    expression at one point often holds the same subtree twice (a peak over phases and the
    allocator's reserve on it), evaluated once with this."""

    __slots__ = ("memo",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.memo: Dict[Any, Any] = {}


def evaluate_exact(expr, env: Mapping[str, Any]):
    """The value of ``expr`` with every name taken from ``env`` (Python values)."""
    memo = getattr(env, "memo", None)
    if memo is not None and type(expr) in _SHARED:
        if expr in memo:
            return memo[expr]
        value = memo[expr] = _evaluate(expr, env)
        return value
    return _evaluate(expr, env)


def _evaluate(expr, env):
    handler = _HANDLERS.get(type(expr))
    if handler is None:
        for kind, fn in _BASES:
            if isinstance(expr, kind):
                handler = fn
                break
        else:
            raise Unsupported(type(expr).__name__)
        _HANDLERS[type(expr)] = handler
    return handler(expr, env)


def _num(x):
    if isinstance(x, bool) or not isinstance(x, Fraction):
        raise TypeError(f"{'true/false' if isinstance(x, bool) else repr(x)} is not a number")
    return x


def _cond(x):
    if not isinstance(x, bool):
        raise TypeError(f"{x!r} is not a condition")
    return x


def _add(e, env):
    return sum((_num(evaluate_exact(a, env)) for a in e.args), Fraction(0))


def _mul(e, env):
    out = Fraction(1)
    for a in e.args:
        out *= _num(evaluate_exact(a, env))
    return out


def _pow(e, env):
    base = _num(evaluate_exact(e.args[0], env))
    exp = _num(evaluate_exact(e.args[1], env))
    # The size of the result is known before it is worked out: refuse what would not fit.
    bits = max(base.numerator.bit_length(), base.denominator.bit_length())
    if base not in (0, 1, -1) and abs(exp) * max(bits - 1, 1) > MAX_BITS:
        raise TooLarge(f"{_short(base)} ** {_short(exp)}")
    if exp.denominator != 1:
        raise Unsupported("pow")  # a root: SymPy keeps it exact (and its size is bounded above)
    if base == 0 and exp < 0:
        raise ZeroDivisionError("0 to a negative power")
    return base ** int(exp)


def _short(x: Fraction) -> str:
    text = str(x)
    return text if len(text) <= 24 else f"a number of {len(text)} digits"


def _piecewise(e, env):
    for value, cond in e.args:
        if _cond(evaluate_exact(cond, env)):
            return evaluate_exact(value, env)
    raise Unsupported("piecewise without a true branch")


def _compare(op: Callable) -> Callable:
    def run(e, env):
        return op(_num(evaluate_exact(e.args[0], env)), _num(evaluate_exact(e.args[1], env)))

    return run


def _equal(e, env):
    a, b = evaluate_exact(e.args[0], env), evaluate_exact(e.args[1], env)
    return type(a) is type(b) and a == b


def _lookup(e, env):
    table, key = evaluate_exact(e.args[0], env), evaluate_exact(e.args[1], env)
    if not isinstance(table, dict) or not isinstance(key, str):
        raise TypeError("a table lookup needs a table and a string key")
    if key not in table:
        raise UnknownKey(e.args[0] if isinstance(e.args[0], Table) else Table(str(e.args[0]), []), Text(key))
    return table[key]


def _symbol(e, env):
    try:
        return env[e.name]
    except KeyError:
        raise Unsupported(f"unbound {e.name}") from None


_HANDLERS: Dict[type, Callable] = {
    Add: _add,
    Mul: _mul,
    Pow: _pow,
    Piecewise: _piecewise,
    Mod: lambda e, env: _num(evaluate_exact(e.args[0], env)) % _num(evaluate_exact(e.args[1], env)),
    floor: lambda e, env: Fraction(math.floor(_num(evaluate_exact(e.args[0], env)))),
    ceiling: lambda e, env: Fraction(math.ceil(_num(evaluate_exact(e.args[0], env)))),
    Min: lambda e, env: min(_num(evaluate_exact(a, env)) for a in e.args),
    Max: lambda e, env: max(_num(evaluate_exact(a, env)) for a in e.args),
    Abs: lambda e, env: abs(_num(evaluate_exact(e.args[0], env))),
    StrictLessThan: _compare(lambda a, b: a < b),
    LessThan: _compare(lambda a, b: a <= b),
    StrictGreaterThan: _compare(lambda a, b: a > b),
    GreaterThan: _compare(lambda a, b: a >= b),
    Equality: _equal,
    Unequality: lambda e, env: not _equal(e, env),
    TextEq: _equal,
    And: lambda e, env: all(_cond(evaluate_exact(a, env)) for a in e.args),
    Or: lambda e, env: any(_cond(evaluate_exact(a, env)) for a in e.args),
    Not: lambda e, env: not _cond(evaluate_exact(e.args[0], env)),
    # if-then-else of conditions (SymPy folds nested Piecewise conditions into it): lazy, as Piecewise
    ITE: lambda e, env: _cond(evaluate_exact(e.args[1] if _cond(evaluate_exact(e.args[0], env)) else e.args[2], env)),
    Member: lambda e, env: evaluate_exact(e.args[0], env) in evaluate_exact(e.args[1], env),
    Lookup: _lookup,
    BooleanTrue: lambda e, env: True,
    BooleanFalse: lambda e, env: False,
    Text: lambda e, env: e.value,
    TextSet: lambda e, env: tuple(e.values),
    Table: lambda e, env: to_python_value(e),
}
# The nodes MemoEnv remembers: large, and repeated where one output is used twice.
_SHARED = frozenset({Max, Min, Piecewise, ceiling, floor})
_BASES = [
    (sympy.Rational, lambda e, env: Fraction(int(e.p), int(e.q))),
    (Symbol, _symbol),
]
