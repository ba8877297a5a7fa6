"""Values as a reader of JSON or YAML gets them: below the questions and the renderers alike.

Integers stay integers (exact bytes), other numbers become floats, true/false booleans, strings
and lists themselves, tables dicts. Every ``as_dict`` of a question's result and every renderer
uses this one conversion.
"""

from __future__ import annotations

from typing import Any

from sympy import Basic, Integer, Rational
from sympy.logic.boolalg import BooleanAtom

from .symbols import Table, Text, TextSet

__all__ = ["to_python"]


def to_python(value: Basic) -> Any:
    """Exact where JSON allows: integers stay integers, other numbers are floats."""
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
