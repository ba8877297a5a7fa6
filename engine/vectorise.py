"""Element-wise evaluation of an expression of one input on a NumPy array.

``sweep``, ``solve``'s exhaustive search and ``--plot`` need an output at up to
10^7 values of one input. SymPy's ``lambdify`` would do it by writing Python
source from the expression and ``exec``-ing it, which lets a string in a formula
file become code, and lets a formula name (``select``, ``floor``, ``where``...)
shadow the NumPy function the generated source calls. This module instead walks
the SymPy tree, as engine/exact.py does with Fractions, and computes each node
with one NumPy operation on float64 arrays: nothing is generated, compiled or
executed, and names are only ever compared with the swept symbol.

Covered: numbers (Integer, Rational, Float, SymPy's singletons 0, 1, -1, 1/2,
oo, -oo, nan, zoo, and pi and I, which the log or root of a negative constant
leaves: I has no real value, NaN), the swept symbol, Add, Mul, Pow (any real exponent; 1/2 is
sqrt), Mod, floor, ceiling, Abs, Min, Max, log, Piecewise, the six comparisons,
And, Or, Not, ITE, true and false, and ``==`` between values that may be strings
(TextEq: a string never equals a number). Anything else — a string where a value
is needed, a table lookup or list membership still open, another free name, a
SymPy class the formulas do not produce — raises a located :class:`SolveError` of its
kind: :class:`TypeMismatch` (``expected`` "a number" or "a condition", ``found`` what
the expression holds instead: "a condition", "a string", "a table lookup", "SymPy's
sin"...), :class:`UnboundInput` (another name without a value: ``missing``) or
:class:`LimitExceeded` (``what`` "nesting"). A user sees them (``sweep`` of an output
that reads a string input's lookup...), the same kinds as elsewhere.

Floating point: Mul divides once by the product of its denominators (so
``floor(s/49)`` is 1 at s = 49, not floor(0.99999...)), every value stays float64
(overflow gives inf, never an exception), and NaN marks what has no real value.
Callers compare with exact evaluation wherever exactness is promised.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Callable, Dict, Iterable, List, Optional

import numpy as np

from .errors import EngineError, LimitExceeded, Location, SolveError, TypeMismatch, UnboundInput
from .nodes import INNER

__all__ = ["Vectorised", "evaluate_array", "evaluate_condition", "TableVectorised", "evaluate_table_array",
           "evaluate_table_condition"]


def evaluate_array(expr, symbol, xs, where: Optional[Location] = None,
                   what: str = "the output") -> np.ndarray:
    """``expr`` at every value of ``xs`` (``symbol`` ↦ xs), as a float64 array shaped like ``xs``."""
    return Vectorised(symbol, xs, where, [expr]).number(expr, what)


def evaluate_condition(expr, symbol, xs, where: Optional[Location] = None,
                       what: str = "the condition") -> np.ndarray:
    """A condition in ``symbol`` at every value of ``xs``, as a boolean array (NaN compares false)."""
    return Vectorised(symbol, xs, where, [expr]).condition(expr, what)


def _shaped(value, shape, dtype, pinned=()) -> np.ndarray:
    out = np.asarray(value, dtype=dtype)
    if out.shape != shape:
        out = np.full(shape, out, dtype=dtype)
    elif id(value) in pinned:  # the grid itself or a kept subtree: the caller gets its own copy
        out = out.copy()
    return out


def _is_bool(v) -> bool:
    return isinstance(v, (bool, np.bool_)) or (isinstance(v, np.ndarray) and v.dtype == np.bool_)


def _is_scalar(v) -> bool:
    return not isinstance(v, np.ndarray)


def evaluate_table_array(table, root: int, name: str, xs, where: Optional[Location] = None,
                         what: str = "the output") -> np.ndarray:
    """The node ``root`` of a :class:`~vram_eval.nodes.NodeTable` at every value of ``xs``
    (the leaf ``("Sym", name)`` ↦ xs), as a float64 array shaped like ``xs``."""
    return TableVectorised(table, name, xs, where, [root]).number(root, what)


def evaluate_table_condition(table, root: int, name: str, xs, where: Optional[Location] = None,
                             what: str = "the condition") -> np.ndarray:
    """A condition node of a table at every value of ``xs``, as a boolean array."""
    return TableVectorised(table, name, xs, where, [root]).condition(root, what)


def _shared(exprs) -> set:
    """The compound subtrees that occur more than once: only those are kept between uses
    (keeping every intermediate array of a 10^7-point sweep would take gigabytes)."""
    seen, shared = set(), set()
    stack = list(exprs)
    while stack:
        e = stack.pop()
        if not getattr(e, "args", ()):
            continue
        if e in seen:
            shared.add(e)
            continue
        seen.add(e)
        stack.extend(e.args)
    return shared


def _shared_nodes(nodes, roots: Iterable[int]) -> set:
    """The inner nodes of a table used more than once below ``roots`` (as :func:`_shared`)."""
    seen, shared = set(), set()
    stack = list(roots)
    while stack:
        i = stack.pop()
        node = nodes[i]
        if len(node) == 1 or node[0] not in INNER:  # a leaf, or an empty tuple
            continue
        if i in seen:
            shared.add(i)
            continue
        seen.add(i)
        stack.extend(node[1:])
    return shared


_F = np.float64
# Sums whose fractional coefficients have a common denominator up to this are divided once.
MAX_DENOMINATOR = 2**32


class _Walker:
    """What both walkers share: the grid, the errors, the in-place arithmetic and the handlers
    of nodes whose meaning does not depend on how the expression is held. A subclass gives
    ``value(e)`` (the dispatch), ``args(e)`` (a node's arguments, as it holds them),
    ``pairs(e)`` (a Piecewise's (value, condition) pairs) and ``short(e)`` (words for a message)."""

    def __init__(self, name: str, xs, where: Optional[Location], whole: bool, ascending: bool) -> None:
        self.name = name
        self.xs = np.asarray(xs, dtype=np.float64)
        self.whole = whole
        self.ascending = ascending
        self.where = where
        self.what = "the expression"
        self.memo: Dict[object, object] = {}
        self.pinned = {id(self.xs)}  # arrays that are never written: the grid, kept subtrees

    def number(self, expr, what: str = "the output") -> np.ndarray:
        """``expr`` as a float64 array shaped like the grid."""
        value = self._run(expr, what)
        if _is_bool(value):
            raise self.fail("a true/false condition where a number is expected", found="a condition")
        return _shaped(value, self.xs.shape, np.float64, self.pinned)

    def condition(self, expr, what: str = "the condition") -> np.ndarray:
        """``expr`` as a boolean array shaped like the grid."""
        value = self._run(expr, what)
        if not _is_bool(value):
            raise self.fail("a number where a true/false condition is expected", expected="a condition",
                            found="a number")
        return _shaped(value, self.xs.shape, np.bool_, self.pinned)

    def _run(self, expr, what: str):
        self.what = what
        try:
            with np.errstate(all="ignore"):
                return self.value(expr)
        except RecursionError:
            raise self.fail("an expression nested too deeply to evaluate", kind=LimitExceeded, what="nesting") from None

    def fail(self, holds: str, hint: Optional[str] = None, kind: type = TypeMismatch, **facts) -> EngineError:
        """The located error of ``kind`` (in SolveError) for an expression that holds ``holds``
        (words, for the message); ``facts`` are the kind's attributes (TypeMismatch: ``expected``
        defaults to "a number")."""
        if kind is TypeMismatch:
            facts.setdefault("expected", "a number")
        return kind[SolveError](
            f"{self.what} cannot be computed over a range of {self.name}: it holds {holds}", self.where,
            hint=hint or "set the inputs it depends on with --set NAME=VALUE, or choose another output", **facts)

    def value(self, e):  # pragma: no cover - each walker has its own
        raise NotImplementedError

    def args(self, e) -> tuple:  # pragma: no cover
        raise NotImplementedError

    def pairs(self, e) -> Iterable:  # pragma: no cover
        raise NotImplementedError

    def short(self, e) -> str:  # pragma: no cover
        raise NotImplementedError

    def num(self, e):
        v = self.value(e)
        if _is_bool(v):
            raise self.fail(f"a true/false condition used as a number ({self.short(e)})", found="a condition")
        return v

    def cond(self, e):
        v = self.value(e)
        if not _is_bool(v):
            raise self.fail(f"a number used as a condition ({self.short(e)})", expected="a condition",
                            found="a number")
        return v

    def unbound(self, name: str) -> EngineError:
        what = self.what[1:-1] if len(self.what) > 1 and self.what[0] == self.what[-1] == "'" else self.what
        return self.fail(f"the name '{name}', which has no value here",
                         hint=f"set '{name}' in the spec or with --set {name}=VALUE", kind=UnboundInput,
                         name=what, missing=(name,))

    def string(self, text: str) -> EngineError:
        return self.fail(f"the string {text}", hint="strings only choose between formulas: set the input that "
                                                   "holds it with --set NAME=VALUE", found="a string")

    def open_(self, kind: str, e) -> EngineError:
        return self.fail(f"{kind} ({self.short(e)}) that depends on {self.name}",
                         hint="strings and tables only choose between formulas: set the inputs they depend on "
                              "with --set NAME=VALUE", found=kind)

    # -- in-place arithmetic --------------------------------------------------
    # A fresh array (the result of an operation, not the grid nor a kept subtree) has one
    # user, its parent: writing the parent's result into it spares an allocation, which
    # on 10^6 points costs more than the arithmetic.
    def owned(self, v, dtype=np.float64) -> bool:
        return isinstance(v, np.ndarray) and v.dtype == dtype and v.shape == self.xs.shape and id(v) not in self.pinned

    def op(self, fn, a, b):
        if self.owned(a):
            return fn(a, b, out=a)
        if self.owned(b):
            return fn(a, b, out=b)
        if _is_scalar(a) and _is_scalar(b):
            return fn(_F(a), _F(b))
        return fn(a, b)

    def op1(self, fn, a):
        return fn(a, out=a) if self.owned(a) else fn(_F(a) if _is_scalar(a) else a)

    # -- arithmetic -------------------------------------------------------
    def product(self, factors, coefficient: int):
        out = None if coefficient == 1 and factors else _F(_exact_float(coefficient, 1))
        for f in factors:
            out = f if out is None else self.op(np.multiply, out, f)
        return out

    def power(self, base, k: int):
        if k == 0:
            return _F(1)
        if k == 1:
            return base
        if k == 2:
            return self.op(np.multiply, base, base)
        return self.op(np.power, base, _F(k))

    def mod(self, e):
        a, b = self.args(e)
        return self.op(np.mod, self.num(a), self.num(b))

    def log_(self, e):
        args = self.args(e)
        out = self.op1(np.log, self.num(args[0]))
        if len(args) == 2:
            out = self.op(np.divide, out, self.op1(np.log, self.num(args[1])))
        return out

    # -- conditions -------------------------------------------------------
    def piecewise(self, e):
        pieces = []
        for value, condition in self.pairs(e):
            c = self.cond(condition)
            if _is_scalar(c) and not c:
                continue
            pieces.append((c, value))
            if _is_scalar(c):  # true: later branches are never taken
                break
        if not pieces:
            return _F(np.nan)
        values = [self.value(v) for _, v in pieces]
        boolean = all(_is_bool(v) for v in values)
        if not boolean and any(_is_bool(v) for v in values):
            raise self.fail(f"a conditional that mixes numbers and conditions ({self.short(e)})",
                            expected="a number or a condition, one in every branch", found="numbers and conditions")
        dtype = np.bool_ if boolean else np.float64
        last_c, out = pieces[-1][0], values[-1]
        if not _is_scalar(last_c):
            out = np.where(last_c, out, np.False_ if boolean else _F(np.nan))
        elif len(pieces) > 1 and not self.owned(out, dtype):
            out = np.array(np.broadcast_to(out, self.xs.shape), dtype=dtype)
        # earlier branches win: write them over the later ones, last to first
        for (c, _), v in zip(reversed(pieces[:-1]), reversed(values[:-1])):
            np.copyto(out, v, where=c)
        return out

    def threshold(self, fn, a, b):
        """s >= c on a sorted grid: false, then true from one index on (found by bisection)."""
        if a is not self.xs:  # c < s is s > c
            fn = {np.less: np.greater, np.less_equal: np.greater_equal,
                  np.greater: np.less, np.greater_equal: np.less_equal}[fn]
            a, b = b, a
        c = float(b)
        out = np.zeros(self.xs.shape, dtype=np.bool_)
        if math.isnan(c):
            return out
        if fn in (np.greater_equal, np.greater):
            out[np.searchsorted(self.xs, c, side="left" if fn is np.greater_equal else "right"):] = True
        else:
            out[:np.searchsorted(self.xs, c, side="right" if fn is np.less_equal else "left")] = True
        return out

    def not_(self, e):
        c = self.cond(self.args(e)[0])
        return np.logical_not(c, out=c) if self.owned(c, np.bool_) else np.logical_not(c)


class Vectorised(_Walker):
    """SymPy expressions of ``symbol`` on the float64 grid ``xs``; subtrees shared by the
    expressions named up front are computed once. (SymPy is imported when the first is made.)"""

    def __init__(self, symbol, xs, where: Optional[Location] = None, exprs=(), whole: bool = False,
                 ascending: bool = False) -> None:
        """The caller may vouch that every value of ``xs`` is a whole number (``whole``) and
        that ``xs`` is sorted, lowest first (``ascending``): a sweep's grid is both or the latter."""
        if not _HANDLERS:
            _load_sympy()
        super().__init__(symbol.name, xs, where, whole, ascending)
        self.symbol = symbol
        try:
            self.shared = _shared(exprs)
        except RecursionError:  # hashing a tree too deep: evaluation reports it, located
            self.shared = set()

    def args(self, e) -> tuple:
        return e.args

    def pairs(self, e) -> Iterable:
        return e.args  # ExprCondPairs: (value, condition)

    def short(self, e) -> str:
        return _short(e)

    # -- dispatch ---------------------------------------------------------
    def value(self, e):
        keep = e in self.shared
        if keep:
            try:
                return self.memo[e]
            except KeyError:
                pass
        handler = _HANDLERS.get(type(e))
        if handler is None:
            for kind, fn in _BASES:
                if isinstance(e, kind):
                    handler = fn
                    break
            else:
                raise self.fail(f"{_short(e)} (SymPy's {type(e).__name__}), which a sweep does not evaluate",
                                found=f"SymPy's {type(e).__name__}")
            _HANDLERS[type(e)] = handler
        out = handler(self, e)
        if keep:
            self.memo[e] = out
            self.pinned.add(id(out))
        return out

    # -- leaves -----------------------------------------------------------
    def symbol_(self, e):
        if e == self.symbol:
            return self.xs
        raise self.unbound(e.name)

    def text(self, e):
        raise self.string(_short(e))

    def ite(self, e):
        """ITE(c, a, b) of conditions (SymPy's fold of nested Piecewise conditions)."""
        c = self.cond(e.args[0])
        if _is_scalar(c):
            return self.cond(e.args[1] if c else e.args[2])
        return np.where(c, self.cond(e.args[1]), self.cond(e.args[2]))

    def not_numeric(self, e):
        from .symbols import Lookup, Member, Table, TextSet

        kind = {Lookup: "a table lookup", Member: "a list membership test",
                Table: "a table", TextSet: "a list of strings"}.get(type(e), f"a {type(e).__name__}")
        raise self.open_(kind, e)

    # -- arithmetic -------------------------------------------------------
    def add(self, e):
        """Terms with fractional coefficients (s/3 + 1/3) are summed over their common
        denominator and divided once: (s + 1)/3, exact wherever s + 1 is."""
        from sympy import Rational

        split = [a.as_coeff_Mul() if not isinstance(a, Rational) else (a, None) for a in e.args]
        d = 1
        for c, _ in split:
            if isinstance(c, Rational) and c.q != 1:
                d = d * int(c.q) // math.gcd(d, int(c.q))
        if d == 1 or d > MAX_DENOMINATOR:
            return functools.reduce(lambda x, y: self.op(np.add, x, y), [self.num(a) for a in e.args])
        terms = []
        for (c, rest), a in zip(split, e.args):
            if not isinstance(c, Rational):
                terms.append(self.op(np.multiply, self.num(a), _F(d)))
            elif rest is None:
                terms.append(_F(_exact_float(int(c.p) * (d // int(c.q)), 1)))
            else:
                scale = int(c.p) * (d // int(c.q))
                value = self.num(rest)
                terms.append(value if scale == 1 else self.op(np.multiply, value, _F(_exact_float(scale, 1))))
        total = functools.reduce(lambda x, y: self.op(np.add, x, y), terms)
        return self.op(np.divide, total, _F(d))

    def mul(self, e):
        """Numerator factors times p, over denominator factors times q: one rounding for the division."""
        from sympy import Integer, Pow, Rational

        numer, denom = [], []
        p, q = 1, 1
        for a in e.args:
            if isinstance(a, Rational):
                p, q = p * int(a.p), q * int(a.q)
            elif isinstance(a, Pow) and isinstance(a.args[1], Integer) and a.args[1] < 0:
                denom.append(self.power(self.num(a.args[0]), -int(a.args[1])))
            else:
                numer.append(self.num(a))
        top = self.product(numer, p)
        if not denom and q == 1:
            return top
        return self.op(np.divide, top, self.product(denom, q))

    def pow(self, e):
        from sympy import Integer
        from sympy.core.numbers import Half

        base_e, exp_e = e.args
        if isinstance(exp_e, Integer):
            k = int(exp_e)
            base = self.num(base_e)
            if k >= 0:
                return self.power(base, k)
            return self.op(np.divide, _F(1), self.power(base, -k))
        if isinstance(exp_e, Half):
            return self.op1(np.sqrt, self.num(base_e))
        return self.op(np.power, self.num(base_e), self.num(exp_e))

    # -- conditions -------------------------------------------------------
    def text_eq(self, e):
        """``a == b`` where either side may hold a string: two numbers (or two conditions)
        compare as numbers; a string never equals a number or a condition (as TextEq decides)."""
        from .symbols import Text

        texts = [a for a in e.args if isinstance(a, Text)]
        if len(texts) == 2:  # two strings, undecided: cannot happen, TextEq decides them
            return np.bool_(texts[0] == texts[1])
        if texts:
            other = e.args[1] if e.args[0] is texts[0] else e.args[0]
            self.value(other)  # a number or a condition, or a located error (a lookup, ...)
            return np.False_
        return _equal(np.equal)(self, e)


_NUMBERS = ("Int", "Q")
_ONE, _HALF = Fraction(1), Fraction(1, 2)


class TableVectorised(_Walker):
    """The nodes of a :class:`~vram_eval.nodes.NodeTable` as functions of the leaf
    ``("Sym", name)`` on the float64 grid ``xs``, with the SymPy walker's semantics to the
    bit (:class:`Vectorised` on the table's SymPy expression gives the same arrays and errors),
    and without SymPy. The table need not be in SymPy's canonical form (engine/residual.py's
    are not): a product may hold several numbers (their product is its coefficient, a sum's
    term's too), a sum several numbers, a power a negative whole exponent anywhere. A node
    used more than once below ``roots`` is computed once; ``whole`` and ``ascending`` are
    :class:`Vectorised`'s hints."""

    def __init__(self, table, name: str, xs, where: Optional[Location] = None, roots: Iterable[int] = (),
                 whole: bool = False, ascending: bool = False) -> None:
        super().__init__(name, xs, where, whole, ascending)
        self.nodes, self.data = table.nodes, table.data
        self.shared = _shared_nodes(self.nodes, roots)

    def args(self, i) -> tuple:
        return self.nodes[i][1:]

    def pairs(self, i) -> Iterable:
        nodes = self.nodes
        return [nodes[p][1:] for p in nodes[i][1:]]  # ("Pair", value, condition)

    def short(self, i, width: int = 60) -> str:
        text = " ".join(_describe(self.nodes, self.data, i).split())
        return text if len(text) <= width else text[: width - 3] + "..."

    # -- dispatch ---------------------------------------------------------
    def value(self, i):
        keep = i in self.shared
        if keep:
            try:
                return self.memo[i]
            except KeyError:
                pass
        tag = self.nodes[i][0]
        handler = _TABLE_HANDLERS.get(tag)
        if handler is None:  # E, a tuple, a name of a table, a pair on its own: what SymPy's walker refuses
            cls = _SYMPY_NAME.get(tag, tag)
            raise self.fail(f"{self.short(i)} (SymPy's {cls}), which a sweep does not evaluate",
                            found=f"SymPy's {cls}")
        out = handler(self, i)
        if keep:
            self.memo[i] = out
            self.pinned.add(id(out))
        return out

    # -- leaves -----------------------------------------------------------
    def number_leaf(self, i):
        v = self.data[i]
        return _F(_exact_float(v.numerator, v.denominator))

    def symbol_(self, i):
        name = self.nodes[i][1]
        if name == self.name:
            return self.xs
        raise self.unbound(name)

    def text(self, i):
        raise self.string(self.short(i))

    def not_numeric(self, i):
        raise self.open_(_OPEN[self.nodes[i][0]], i)

    # -- arithmetic -------------------------------------------------------
    def coefficient(self, a):
        """A sum's term as (its coefficient, the rest): (the number, None) for a number; for a
        product with numbers, their product and the tuple of its other factors; else (1, a)."""
        nodes = self.nodes
        node = nodes[a]
        if node[0] in _NUMBERS:
            return self.data[a], None
        if node[0] == "Mul":
            c, rest = _ONE, []
            for b in node[1:]:
                if nodes[b][0] in _NUMBERS:
                    c *= self.data[b]
                else:
                    rest.append(b)
            if len(rest) < len(node) - 1:
                return c, (tuple(rest) or None)
        return _ONE, a

    def add(self, i):
        """As :meth:`Vectorised.add`: terms with fractional coefficients summed over their
        common denominator and divided once."""
        args = self.args(i)
        split = [self.coefficient(a) for a in args]
        d = 1
        for c, _ in split:
            if c.denominator != 1:
                d = d * c.denominator // math.gcd(d, c.denominator)
        if d == 1 or d > MAX_DENOMINATOR:
            return functools.reduce(lambda x, y: self.op(np.add, x, y), [self.num(a) for a in args])
        terms = []
        for c, rest in split:
            scale = c.numerator * (d // c.denominator)
            if rest is None:
                terms.append(_F(_exact_float(scale, 1)))
                continue
            if type(rest) is int:
                value = self.num(rest)
            elif len(rest) == 1:
                value = self.num(rest[0])
            else:
                value = self.product_of(rest)
            terms.append(value if scale == 1 else self.op(np.multiply, value, _F(_exact_float(scale, 1))))
        total = functools.reduce(lambda x, y: self.op(np.add, x, y), terms)
        return self.op(np.divide, total, _F(d))

    def mul(self, i):
        return self.product_of(self.args(i))

    def product_of(self, args):
        """Numerator factors times p, over denominator factors (powers with a negative whole
        exponent) times q, p/q the product of the numbers among ``args``: one division."""
        nodes, data = self.nodes, self.data
        numer, denom = [], []
        c = _ONE
        for a in args:
            node = nodes[a]
            if node[0] in _NUMBERS:
                c *= data[a]
            elif node[0] == "Pow" and nodes[node[2]][0] == "Int" and data[node[2]] < 0:
                denom.append(self.power(self.num(node[1]), -int(data[node[2]])))
            else:
                numer.append(self.num(a))
        top = self.product(numer, c.numerator)
        if not denom and c.denominator == 1:
            return top
        return self.op(np.divide, top, self.product(denom, c.denominator))

    def pow(self, i):
        _, base_i, exp_i = self.nodes[i]
        tag = self.nodes[exp_i][0]
        if tag == "Int":
            k = int(self.data[exp_i])
            base = self.num(base_i)
            if k >= 0:
                return self.power(base, k)
            return self.op(np.divide, _F(1), self.power(base, -k))
        if tag == "Q" and self.data[exp_i] == _HALF:
            return self.op1(np.sqrt, self.num(base_i))
        return self.op(np.power, self.num(base_i), self.num(exp_i))

    # -- conditions -------------------------------------------------------
    def text_eq(self, i):
        """As :meth:`Vectorised.text_eq`: a string never equals a number or a condition."""
        args = self.args(i)
        texts = [a for a in args if self.nodes[a][0] == "Text"]
        if len(texts) == 2:
            return np.bool_(self.data[texts[0]] == self.data[texts[1]])
        if texts:
            other = args[1] if args[0] == texts[0] else args[0]
            self.value(other)  # a number or a condition, or a located error (a lookup, ...)
            return np.False_
        return _EQUAL(self, i)


# Handlers made from a NumPy function (w: the walker, e: the node as w holds it).


def _unary(fn: Callable) -> Callable:
    return lambda w, e: w.op1(fn, w.num(w.args(e)[0]))


def _rounding(fn: Callable) -> Callable:
    def run(w, e):
        v = w.num(w.args(e)[0])
        return v if v is w.xs and w.whole else w.op1(fn, v)  # floor(s) is s on a whole grid
    return run


def _minmax(fn: Callable) -> Callable:
    return lambda w, e: functools.reduce(lambda x, y: w.op(fn, x, y), [w.num(a) for a in w.args(e)])


def _compare(fn: Callable, reflexive: bool) -> Callable:
    def run(w, e):
        left, right = w.args(e)
        a, b = w.num(left), w.num(right)
        if a is w.xs and b is w.xs:  # s <= s: the grid has no NaN
            return np.bool_(reflexive)
        if w.ascending and (a is w.xs) != (b is w.xs) and _is_scalar(b if a is w.xs else a):
            return w.threshold(fn, a, b)
        return fn(_F(a) if _is_scalar(a) else a, _F(b) if _is_scalar(b) else b)
    return run


def _equal(fn: Callable) -> Callable:
    def run(w, e):
        left, right = w.args(e)
        a, b = w.value(left), w.value(right)
        if _is_bool(a) != _is_bool(b):  # a number never equals a condition
            return np.bool_(fn is np.not_equal)
        if a is w.xs and b is w.xs:
            return np.bool_(fn is np.equal)
        return fn(a, b)
    return run


def _both(fn: Callable, identity: bool) -> Callable:
    """And (identity true) or Or (identity false) of any number of conditions."""
    def run(w, e):
        out = None
        for a in w.args(e):
            c = w.cond(a)
            if _is_scalar(c):
                if bool(c) != identity:  # false in an And, true in an Or: decided
                    return np.bool_(c)
                continue
            out = c if out is None else (fn(out, c, out=out) if w.owned(out, np.bool_) else fn(out, c))
        return np.bool_(identity) if out is None else out
    return run


_EQUAL = _equal(np.equal)


def _exact_float(p: int, q: int) -> float:
    """p/q correctly rounded (Python's int division), ±inf beyond float64."""
    try:
        return p / q
    except OverflowError:
        return float("inf") if (p > 0) == (q > 0) else float("-inf")


def _rational(w, e):
    return _F(_exact_float(int(e.p), int(e.q)))


def _short(e, width: int = 60) -> str:
    try:
        text = str(e)
    except Exception:  # a printer that fails: name the class only
        text = type(e).__name__
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


# --- the SymPy walker's handlers, by SymPy class (filled when the first Vectorised is made) --

_HANDLERS: Dict[type, Callable] = {}
# Subclasses, checked in order when the exact type is not in the table (the strings and
# tables first: Text is a Symbol).
_BASES: List[tuple] = []


def _load_sympy() -> None:
    from sympy import Abs, Add, Float, Integer, Max, Min, Mod, Mul, Piecewise, Pow, Rational, Symbol, ceiling, floor, log
    from sympy.core.numbers import (ComplexInfinity, Half, ImaginaryUnit, Infinity, NaN, NegativeInfinity,
                                    NegativeOne, One, Pi, Zero)
    from sympy.core.relational import Equality, GreaterThan, LessThan, StrictGreaterThan, StrictLessThan, Unequality
    from sympy.logic.boolalg import ITE, And, BooleanFalse, BooleanTrue, Not, Or

    from .symbols import Lookup, Member, Table, Text, TextEq, TextSet

    _BASES[:] = [
        (Text, Vectorised.text),
        (TextEq, Vectorised.text_eq),
        ((Lookup, Member, Table, TextSet), Vectorised.not_numeric),
        (Rational, _rational),
        (Symbol, Vectorised.symbol_),
    ]
    _HANDLERS.update({
        Integer: _rational,
        Rational: _rational,
        One: _rational,
        Zero: _rational,
        NegativeOne: _rational,
        Half: _rational,
        Float: lambda w, e: _F(float(e)),
        Infinity: lambda w, e: _F(np.inf),
        NegativeInfinity: lambda w, e: _F(-np.inf),
        NaN: lambda w, e: _F(np.nan),
        ComplexInfinity: lambda w, e: _F(np.nan),  # 1/0: no real value
        ImaginaryUnit: lambda w, e: _F(np.nan),  # sqrt(-8) of constants: no real value, like sqrt(-s)
        Pi: lambda w, e: _F(np.pi),  # log(-2) of constants is log(2) + I*pi
        Symbol: Vectorised.symbol_,
        Text: Vectorised.text,
        Add: Vectorised.add,
        Mul: Vectorised.mul,
        Pow: Vectorised.pow,
        Mod: _Walker.mod,
        floor: _rounding(np.floor),
        ceiling: _rounding(np.ceil),
        Abs: _unary(np.abs),
        Min: _minmax(np.minimum),
        Max: _minmax(np.maximum),
        log: _Walker.log_,
        Piecewise: _Walker.piecewise,
        StrictLessThan: _compare(np.less, False),
        LessThan: _compare(np.less_equal, True),
        StrictGreaterThan: _compare(np.greater, False),
        GreaterThan: _compare(np.greater_equal, True),
        Equality: _equal(np.equal),
        Unequality: _equal(np.not_equal),
        And: _both(np.logical_and, True),
        Or: _both(np.logical_or, False),
        Not: _Walker.not_,
        ITE: Vectorised.ite,
        BooleanTrue: lambda w, e: np.True_,
        BooleanFalse: lambda w, e: np.False_,
        Lookup: Vectorised.not_numeric,
        TextEq: Vectorised.text_eq,
        Member: Vectorised.not_numeric,
        Table: Vectorised.not_numeric,
        TextSet: Vectorised.not_numeric,
    })


# --- the table walker's handlers, by tag ---------------------------------------------------

_OPEN = {"Lookup": "a table lookup", "Member": "a list membership test", "Table": "a table",
         "TextSet": "a list of strings"}
# The tags the walker refuses, as SymPy's walker names their classes.
_SYMPY_NAME = {"E": "Exp1", "Tuple": "Tuple", "Str": "Str", "Pair": "ExprCondPair"}

_TABLE_HANDLERS: Dict[str, Callable] = {
    "Int": TableVectorised.number_leaf,
    "Q": TableVectorised.number_leaf,
    "oo": lambda w, i: _F(np.inf),
    "-oo": lambda w, i: _F(-np.inf),
    "nan": lambda w, i: _F(np.nan),
    "zoo": lambda w, i: _F(np.nan),  # 1/0: no real value
    "I": lambda w, i: _F(np.nan),  # no real value
    "pi": lambda w, i: _F(np.pi),
    "true": lambda w, i: np.True_,
    "false": lambda w, i: np.False_,
    "Sym": TableVectorised.symbol_,
    "Text": TableVectorised.text,
    "Add": TableVectorised.add,
    "Mul": TableVectorised.mul,
    "Pow": TableVectorised.pow,
    "Mod": _Walker.mod,
    "floor": _rounding(np.floor),
    "ceiling": _rounding(np.ceil),
    "Abs": _unary(np.abs),
    "Min": _minmax(np.minimum),
    "Max": _minmax(np.maximum),
    "log": _Walker.log_,
    "Piecewise": _Walker.piecewise,
    "Lt": _compare(np.less, False),
    "Le": _compare(np.less_equal, True),
    "Gt": _compare(np.greater, False),
    "Ge": _compare(np.greater_equal, True),
    "Eq": _equal(np.equal),
    "Ne": _equal(np.not_equal),
    "And": _both(np.logical_and, True),
    "Or": _both(np.logical_or, False),
    "Not": _Walker.not_,
    "TextEq": TableVectorised.text_eq,
    "Lookup": TableVectorised.not_numeric,
    "Member": TableVectorised.not_numeric,
    "Table": TableVectorised.not_numeric,
    "TextSet": TableVectorised.not_numeric,
}


# --- words for a node, in messages (close to SymPy's printing; bounded) ---------------------

_INFIX = {"Add": " + ", "Mul": "*", "Lt": " < ", "Le": " <= ", "Gt": " > ", "Ge": " >= ", "And": " & ",
          "Or": " | ", "TextEq": " == ", "Member": " in "}
_CONSTANT_WORDS = {"true": "True", "false": "False"}


def _describe(nodes, data, root: int, budget: int = 40) -> str:
    """A node as text, SymPy's way where it is simple; after ``budget`` nodes, "..."."""
    left = [budget]

    def text(i: int) -> str:
        left[0] -= 1
        if left[0] < 0:
            return "..."
        node = nodes[i]
        tag = node[0]
        if tag == "Sym" or tag == "Str":
            return node[1]
        if tag == "Text":
            return f'"{data[i]}"'
        if tag in _NUMBERS:
            return str(data[i])
        if tag not in INNER:
            return _CONSTANT_WORDS.get(tag, tag)
        args = node[1:]
        if tag == "Add":
            return " + ".join(text(a) for a in args)
        if tag in _INFIX:
            return _INFIX[tag].join(wrapped(a, tag != "Mul") for a in args)
        if tag == "Pow":
            exponent = nodes[args[1]]
            fraction = exponent[0] == "Q" or (exponent[0] == "Int" and data[args[1]] < 0)
            return f"{wrapped(args[0], True)}**{wrapped(args[1], True, fraction)}"
        if tag == "Not":
            return f"~{wrapped(args[0], True)}"
        if tag == "Lookup":
            table = nodes[args[0]]
            name = nodes[table[1]][1] if table[0] == "Table" and nodes[table[1]][0] == "Str" else text(args[0])
            return f"{name}[{text(args[1])}]"
        if tag == "Table":
            entries = nodes[args[1]][1:] if nodes[args[1]][0] == "Tuple" else ()
            return "{" + ", ".join(f"{data[nodes[p][1]]}: {text(nodes[p][2])}" for p in entries
                                   if nodes[p][0] == "Tuple" and len(nodes[p]) == 3) + "}"
        if tag == "TextSet":
            return "[" + ", ".join(text(a) for a in args) + "]"
        if tag in ("Tuple", "Pair"):
            return "(" + ", ".join(text(a) for a in args) + ")"
        return f"{tag}({', '.join(text(a) for a in args)})"  # floor(x), Mod(x, 3), Piecewise(...), Eq(x, 1)

    def wrapped(i: int, every: bool, always: bool = False) -> str:
        """In parentheses if compound (``every``: any infix node; else only a sum)."""
        inner = text(i)
        tag = nodes[i][0]
        compound = always or tag == "Add" or (every and (tag in _INFIX or tag in ("Pow", "Not")))
        return f"({inner})" if compound else inner

    return text(root)
