"""The small SymPy vocabulary formulas are built from, beyond plain arithmetic.

* :class:`Text` — a string value such as ``"fp16"``: a symbol whose name is
  the quoted string, so it prints as written and never collides with a name.
* :class:`TextSet` — a list value such as ``lora_targets = ["q", "v"]``.
* :class:`Table` — a table literal ``{ fp32: 4, fp16: 2 }``.
* :class:`Lookup` — ``table[key]``; evaluates once both are known.
* :class:`TextEq` and :class:`Member` — ``==`` on strings and ``in``, which
  SymPy's ``Eq`` and ``Contains`` cannot decide for symbols.

Nothing here parses text: the transformer builds these from the parse tree.
"""

from __future__ import annotations

from typing import Iterable, Optional

import sympy
from sympy import Basic, Function, Symbol, Tuple
from sympy.core.symbol import Str
from sympy.logic.boolalg import BooleanAtom, BooleanFunction, false, true

__all__ = ["Text", "TextSet", "Table", "Lookup", "TextEq", "Member", "names_in", "is_text", "MissingKey", "UnknownKey",
           "substitute"]


class Text(Symbol):
    """A string value. ``Text("fp16")`` prints as ``"fp16"``."""

    def __new__(cls, value: str):
        return super().__new__(cls, f'"{value}"')

    def __getnewargs_ex__(self):
        return ((self.value,), {})

    @property
    def value(self) -> str:
        return self.name[1:-1]


def is_text(x) -> bool:
    return isinstance(x, Text)


class TextSet(Basic):
    """A list of strings bound to an input (order kept, duplicates dropped)."""

    def __new__(cls, *items: Text):
        seen = []
        for item in items:
            if item not in seen:
                seen.append(item)
        return super().__new__(cls, *seen)

    @property
    def values(self) -> list:
        return [t.value for t in self.args]

    def _sympystr(self, printer) -> str:
        return "[" + ", ".join(str(a) for a in self.args) + "]"


class MissingKey(LookupError):
    """A lookup with a key the table does not have, found while evaluating: internal, the
    caller reports it as :class:`engine.errors.UnknownKey` (located, with the table's keys)."""

    def __init__(self, table: "Table", key: Text) -> None:
        super().__init__(key.value)
        self.table = table
        self.key = key


UnknownKey = MissingKey  # the name evaluate.py and exact.py import (not errors.UnknownKey, the user's error)


def substitute(expr: Basic, subs) -> Basic:
    """``expr.xreplace(subs)``, except that a conditional's conditions are decided before its
    branches are built: a branch they rule out (``dtype_bytes[x] if x != "auto" else ...`` at
    x = "auto") is dropped, not evaluated, so its table lookup cannot fail. A lookup that is
    still reached with a key its table lacks raises :class:`MissingKey`, as xreplace does."""
    if not subs:
        return expr
    try:
        return expr.xreplace(subs)
    except MissingKey:
        return _substitute_lazily(expr, subs, frozenset(subs))


def _substitute_lazily(expr: Basic, subs, names) -> Basic:
    if expr in subs:
        return subs[expr]
    if not expr.args or not (expr.free_symbols & names):
        return expr
    if isinstance(expr, sympy.Piecewise):
        pairs = []
        for branch, condition in expr.args:
            condition = _substitute_lazily(condition, subs, names)
            if condition == false:
                continue
            pairs.append((_substitute_lazily(branch, subs, names), condition))
            if condition == true:
                break
        return sympy.Piecewise(*pairs)
    return expr.func(*[_substitute_lazily(a, subs, names) for a in expr.args])


class Table(Basic):
    """``{ key: value, ... }`` — keys are strings, values exact expressions."""

    def __new__(cls, name: str, entries: Iterable):
        pairs = [Tuple(Text(k), v) for k, v in entries]
        return super().__new__(cls, Str(name), Tuple(*pairs))

    def __getnewargs__(self):
        return (self.table_name, tuple(self.entries.items()))

    @property
    def table_name(self) -> str:
        return self.args[0].name

    @property
    def entries(self) -> dict:
        return {pair.args[0].value: pair.args[1] for pair in self.args[1].args}

    def get(self, key: Text):
        for pair in self.args[1].args:
            if pair.args[0] == key:
                return pair.args[1]
        raise MissingKey(self, key)

    def _sympystr(self, printer) -> str:
        inner = ", ".join(f"{k}: {printer.doprint(v)}" for k, v in self.entries.items())
        return "{" + inner + "}"

    @property
    def free_symbols(self):  # keys are not inputs
        out = set()
        for pair in self.args[1].args:
            out |= pair.args[1].free_symbols
        return out


# These classes decide their value in __new__ (not in SymPy's `eval` hook, whose name
# would read like Python's eval): they only ever compare strings and look up tables.


class Lookup(Function):
    """``table[key]``: stays symbolic until the table and the key are known."""

    def __new__(cls, table, key, evaluate=True):
        if evaluate and isinstance(table, Table) and isinstance(key, Text):
            return table.get(key)
        return super().__new__(cls, table, key, evaluate=False)

    def _sympystr(self, printer) -> str:
        table, key = self.args
        name = table.table_name if isinstance(table, Table) else printer.doprint(table)
        return f"{name}[{printer.doprint(key)}]"


class TextEq(BooleanFunction):
    """``a == b`` where a side is a string, or both are names whose values may be
    strings (``lora_dtype == act_dtype``): SymPy's Eq cannot tell two different
    string symbols apart."""

    def __new__(cls, a, b, evaluate=True):
        decided = cls._decide(a, b) if evaluate else None
        return decided if decided is not None else super().__new__(cls, a, b, evaluate=False)

    @staticmethod
    def _decide(a, b):
        if a == b:
            return true
        if isinstance(a, Text) or isinstance(b, Text):
            if isinstance(a, Text) and isinstance(b, Text):
                return false
            other = b if isinstance(a, Text) else a
            if getattr(other, "is_number", False) or isinstance(other, (BooleanAtom, TextSet)):
                return false
            return None
        if getattr(a, "is_number", False) and getattr(b, "is_number", False):
            decided = sympy.Eq(a, b)
            return decided if isinstance(decided, BooleanAtom) else None
        if isinstance(a, BooleanAtom) and isinstance(b, BooleanAtom):
            return false
        return None

    def _sympystr(self, printer) -> str:
        return f"{printer.doprint(self.args[0])} == {printer.doprint(self.args[1])}"


class Member(BooleanFunction):
    """``"q" in lora_targets``."""

    def __new__(cls, item, collection, evaluate=True):
        if evaluate and isinstance(collection, TextSet) and isinstance(item, Text):
            return true if item in collection.args else false
        return super().__new__(cls, item, collection, evaluate=False)

    def _sympystr(self, printer) -> str:
        return f"{printer.doprint(self.args[0])} in {printer.doprint(self.args[1])}"


def names_in(expr: Optional[Basic]) -> frozenset:
    """The input/definition names an expression refers to (strings excluded)."""
    if expr is None:
        return frozenset()
    return frozenset(s.name for s in expr.free_symbols if isinstance(s, Symbol) and not isinstance(s, Text))

