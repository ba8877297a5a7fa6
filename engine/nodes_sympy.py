"""Node tables ↔ SymPy: the expressions a question needs, built from a checked table, and the
table written for a parsed expression (the parse cache's entries, engine/cache.py).

Building takes a :class:`~vram_eval.nodes.NodeTable` that :func:`~vram_eval.nodes.checked`
has passed (tags, argument counts and kinds, depth and size all known good) and makes each
node's SymPy object in one forward loop. Sums, products and piecewise nodes were canonical when
they were written: they are built from their arguments directly (SymPy's own fast path,
skipping the constructors' checks, which would cost what parsing costs); the rest unevaluated.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from sympy import (Abs, Add, And, Basic, Eq, Ge, Gt, Integer, Le, Lt, Max, Min, Mod, Mul, Ne, Not, Or, Piecewise,
                   Pow, Rational, S, Symbol, Tuple as STuple, ceiling, floor, log)
from sympy.core.symbol import Str
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.logic.boolalg import false, true

from .nodes import INNER, Malformed, NodeTable, checked
from .symbols import Lookup, Member, Table, Text, TextEq, TextSet

__all__ = ["build", "build_evaluated", "build_choosing", "table_of", "encode_exprs", "Unencodable"]

_SAFE_INT = 2**53  # larger integers are written as strings of digits


class Unencodable(ValueError):
    """An expression holds something the format has no tag for: it is not cached."""


_CONSTANTS = {
    "true": true,
    "false": false,
    "I": S.ImaginaryUnit,
    "pi": S.Pi,
    "E": S.Exp1,
    "oo": S.Infinity,
    "-oo": S.NegativeInfinity,
    "zoo": S.ComplexInfinity,
    "nan": S.NaN,
}

_ATOMS: Dict[Tuple[type, str], Basic] = {}  # names seen in this process (each file repeats many)


def _atom(cls, name: str):
    atom = _ATOMS.get((cls, name))
    if atom is None:
        atom = cls(name)
        if len(_ATOMS) < 100_000:
            _ATOMS[cls, name] = atom
    return atom


def _from_args(cls):
    return lambda args: cls._from_args(args)


def _direct(cls):
    return lambda args: Basic.__new__(cls, *args)


def _unevaluated(cls):
    return lambda args: cls(*args, evaluate=False)


def _applied(cls, argset: bool):
    """A function application (floor, And, Max, TextEq, ...) built directly. SymPy's own
    constructor gives such an object two attributes beyond its arguments: ``nargs`` (the
    same for every instance of the class) and, for And/Or/Min/Max, ``_argset``. The first
    node of each class in a process is built by the constructor, unevaluated, and its
    ``nargs`` is reused; tests check the rebuilt objects against parsed ones."""
    learned = []

    def build(args):
        if not learned:
            obj = cls(*args, evaluate=False)
            if type(obj) is not cls or obj.args != args:
                raise Malformed
            learned.append(vars(obj).get("nargs"))
            return obj
        obj = Basic.__new__(cls, *args)
        if learned[0] is not None:
            obj.nargs = learned[0]
        if argset:
            obj._argset = frozenset(args)
        return obj

    return build


_BUILD = {
    "Add": _from_args(Add),
    "Mul": _from_args(Mul),
    "Pow": _unevaluated(Pow),
    "Mod": _applied(Mod, False),
    "Piecewise": _direct(Piecewise),
    "Pair": _direct(ExprCondPair),
    "Min": _applied(Min, True),
    "Max": _applied(Max, True),
    "ceiling": _applied(ceiling, False),
    "floor": _applied(floor, False),
    "Abs": _applied(Abs, False),
    "log": _applied(log, False),
    "Lt": _unevaluated(Lt),
    "Le": _unevaluated(Le),
    "Gt": _unevaluated(Gt),
    "Ge": _unevaluated(Ge),
    "Eq": _unevaluated(Eq),
    "Ne": _unevaluated(Ne),
    "And": _applied(And, True),
    "Or": _applied(Or, True),
    "Not": _applied(Not, False),
    "TextEq": _applied(TextEq, False),
    "Member": _applied(Member, False),
    "Lookup": _applied(Lookup, False),
    "Tuple": _direct(STuple),
    "TextSet": lambda args: TextSet(*args),
    "Table": lambda args: Basic.__new__(Table, *args),
}
_CLASS = {"Add": Add, "Mul": Mul, "Pow": Pow, "Mod": Mod, "Piecewise": Piecewise, "Pair": ExprCondPair,
          "Min": Min, "Max": Max, "ceiling": ceiling, "floor": floor, "Abs": Abs, "log": log, "Lt": Lt,
          "Le": Le, "Gt": Gt, "Ge": Ge, "Eq": Eq, "Ne": Ne, "And": And, "Or": Or, "Not": Not,
          "TextEq": TextEq, "Member": Member, "Lookup": Lookup, "Tuple": STuple, "TextSet": TextSet,
          "Table": Table}
if not (_BUILD.keys() == INNER.keys() == _CLASS.keys()):
    raise ImportError("engine/nodes_sympy.py: its tags differ from engine/nodes.py's")
_TAG_OF = {cls: tag for tag, cls in _CLASS.items()}
_CONSTANT_TAG = {id(value): tag for tag, value in _CONSTANTS.items()}


def build(table: NodeTable) -> list:
    """Every node of a checked table as its SymPy object."""
    built: list = []
    for node, data in zip(table.nodes, table.data):
        build = _BUILD.get(node[0])
        built.append(build(tuple(built[i] for i in node[1:])) if build else _leaf_object(node, data))
    return built


# Constructors that evaluate (fold numbers, drop false branches, flatten sums): a residual
# table (engine/residual.py) is not in SymPy's canonical form, so it is built as SymPy builds
# an expression from its parts.
_EVALUATED = {
    "Add": lambda args: Add(*args), "Mul": lambda args: Mul(*args), "Pow": lambda args: Pow(*args),
    "Mod": lambda args: Mod(*args), "Piecewise": lambda args: Piecewise(*args), "Pair": tuple,
    "Min": lambda args: Min(*args), "Max": lambda args: Max(*args), "ceiling": lambda args: ceiling(*args),
    "floor": lambda args: floor(*args), "Abs": lambda args: Abs(*args), "log": lambda args: log(*args),
    "Lt": lambda args: Lt(*args), "Le": lambda args: Le(*args), "Gt": lambda args: Gt(*args),
    "Ge": lambda args: Ge(*args), "Eq": lambda args: Eq(*args), "Ne": lambda args: Ne(*args),
    "And": lambda args: And(*args), "Or": lambda args: Or(*args), "Not": lambda args: Not(*args),
    "TextEq": lambda args: TextEq(*args), "Member": lambda args: Member(*args),
    "Lookup": lambda args: Lookup(*args), "Tuple": lambda args: STuple(*args),
    "TextSet": lambda args: TextSet(*args), "Table": lambda args: Basic.__new__(Table, *args),
}


def _evaluated_node(node, data, args):
    build = _EVALUATED.get(node[0])
    return build(args) if build else _leaf_object(node, data)


def _leaf_object(node, data):
    """A leaf's SymPy object (names and strings shared within the process)."""
    tag = node[0]
    if tag == "Sym":
        return _atom(Symbol, node[1])
    if tag == "Text":
        return _atom(Text, node[1])
    if tag == "Str":
        return Str(node[1])
    if tag == "Int":
        return Integer(data)
    if tag == "Q":
        return Rational(data.numerator, data.denominator)
    return _CONSTANTS[tag]


def build_evaluated(table: NodeTable, roots=None, built=None) -> dict:
    """The nodes of a table (those below ``roots``, else all) as SymPy builds them from their
    parts (numbers folded, sums flattened): index → SymPy object, added to ``built`` (the nodes
    already built are not built again)."""
    built = {} if built is None else built
    wanted = set()
    for root in (range(len(table.nodes)) if roots is None else roots):
        if root not in built:
            wanted.update(i for i in table.reachable(root) if i not in built)
    for i in sorted(wanted):
        node = table.nodes[i]
        built[i] = _evaluated_node(node, table.data[i], tuple(built[a] for a in node[1:]) if node[0] in _EVALUATED else ())
    return built


def build_choosing(table: NodeTable, root: int, choose):
    """The node ``root`` as :func:`build_evaluated` builds it, except that each max and min for
    which ``choose(node)`` names one of its arguments (an index) is that argument alone: the
    others are never built (nor the max, whose SymPy constructor compares its arguments)."""
    built: dict = {}

    def make(i):
        if i in built:
            return built[i]
        node = table.nodes[i]
        if node[0] in ("Max", "Min"):
            picked = choose(node)
            if picked is not None:
                built[i] = make(picked)
                return built[i]
        args = tuple(make(a) for a in node[1:]) if node[0] in _EVALUATED else ()
        built[i] = _evaluated_node(node, table.data[i], args)
        return built[i]

    return make(root)


# --- writing -------------------------------------------------------------------


def _leaf(obj) -> Optional[list]:
    """The node for an atom (None if ``obj`` is not one the format knows)."""
    cls = type(obj)
    if cls is Symbol:
        if obj != Symbol(obj.name):  # assumptions (the parser makes none)
            raise Unencodable(obj)
        return ["Sym", obj.name]
    if cls is Text:
        return ["Text", obj.value]
    if cls is Str:
        return ["Str", obj.name]
    tag = _CONSTANT_TAG.get(id(obj))
    if tag is not None:
        return [tag]
    if isinstance(obj, Integer):  # Integer and its singletons 0, 1, -1
        return ["Int", _number(int(obj))]
    if isinstance(obj, Rational):  # Rational and 1/2
        return ["Q", _number(int(obj.p)), _number(int(obj.q))]
    return None


def _number(n: int):
    return n if -_SAFE_INT < n < _SAFE_INT else str(n)


def encode_exprs(exprs) -> Tuple[List[list], List[Optional[int]]]:
    """(node table, index of each expression or None) — post-order, each distinct node once."""
    table: List[list] = []
    index: Dict[Basic, int] = {}
    out = []
    for expr in exprs:
        if expr is None:
            out.append(None)
            continue
        stack = [(expr, False)]
        while stack:
            obj, ready = stack.pop()
            if obj in index:
                continue
            leaf = _leaf(obj)
            if leaf is not None:
                index[obj] = len(table)
                table.append(leaf)
                continue
            tag = _TAG_OF.get(type(obj))
            if tag is None:
                raise Unencodable(obj)
            if ready:
                index[obj] = len(table)
                table.append([tag, *(index[a] for a in obj.args)])
            else:
                stack.append((obj, True))
                stack.extend((a, False) for a in reversed(obj.args))
        out.append(index[expr])
    return table, out


def table_of(expr) -> Tuple[Optional[NodeTable], int]:
    """``(table, root)`` for a parsed expression; ``(None, -2)`` where it has a node the format
    has no tag for (it is then evaluated by SymPy alone)."""
    try:
        raw, (root,) = encode_exprs([expr])
        return checked(raw), root
    except (Unencodable, Malformed, ValueError, TypeError, RecursionError):
        return None, -2
