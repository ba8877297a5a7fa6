"""Expressions as node tables: the form the parse cache stores, checked, read and evaluated
without SymPy.

A node table is a flat list of ``[tag, ...]`` nodes in which an inner node's arguments are the
indices of earlier nodes; leaves hold their own data: ``["Sym", name]``, ``["Text", value]``,
``["Str", name]``, ``["Int", n]``, ``["Q", p, q]`` (numbers exact: a JSON integer, or a string
of decimal digits when large) and the constants ``["true"]``, ``["pi"]``, ... The tags are the
fixed tables below; nothing in a table names Python code.

:func:`checked` turns raw JSON data into a :class:`NodeTable`, refusing (:class:`Malformed`)
anything SymPy would not have built: an unknown tag, a wrong number of arguments, an argument
of the wrong kind (a condition where a number belongs), a forward index, a tree too deep or
too large. :class:`Expression` is one expression of a file: its table and its root, with the
names it uses, and — built only when a question needs it — the SymPy expression
(engine/nodes_sympy.py). :meth:`NodeTable.value` is the exact value at known values, with
Python's int (whole numbers) and Fraction, bool, str, tuple (a list) and dict (a table): the forward question's
arithmetic, in the semantics SymPy gives the same expression. What it does not cover (a
logarithm, a root, a constant such as pi, a missing key) raises :class:`Unsupported`, and the
caller asks SymPy — the result is the same (or the error is SymPy's), only slower.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Tuple

__all__ = ["NodeTable", "Expression", "Malformed", "Unsupported", "TooLarge", "MAX_BITS", "MAX_DEPTH", "MAX_TREE",
           "checked", "FOLD"]

MAX_DEPTH = 400  # deepest expression read; the parser itself stops near 800
MAX_TREE = 2_000_000  # most nodes in one expression counted as a tree (shared nodes once per use)
_MAX_DIGITS = 4000  # within int()'s own limit for decimal text

# No exact value is worked out beyond 2^MAX_BITS (about 10^1233): a memory model never
# needs one, and 2^(2^40) would take the machine's memory and hours to compute.
MAX_BITS = 4096


class Malformed(Exception):
    """A node table that is not what this engine writes."""


class Unsupported(Exception):
    """A node (or value) this evaluator leaves to SymPy."""


class TooLarge(Exception):
    """A value (or a power about to be worked out) beyond 2^MAX_BITS: reported, never computed."""


# --- what each tag may hold ----------------------------------------------------
# Kinds, as bits: what SymPy's class for the node is an instance of (Expr, Boolean, ...).
EXPR, BOOL, PAIR, STR, TUPLE, TEXT = 1, 2, 4, 8, 16, 32
ANY = 0  # an argument of any kind

_LEAF_KIND = {"Sym": EXPR | BOOL, "Text": EXPR | BOOL | TEXT, "Str": STR, "Int": EXPR, "Q": EXPR,
              "true": BOOL, "false": BOOL, "I": EXPR, "pi": EXPR, "E": EXPR, "oo": EXPR, "-oo": EXPR,
              "zoo": EXPR, "nan": EXPR}
CONSTANTS = ("true", "false", "I", "pi", "E", "oo", "-oo", "zoo", "nan")

# Inner nodes: tag → (fewest arguments, most or None, kind every argument must have, the node's kind).
INNER: Dict[str, Tuple[int, Optional[int], int, int]] = {
    "Add": (2, None, EXPR, EXPR), "Mul": (2, None, EXPR, EXPR), "Pow": (2, 2, EXPR, EXPR),
    "Mod": (2, 2, EXPR, EXPR), "Piecewise": (1, None, PAIR, EXPR), "Pair": (2, 2, ANY, PAIR),
    "Min": (2, None, EXPR, EXPR), "Max": (2, None, EXPR, EXPR), "ceiling": (1, 1, EXPR, EXPR),
    "floor": (1, 1, EXPR, EXPR), "Abs": (1, 1, EXPR, EXPR), "log": (1, 1, EXPR, EXPR),
    "Lt": (2, 2, EXPR, BOOL), "Le": (2, 2, EXPR, BOOL), "Gt": (2, 2, EXPR, BOOL), "Ge": (2, 2, EXPR, BOOL),
    "Eq": (2, 2, ANY, BOOL), "Ne": (2, 2, ANY, BOOL),
    "And": (2, None, BOOL, BOOL), "Or": (2, None, BOOL, BOOL), "Not": (1, 1, BOOL, BOOL),
    "TextEq": (2, 2, ANY, BOOL), "Member": (2, 2, ANY, BOOL), "Lookup": (2, 2, ANY, EXPR),
    "Tuple": (0, None, ANY, TUPLE), "TextSet": (0, None, TEXT, ANY), "Table": (2, 2, ANY, ANY),
}


def _integer(value) -> int:
    if type(value) is int:
        return value
    if type(value) is str and len(value) <= _MAX_DIGITS:
        digits = value[1:] if value[:1] == "-" else value
        if digits.isascii() and digits.isdigit():  # 0-9 only: no sign, space, "_" or other scripts' digits
            return int(value)
    raise Malformed


def _leaf_value(node: list):
    """A leaf's own data, checked: the Python value it stands for (None for names and constants)."""
    tag = node[0]
    if tag in ("Sym", "Text", "Str"):
        if len(node) != 2 or type(node[1]) is not str:
            raise Malformed
        return None if tag == "Sym" else node[1]  # a name's value comes from the values given
    if tag == "Int":
        if len(node) != 2:
            raise Malformed
        return _integer(node[1])  # whole numbers stay int: exact, and several times faster than Fraction
    if tag == "Q":
        if len(node) != 3:
            raise Malformed
        p, q = _integer(node[1]), _integer(node[2])
        if q < 2 or math.gcd(p, q) != 1:
            raise Malformed
        return Fraction(p, q)
    if len(node) != 1:
        raise Malformed
    return {"true": True, "false": False}.get(tag)


class NodeTable:
    """A checked node table: each node as a tuple, and each leaf's Python value."""

    __slots__ = ("nodes", "data", "_built", "_fns", "__weakref__")

    def __init__(self, nodes: Tuple[tuple, ...], data: List[Any]) -> None:
        self.nodes = nodes
        self.data = data  # a leaf's value (int, Fraction, str, bool), or None
        self._built: Optional[list] = None  # the SymPy objects, once a question asked for them
        self._fns: Optional[list] = None  # each node's evaluator (a closure), once a value is asked for

    def __len__(self) -> int:
        return len(self.nodes)

    # -- the SymPy objects ---------------------------------------------------------
    def sympy(self, index: int):
        if self._built is None:
            from .nodes_sympy import build  # SymPy only when a question needs expressions

            self._built = build(self)
        return self._built[index]

    # -- walks ---------------------------------------------------------------------
    def reachable(self, root: int) -> List[int]:
        """The indices of ``root`` and every node below it, each once, in table order."""
        seen = {root}
        stack = [root]
        nodes = self.nodes
        while stack:
            node = nodes[stack.pop()]
            if node[0] in INNER:
                for i in node[1:]:
                    if i not in seen:
                        seen.add(i)
                        stack.append(i)
        return sorted(seen)

    def names(self, root: int) -> FrozenSet[str]:
        return frozenset(self.nodes[i][1] for i in self.reachable(root) if self.nodes[i][0] == "Sym")

    def tags(self, root: int) -> FrozenSet[str]:
        return frozenset(self.nodes[i][0] for i in self.reachable(root))

    def subtable(self, root: int, rename: Mapping[str, str] = {}) -> "Expression":
        """The expression at ``root`` in a table of its own, names in ``rename`` replaced."""
        keep = self.reachable(root)
        where = {old: new for new, old in enumerate(keep)}
        raw = []
        for i in keep:
            node = self.nodes[i]
            if node[0] == "Sym":
                raw.append(["Sym", rename.get(node[1], node[1])])
            elif node[0] in INNER:
                raw.append([node[0], *(where[a] for a in node[1:])])
            else:
                raw.append(list(node))
        return Expression(checked(raw), len(raw) - 1)

    # -- the exact value -----------------------------------------------------------
    def value(self, root: int, env: Mapping[str, Any], memo: Optional[dict] = None):
        """The value at ``root`` with every name taken from ``env`` (Python values). ``memo``
        keeps the value of each max, min and piecewise node met, for the next expression at the
        same values (a peak over phases and the allocator's reserve on it hold the same subtree)."""
        return self.evaluator(root)(env, {} if memo is None else memo)

    def evaluator(self, root: int) -> Callable:
        """The function ``(env, memo) → value`` of the expression at ``root`` (see :meth:`value`)."""
        if self._fns is None:
            self._fns = _compiled(self)
        return self._fns[root]


def checked(raw) -> NodeTable:
    """Raw JSON data → a NodeTable, in one forward loop with bounded depth and size; anything
    SymPy would not build is :class:`Malformed`."""
    if type(raw) is not list:
        raise Malformed
    nodes: List[tuple] = []
    data: List[Any] = []
    kinds: List[int] = []
    depth: List[int] = []
    size: List[int] = []
    inner, leaf_kind = INNER, _LEAF_KIND
    for node in raw:
        if type(node) is not list or not node or type(node[0]) is not str:
            raise Malformed
        tag = node[0]
        kind = leaf_kind.get(tag)
        if kind is not None:
            data.append(_leaf_value(node))
            nodes.append(tuple(node))
            kinds.append(kind)
            depth.append(1)
            size.append(1)
            continue
        spec = inner.get(tag)
        if spec is None:
            raise Malformed
        least, most, need, kind = spec
        count = len(nodes)
        args = node[1:]
        if len(args) < least or (most is not None and len(args) > most):
            raise Malformed
        d = s = 1
        for i in args:
            if type(i) is not int or i < 0 or i >= count or kinds[i] & need != need:
                raise Malformed
            if depth[i] >= d:
                d = depth[i] + 1
            s += size[i]
        if d > MAX_DEPTH or s > MAX_TREE:
            raise Malformed
        if tag == "Pair" and not kinds[args[1]] & BOOL:
            raise Malformed
        if tag == "Table":
            name, entries = args
            if kinds[name] != STR or nodes[entries][0] != "Tuple":
                raise Malformed
            for pair in nodes[entries][1:]:
                if nodes[pair][0] != "Tuple" or len(nodes[pair]) != 3 or not kinds[nodes[pair][1]] & TEXT:
                    raise Malformed
        nodes.append((tag, *args))
        data.append(None)
        kinds.append(kind)
        depth.append(d)
        size.append(s)
    return NodeTable(tuple(nodes), data)


class Expression:
    """One expression of a formula file: a node table and its root, or a SymPy expression (as
    the parser built it) whose table is written when first needed, or both. Equal when their
    SymPy expressions are (only the cache's own check and tests compare them)."""

    __slots__ = ("_table", "_root", "_expr", "_names", "_tags", "_fn")

    def __init__(self, table: Optional[NodeTable], root: int, expr=None) -> None:
        self._table, self._root, self._expr = table, root, expr
        self._fn: Optional[Callable] = None  # the root's evaluator, once asked for a value
        self._names: Optional[FrozenSet[str]] = None
        self._tags: Optional[FrozenSet[str]] = None

    @classmethod
    def of(cls, expr) -> "Expression":
        """The expression of a SymPy object (the parser's)."""
        return cls(None, -1, expr)

    @property
    def expr(self):
        """The SymPy expression (built from the table on first use: SymPy is imported then)."""
        if self._expr is None:
            self._expr = self._table.sympy(self._root)
        return self._expr

    @property
    def table(self) -> Tuple[Optional[NodeTable], int]:
        """``(table, root)``; ``(None, -2)`` where the format has no tag for a node."""
        if self._table is None and self._root == -1:
            from .nodes_sympy import table_of

            self._table, self._root = table_of(self._expr)
            if self._table is None:
                self._root = -2  # tried: SymPy alone evaluates it
        return self._table, self._root

    @property
    def names(self) -> FrozenSet[str]:
        """The input and definition names used (strings excluded)."""
        if self._names is None:
            if self._table is not None:
                self._names = self._table.names(self._root)
            else:
                from .symbols import names_in

                self._names = names_in(self._expr)
        return self._names

    def has(self, tag: str) -> bool:
        """Does the expression hold a node of this tag (``"Piecewise"``, ``"log"``)? (True for
        every tag where it has no table: the caller then asks SymPy.)"""
        if self._tags is None:
            table, root = self.table
            self._tags = table.tags(root) if table is not None else frozenset(INNER) | frozenset(_LEAF_KIND)
        return tag in self._tags

    @property
    def lazy(self) -> bool:
        """Can a value be decided without every name in it (a branch not taken, an and/or's
        operand after the deciding one)? Then an unset name need not leave it unset."""
        return self.has("Piecewise") or self.has("And") or self.has("Or")

    def renamed(self, mapping: Mapping[str, str]) -> "Expression":
        """The same expression with the names in ``mapping`` replaced (aliases → canonical names)."""
        if self._table is not None:
            return self._table.subtable(self._root, mapping)
        from sympy import Symbol

        return Expression.of(self._expr.xreplace({Symbol(a): Symbol(b) for a, b in mapping.items()}))

    def value(self, env: Mapping[str, Any], memo: Optional[dict] = None):
        """The exact value at ``env`` (see :meth:`NodeTable.value`)."""
        fn = self._fn
        if fn is None:
            table, root = self.table
            if table is None:
                raise Unsupported("no node table")
            fn = self._fn = table.evaluator(root)
        return fn(env, {} if memo is None else memo)

    def constant(self):
        """The value of an expression that uses no names (an input's default), or None."""
        if self.names:
            return None
        try:
            return self.value({})
        except (Unsupported, ArithmeticError, TypeError, ValueError, LookupError, TooLarge):
            return None

    def __eq__(self, other) -> bool:
        if self is other or (isinstance(other, Expression) and self._table is not None
                             and self._table is other._table and self._root == other._root):
            return True
        return isinstance(other, Expression) and self.expr == other.expr

    def __hash__(self) -> int:
        return hash(self.expr)

    def __repr__(self) -> str:
        return f"Expression({self.expr!s})"


# --- evaluation ----------------------------------------------------------------


_NUMBERS = frozenset({int, Fraction})  # a number: an int (whole) or a Fraction; bool is not one


def _num(x):
    if x.__class__ not in _NUMBERS:
        raise TypeError(f"{'true/false' if isinstance(x, bool) else repr(x)} is not a number")
    return x


def _cond(x):
    if x.__class__ is not bool:
        raise TypeError(f"{x!r} is not a condition")
    return x


def _short(x: Fraction) -> str:
    text = str(x)
    return text if len(text) <= 24 else f"a number of {len(text)} digits"


# The nodes whose value is kept in the memo: a peak's max and the allocator's rounding on it
# are met again by the next expression at the same values.
_SHARED = frozenset({"Max", "Min", "Piecewise", "ceiling", "floor"})
def _equal_values(a, b) -> bool:
    if a.__class__ in _NUMBERS and b.__class__ in _NUMBERS:
        return a == b  # 2 == 4/2, whichever form each has
    return type(a) is type(b) and a == b


def _pow_values(base, exp):
    base, exp = _num(base), _num(exp)
    bits = max(base.numerator.bit_length(), base.denominator.bit_length())
    if base not in (0, 1, -1) and abs(exp) * max(bits - 1, 1) > MAX_BITS:
        raise TooLarge(f"{_short(base)} ** {_short(exp)}")
    if exp.denominator != 1:
        raise Unsupported("pow")
    if base == 0 and exp < 0:
        raise ZeroDivisionError("0 to a negative power")
    return base ** int(exp) if exp >= 0 else Fraction(base) ** int(exp)  # never a float


def _member_values(item, collection) -> bool:
    if type(item) is not str or type(collection) is not tuple:
        raise TypeError("'in' needs a string and a list")
    return item in collection


def _lookup_values(table, key):
    if type(table) is not dict or type(key) is not str:
        raise TypeError("a table lookup needs a table and a string key")
    if key not in table:
        raise Unsupported("missing key")
    return table[key]


def _total(xs):
    total = 0
    for x in xs:
        if x.__class__ not in _NUMBERS:
            _num(x)
        total += x
    return total


def _product_of(xs):
    out = 1
    for x in xs:
        if x.__class__ not in _NUMBERS:
            _num(x)
        out *= x
    return out


# The strict operations on values already worked out (every argument evaluated): what a node
# whose arguments are all known comes to (engine/residual.py folds such nodes with them).
FOLD: Dict[str, Callable] = {
    "Add": lambda *xs: _total(xs),
    "Mul": lambda *xs: _product_of(xs),
    "Pow": _pow_values,
    "Mod": lambda a, b: _num(a) % _num(b),
    "floor": lambda a: math.floor(_num(a)),
    "ceiling": lambda a: math.ceil(_num(a)),
    "Min": lambda *xs: min(_num(x) for x in xs),
    "Max": lambda *xs: max(_num(x) for x in xs),
    "Abs": lambda a: abs(_num(a)),
    "Lt": lambda a, b: _num(a) < _num(b),
    "Le": lambda a, b: _num(a) <= _num(b),
    "Gt": lambda a, b: _num(a) > _num(b),
    "Ge": lambda a, b: _num(a) >= _num(b),
    "Eq": _equal_values,
    "Ne": lambda a, b: not _equal_values(a, b),
    "TextEq": _equal_values,
    "Not": lambda a: not _cond(a),
    "Member": _member_values,
    "Lookup": _lookup_values,
}


# --- the evaluator: each node a closure over its arguments' closures --------------
# A table is read once into one closure per node, in table order (an argument is an earlier
# node, so its closure exists already): evaluating is then one call per node, with no lookup of
# what the node is. Each closure takes (values, memo). Piecewise, and, or are lazy (a branch
# not taken, an operand after the deciding one, is never worked out); every other node
# evaluates its arguments in order, then folds them with FOLD's operation.


def _compiled(table: NodeTable) -> List[Callable]:
    nodes, data, key = table.nodes, table.data, id(table)
    fns: List[Callable] = []
    for i, node in enumerate(nodes):
        value = data[i]
        tag = node[0]
        if value is not None:
            fn = _constant(value)
        elif tag == "Sym":
            fn = _name(node[1])
        elif tag == "Piecewise":
            fn = _piecewise([(fns[nodes[p][1]], fns[nodes[p][2]]) for p in node[1:]])
        elif tag == "And":
            fn = _and([fns[a] for a in node[1:]])
        elif tag == "Or":
            fn = _or([fns[a] for a in node[1:]])
        elif tag == "Table":
            fn = _table([(data[nodes[p][1]], fns[nodes[p][2]]) for p in nodes[node[2]][1:]])
        elif tag == "TextSet":
            fn = _constant(tuple(dict.fromkeys(data[a] for a in node[1:])))
        elif tag == "Add":
            fn = _fold(_total, [fns[a] for a in node[1:]], _add2)
        elif tag == "Mul":
            fn = _fold(_product_of, [fns[a] for a in node[1:]], _mul2)
        elif tag in FOLD:
            fn = _strict(FOLD[tag], [fns[a] for a in node[1:]])
        else:  # log, a root, pi, a list, ...: SymPy's
            fn = _unsupported(tag)
        if tag in _SHARED:
            fn = _kept(fn, (key, i))
        fns.append(fn)
    return fns


def _constant(value):
    return lambda env, memo: value


def _name(name: str):
    def fn(env, memo):
        try:
            return env[name]
        except KeyError:
            raise Unsupported(f"unbound {name}") from None
    return fn


def _unsupported(tag: str):
    def fn(env, memo):
        raise Unsupported(tag)
    return fn


def _kept(inner, key):
    def fn(env, memo):
        if key in memo:
            return memo[key]
        value = memo[key] = inner(env, memo)
        return value
    return fn


def _piecewise(pairs):
    def fn(env, memo):
        for value, cond in pairs:
            if _cond(cond(env, memo)):
                return value(env, memo)
        raise Unsupported("piecewise without a true branch")
    return fn


def _and(args):
    def fn(env, memo):
        for a in args:
            if not _cond(a(env, memo)):
                return False
        return True
    return fn


def _or(args):
    def fn(env, memo):
        for a in args:
            if _cond(a(env, memo)):
                return True
        return False
    return fn


def _table(entries):
    return lambda env, memo: {key: _num(value(env, memo)) for key, value in entries}


def _add2(a, b):
    def fn(env, memo):
        x = a(env, memo)
        if x.__class__ not in _NUMBERS:
            _num(x)
        y = b(env, memo)
        if y.__class__ not in _NUMBERS:
            _num(y)
        return x + y
    return fn


def _mul2(a, b):
    def fn(env, memo):
        x = a(env, memo)
        if x.__class__ not in _NUMBERS:
            _num(x)
        y = b(env, memo)
        if y.__class__ not in _NUMBERS:
            _num(y)
        return x * y
    return fn


def _fold(many, args, two):
    """Add and Mul: the two-argument case without a loop; the numbers checked as they come."""
    if len(args) == 2:
        return two(*args)
    return lambda env, memo: many(a(env, memo) for a in args)


def _strict(op: Callable, args):
    if len(args) == 1:
        (a,) = args
        return lambda env, memo: op(a(env, memo))
    if len(args) == 2:
        a, b = args
        return lambda env, memo: op(a(env, memo), b(env, memo))
    return lambda env, memo: op(*[a(env, memo) for a in args])
