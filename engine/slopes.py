"""The slope of a focus at a point, exactly and without SymPy: forward-mode differentiation over
the residual node table.

``sensitivity`` (engine/derivatives.py) asks, for each input, ∂target/∂x at the input's value
x0. Its SymPy way builds the target with each max and min replaced by its argument that is
largest (smallest) at x0 (:meth:`~vram_eval.focus.Focus.branch_expr`), differentiates that and
substitutes x0; where the derivative holds an unevaluated ``Derivative`` (of a floor, a
ceiling, a Mod, an Abs) it takes the step f(x0+1) − f(x0) instead. :func:`slope_at` gives the
same answer from the residual table (engine/residual.py): each node's exact value at x0
(:meth:`~vram_eval.nodes.NodeTable.value`, ints and Fractions) and its derivative there, the
maxes and mins chosen as ``branch_expr`` chooses them, a piecewise node by the branch its
conditions take at x0.

It also says where SymPy's derivative would hold a ``Derivative`` (:data:`STEP`), following
what SymPy's constructors fold: a node whose chosen arguments do not involve the input is a
number, and a product with a zero factor is zero. Where that is not certain (a branch not
taken that holds a floor, which SymPy's piecewise might drop), and wherever the exact values
cannot answer (a power with the input in its exponent: a logarithm; a division by zero at x0;
a node of another kind), it gives None and the caller asks SymPy.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Optional, Union

from .nodes import FOLD, TooLarge, Unsupported
from .residual import Rest

__all__ = ["STEP", "slope_at"]


class _Step:
    def __repr__(self) -> str:
        return "STEP"


STEP = _Step()  # no derivative at the point (SymPy's would be unevaluated): the caller steps instead

# Nodes SymPy leaves as an unevaluated Derivative when differentiated in the input.
_ROUGH = frozenset({"floor", "ceiling", "Mod", "Abs"})
_NUMBERS = (int, Fraction)
_CONDITIONS = frozenset({"Lt", "Le", "Gt", "Ge", "Eq", "Ne", "And", "Or", "Not", "TextEq", "Member"})


class _Unanswered(Exception):
    """The exact way cannot say what SymPy's would: the caller asks SymPy."""


def slope_at(residual, value, name: str, x) -> Union[int, Fraction, _Step, None]:
    """∂value/∂name at ``name`` = ``x`` (an int or Fraction), as the SymPy way (see the module's
    docstring) computes it: an int or Fraction, :data:`STEP`, or None where only SymPy can say.
    ``residual`` is the focus's :class:`~vram_eval.residual.Residuals`, ``value`` the target in
    it (plain, or a :class:`~vram_eval.residual.Rest`)."""
    if value.__class__ is not Rest:
        return 0 if value.__class__ in _NUMBERS else None  # the target does not move with the input
    try:
        return _Slope(residual.table, name, x).slope(value.i)
    except (_Unanswered, Unsupported, TooLarge, ArithmeticError, TypeError, ValueError, LookupError,
            RecursionError):
        return None


class _Slope:
    """One input's pass over the table at one value: each node's shape (does it still involve the
    input once the maxes are chosen, would its SymPy derivative hold a Derivative) and slope."""

    def __init__(self, table, name: str, x) -> None:
        self.table = table
        self.nodes = table.nodes
        self.env = {name: x}
        self.memo: dict = {}  # the table's own memo of max, min and piecewise values at x
        self.chosen: dict = {}  # max/min node → the argument chosen
        self.taken: dict = {}  # piecewise node → the pair its conditions take at x
        self.shapes: dict = {}  # node → (live, moving, rough)
        self.slopes: dict = {}

    def value(self, i: int):
        return self.table.value(i, self.env, self.memo)

    def slope(self, root: int):
        rough = self.shape(root)[2]
        if rough is None:
            raise _Unanswered("a Derivative SymPy might fold away")
        if rough:
            return STEP
        return self.derivative(root)

    def choose(self, i: int) -> int:
        """The argument of max (min) node ``i`` that is largest (smallest) at x, the first if
        several are: as Focus.branch_expr chooses it."""
        picked = self.chosen.get(i)
        if picked is None:
            node = self.nodes[i]
            values = [self.value(a) for a in node[1:]]
            best = max(values) if node[0] == "Max" else min(values)
            picked = self.chosen[i] = node[1 + values.index(best)]
        return picked

    def shape(self, i: int):
        """(live, moving, rough) of node ``i`` as SymPy builds it with the maxes chosen, each True,
        False or None (not certain). live: does it involve the input (else SymPy makes it a
        number); moving: is its SymPy derivative other than zero; rough: does that derivative
        hold a Derivative."""
        known = self.shapes.get(i)
        if known is not None:
            return known
        node = self.nodes[i]
        tag = node[0]
        if tag == "Sym":
            out = (True, True, False)
        elif len(node) == 1 or tag in ("Int", "Q", "Text", "Str"):
            out = _CONSTANT
        elif tag in ("Max", "Min"):
            out = self.shape(self.choose(i))
        elif tag == "Piecewise":
            out = self._piecewise_shape(i, node)
        elif tag in _ROUGH:
            # SymPy's chain rule: an argument whose derivative is zero adds nothing; any other
            # leaves the function's derivative unevaluated
            shapes = [self.shape(a) for a in node[1:]]
            moving = _any([m for _, m, _ in shapes])
            out = (_any([live for live, _, _ in shapes]), moving, moving)
        elif tag == "Mul":
            shapes = [self.shape(a) for a in node[1:]]
            if any(live is False and self.value(a) == 0 for a, (live, _, _) in zip(node[1:], shapes)):
                out = _CONSTANT  # SymPy's product with a zero factor is zero
            elif any(live is None and self.value(a) == 0 for a, (live, _, _) in zip(node[1:], shapes)):
                raise _Unanswered("a factor that is zero here")
            else:
                out = _combined(shapes)
        elif tag == "Pow":
            base, exp = node[1:]
            base_shape, exp_shape = self.shape(base), self.shape(exp)
            if exp_shape[0] is False and self.value(exp) == 0:
                out = _CONSTANT  # b ** 0 is 1
            elif base_shape[0] is False and self.value(base) == 1:
                out = _CONSTANT  # 1 ** e is 1
            elif exp_shape[0] is not False:
                raise _Unanswered("the input in an exponent")  # a logarithm in the derivative
            else:
                out = base_shape
        elif tag == "Add":
            out = _combined([self.shape(a) for a in node[1:]])
        elif tag in _CONDITIONS:
            # a condition: never differentiated
            out = (_any([self.shape(a)[0] for a in node[1:]]), False, False)
        else:
            raise _Unanswered(tag)
        self.shapes[i] = out
        return out

    def _piecewise_shape(self, i: int, node):
        pairs = [self.nodes[p][1:] for p in node[1:]]
        taken = None
        for k, (_, cond) in enumerate(pairs):
            decided = self.value(cond)
            if decided.__class__ is not bool:
                raise _Unanswered("a condition without a value")
            if decided:
                taken = k
                break
        if taken is None:
            raise _Unanswered("no branch taken")
        self.taken[i] = pairs[taken][0]
        # every pair is built (and its maxes chosen), as build_choosing builds them
        values = [self.shape(v) for v, _ in pairs]
        conds = [self.shape(c)[0] for _, c in pairs]
        lives = [v[0] for v in values]
        if all(live is False for live in lives + conds):
            live = False
        elif all(live is False for live in lives):
            # numbers under conditions that move: SymPy folds equal ones into one
            same = self._same([v for v, _ in pairs])
            if same is False:
                live = True
            elif same and conds[-1] is False and self.value(pairs[-1][1]) is True:
                live = False  # one number whatever the conditions
            else:
                live = None
        else:
            live = _any(lives + conds)
        moving = _any([v[1] for v in values])  # SymPy's derivative: the branches' (zero if all are)
        rough = values[taken][2]
        if rough is not True and any(v[2] is not False for k, v in enumerate(values) if k != taken):
            rough = None  # a branch not taken that SymPy might drop (or keep)
        return (live, moving, rough)

    def _same(self, branches) -> Optional[bool]:
        """Are the branches (numbers) all one value? None where one has no value here."""
        try:
            values = [self.value(v) for v in branches]
        except (Unsupported, TooLarge, ArithmeticError, TypeError, ValueError, LookupError):
            return None
        if any(v.__class__ not in _NUMBERS for v in values):
            return None
        return len(set(values)) == 1

    def derivative(self, i: int):
        """∂node/∂x at x, for a node whose shape is not rough."""
        known = self.slopes.get(i)
        if known is not None:
            return known
        live, moving, rough = self.shape(i)
        if live is not True or moving is False:
            return 0  # a number, constant branches, a floor of them: zero either way
        if rough is not False:
            raise _Unanswered("a Derivative")
        node = self.nodes[i]
        tag = node[0]
        if tag == "Sym":
            out = 1
        elif tag in ("Max", "Min"):
            out = self.derivative(self.choose(i))
        elif tag == "Piecewise":
            out = self.derivative(self.taken[i])
        elif tag == "Add":
            out = 0
            for a in node[1:]:
                out += self.derivative(a)
        elif tag == "Mul":
            args = node[1:]
            values = [self.value(a) for a in args]
            out = 0
            for k, a in enumerate(args):
                d = self.derivative(a)
                if d:
                    term = d
                    for j, v in enumerate(values):
                        if j != k:
                            term *= v
                    out += term
        elif tag == "Pow":
            base, exp = node[1:]
            n = self.value(exp)
            if n.__class__ not in _NUMBERS or n != int(n):
                raise _Unanswered("a fractional power")
            n = int(n)
            out = n * FOLD["Pow"](self.value(base), n - 1) * self.derivative(base)
        else:
            raise _Unanswered(tag)
        if out.__class__ is Fraction and out.denominator == 1:
            out = out.numerator
        self.slopes[i] = out
        return out


_CONSTANT = (False, False, False)


def _combined(shapes):
    """A sum's or a product's shape from its terms' (factors')."""
    return tuple(_any([shape[k] for shape in shapes]) for k in range(3))


def _any(flags) -> Optional[bool]:
    """True if any is True; else None if any is None (not certain); else False."""
    out: Optional[bool] = False
    for flag in flags:
        if flag is True:
            return True
        if flag is None:
            out = None
    return out
