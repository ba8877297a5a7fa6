"""Values as a reader of JSON or YAML gets them, and as the plain evaluator keeps them: below
the questions and the renderers alike.

Two forms of a value travel through the engine: *plain* (what engine/forward.py computes:
int for a whole number, Fraction for another, bool, str, tuple for a list, dict for a table) and SymPy (what the questions that
vary an input substitute into expressions). :func:`to_plain` gives the first from either;
:func:`to_python` gives what JSON shows — integers stay integers (exact bytes), other numbers
become floats, true/false booleans, strings and lists themselves, tables dicts. Every
``as_dict`` of a question's result and every renderer uses this one conversion. SymPy is
imported only for a SymPy value.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Optional

__all__ = ["to_python", "to_plain", "exact_number", "plain_number"]


def to_plain(value) -> Any:
    """A value in plain form; a SymPy number with no exact rational value (an irrational root)
    stays as it is."""
    cls = value.__class__
    if cls in _PLAIN:
        return value
    from .exact import Unsupported, to_python_value

    try:
        return to_python_value(value)
    except Unsupported:
        return value


_PLAIN = frozenset({int, Fraction, bool, str, tuple, dict})


def exact_number(value) -> Optional[Fraction]:
    """The exact rational value of a number (plain, int or SymPy), else None."""
    cls = value.__class__
    if cls is Fraction:
        return value
    if cls is int:
        return Fraction(value)
    if cls in _PLAIN:
        return None
    if getattr(value, "is_Rational", False):
        return Fraction(int(value.p), int(value.q))
    return None


def plain_number(value):
    """A number (int, Fraction or a SymPy rational) as the plain evaluator keeps it: an int where
    whole, else a Fraction; None for anything else (true/false included)."""
    exact = exact_number(value)
    if exact is None:
        return None
    return exact.numerator if exact.denominator == 1 else exact


def to_python(value) -> Any:
    """Exact where JSON allows: integers stay integers, other numbers are floats."""
    cls = value.__class__
    if cls is Fraction:
        return int(value) if value.denominator == 1 else float(value)
    if cls is bool or cls is str or cls is int:
        return value
    if cls is tuple:
        return list(value)
    if cls is dict:
        return {k: to_python(v) for k, v in value.items()}
    return _sympy_to_python(value)


def _sympy_to_python(value) -> Any:
    from sympy import Basic, Integer, Rational
    from sympy.logic.boolalg import BooleanAtom

    from .symbols import Table, Text, TextSet

    if isinstance(value, BooleanAtom):
        return bool(value)
    if isinstance(value, Text):
        return value.value
    if isinstance(value, TextSet):
        return value.values
    if isinstance(value, Table):
        return {k: to_python(v) for k, v in value.entries.items()}
    if isinstance(value, Integer):
        return int(value)
    if isinstance(value, Rational):
        return float(value)
    if isinstance(value, Basic) and value.is_number:
        return float(value.evalf(20))
    return value
