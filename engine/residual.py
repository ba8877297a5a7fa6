"""The rules as functions of one free input: what is left of each expression once every other
input has its value — a node table of its own, without SymPy.

The questions that vary one input (solve, sweep) need the target as a function of that input
alone, and the requirements and expectations that involve it. :func:`residuals` evaluates the
rules in dependency order as the forward question does, except that the names depending on the
free input keep a *residual*: the part of their expression that still depends on it, built into
one shared node table (a subtree several rules share is one node). Everything else folds to its
value: arithmetic on known values, a condition decided at the point, an ``if`` whose branch is
known, an ``and`` with a false operand. The residual table is then evaluated at any value of
the input (:meth:`~vram_eval.nodes.NodeTable.value`), walked over a NumPy grid
(engine/vectorise.py), or — only where a closed form is asked of it — built as SymPy.

Anything the residual cannot hold (a table or a list that depends on the input, a node the
format has no tag for, an error at the point in a branch the input may take) raises
:class:`Unsupported`; the caller then works the function out with SymPy (engine/focus.py).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Tuple

from .nodes import FOLD, INNER, NodeTable, Unsupported, checked

__all__ = ["Rest", "Residuals", "residuals"]


class Rest:
    """A value that still depends on the free input: the index of its node in the residual table."""

    __slots__ = ("i",)

    def __init__(self, i: int) -> None:
        self.i = i

    def __repr__(self) -> str:
        return f"Rest({self.i})"


class _Builder:
    """The residual table being written: each distinct node once."""

    def __init__(self) -> None:
        self.raw: List[list] = []
        self.index: Dict[tuple, int] = {}

    def _add(self, node: list) -> int:
        key = tuple(node)
        i = self.index.get(key)
        if i is None:
            i = self.index[key] = len(self.raw)
            self.raw.append(node)
        return i

    def leaf(self, value) -> int:
        """The node of a known value (a number, a condition, a string)."""
        cls = value.__class__
        if cls is int:
            return self._add(["Int", _digits(value)])
        if cls is Fraction:
            if value.denominator == 1:
                return self._add(["Int", _digits(value.numerator)])
            return self._add(["Q", _digits(value.numerator), _digits(value.denominator)])
        if cls is bool:
            return self._add(["true" if value else "false"])
        if cls is str:
            return self._add(["Text", value])
        raise Unsupported(f"a {cls.__name__} in an expression of the input")  # a table, a list, a SymPy number

    def ref(self, value) -> int:
        return value.i if value.__class__ is Rest else self.leaf(value)

    def node(self, tag: str, args: Iterable) -> Rest:
        return Rest(self._add([tag, *(self.ref(a) for a in args)]))

    def symbol(self, name: str) -> Rest:
        return Rest(self._add(["Sym", name]))


def _digits(n: int):
    return n if -2**53 < n < 2**53 else str(n)


class Residuals:
    """The residual table and each name's value: plain, or a :class:`Rest` in the table."""

    def __init__(self, name: str, table: NodeTable, values: Mapping[str, Any], extra: List[Any]) -> None:
        self.name = name
        self.table = table
        self.values = values  # name → plain value or Rest
        self.extra = extra  # the extra expressions' values, in order (None: an input of it is unset)

    def at(self, value, x) -> Any:
        """``value`` (plain or Rest) at the input's value ``x`` (a Fraction), exactly."""
        if value.__class__ is not Rest:
            return value
        return self.table.value(value.i, {self.name: x})

    def tags(self, value) -> FrozenSet[str]:
        """The tags of the nodes a residual value holds (none for a plain one)."""
        return self.table.tags(value.i) if value.__class__ is Rest else frozenset()


class _Partial:
    """One pass of partial evaluation over the rules' node tables at one point."""

    def __init__(self, builder: _Builder, env: Mapping[str, Any], moving: FrozenSet[str], memo: dict) -> None:
        self.b = builder
        self.env = env  # every name's value so far: plain, or Rest for those that depend on the input
        self.moving = moving
        self.memo = memo  # the point's plain memo (a node that does not depend on the input has its value there)
        self.seen: Dict[Tuple[int, int], Any] = {}
        self.depends: Dict[Tuple[int, int], bool] = {}

    def _depends(self, table: NodeTable, i: int) -> bool:
        key = (id(table), i)
        known = self.depends.get(key)
        if known is None:
            node = table.nodes[i]
            if node[0] == "Sym":
                known = node[1] in self.moving
            elif node[0] in INNER:
                known = any(self._depends(table, a) for a in node[1:])
            else:
                known = False
            self.depends[key] = known
        return known

    def at(self, table: NodeTable, i: int):
        key = (id(table), i)
        if key in self.seen:
            return self.seen[key]
        if not self._depends(table, i):
            value = table.evaluator(i)(self.env, self.memo)
        else:
            value = self._op(table, table.nodes[i])
        self.seen[key] = value
        return value

    def _op(self, table: NodeTable, node: tuple):
        tag = node[0]
        if tag == "Sym":
            return self.env[node[1]]
        if tag == "Piecewise":
            return self._piecewise(table, node)
        if tag in ("And", "Or"):
            return self._logic(table, node, tag == "And")
        fold = FOLD.get(tag)
        if fold is None:
            raise Unsupported(tag)  # a table, a list or a constant such as pi that depends on the input
        args = [self.at(table, a) for a in node[1:]]
        if not any(a.__class__ is Rest for a in args):
            return fold(*args)
        return self.b.node(tag, args)

    def _piecewise(self, table: NodeTable, node: tuple):
        pairs = []
        for pair in node[1:]:
            _, value, cond = table.nodes[pair]
            decided = self.at(table, cond)
            if decided is True:
                if not pairs:
                    return self.at(table, value)
                pairs.append((self.at(table, value), True))
                break
            if decided is False:
                continue
            if decided.__class__ is not Rest:
                raise TypeError(f"{decided!r} is not a condition")
            pairs.append((self.at(table, value), decided))
        if not pairs:
            raise Unsupported("piecewise without a true branch")
        return self.b.node("Piecewise", [self.b.node("Pair", pair) for pair in pairs])

    def _logic(self, table: NodeTable, node: tuple, conjunction: bool):
        kept = []
        for a in node[1:]:
            value = self.at(table, a)
            if value.__class__ is Rest:
                kept.append(value)
            elif value.__class__ is not bool:
                raise TypeError(f"{value!r} is not a condition")
            elif value is not conjunction:  # false in an and, true in an or: decided
                return value
        if not kept:
            return conjunction
        if len(kept) == 1:
            return kept[0]
        return self.b.node("And" if conjunction else "Or", kept)


def residuals(ruleset, point, name: str, needed: Iterable[str], extra=()) -> Residuals:
    """Every name in ``needed`` as plain values or residuals in ``name``, the other inputs at
    the problem's point (``point``: a :class:`~vram_eval.forward.Point`), and the value of each
    expression in ``extra`` (requirements' and expectations' conditions; None for one that
    reads an unset input). Raises Unsupported (or TooLarge, an arithmetic or type error at the
    point) where SymPy must decide."""
    from .forward import dependents

    needed = frozenset(needed)
    moving = dependents(ruleset, [name], needed) & needed | {name}
    values, missing = point.plain_of(sorted(needed - moving))
    builder = _Builder()
    env: Dict[str, Any] = {n: v for n, v in values.items() if n in needed and n not in moving}
    env[name] = builder.symbol(name)
    partial = _Partial(builder, env, frozenset(moving), point._memo)
    for n in ruleset.order:
        if n not in moving or n == name:
            continue
        if n in point.bindings:  # an output the spec gives (params = 7.5B): its value, whatever the input
            env[n] = point.bindings[n].plain
            continue
        rule = ruleset.rules.get(n)
        if rule is None or rule.expression is None:
            raise Unsupported(f"'{n}' has no formula here")  # an unset input: SymPy's path says so
        table, root = rule.expression.table
        if table is None:
            raise Unsupported(f"'{n}' has no node table")
        if any(d in missing for d in rule.deps):
            raise Unsupported(f"'{n}' needs an unset input")
        env[n] = partial.at(table, root)
    out = []
    for expression in extra:
        if any(d in missing or d not in env for d in expression.names):
            out.append(None)
            continue
        table, root = expression.table
        if table is None:
            raise Unsupported("a condition without a node table")
        out.append(partial.at(table, root))
    return Residuals(name, checked(builder.raw), env, out)

