"""Sensitivity: how the target moves with each input, at the spec's point.

For each numeric input the target depends on: the symbolic partial derivative
(with the string/boolean choices fixed), its value at the point (bytes per unit),
the elasticity ∂ln M/∂ln x, and the ratio M(2x)/M(x) — the seed's "batch ×2 → ×2,
seq ×2 → ×4" table, computed instead of guessed. Inputs are ranked by |elasticity|.

The target is the regime's peak over phases by default. A peak is the largest of its
phases: at the point it is the phase that reaches it, so its symbolic form (and each
derivative) is that phase's — the whole max over phases, expanded, takes minutes to
differentiate and says nothing more at the point. The values (slope, ×2) are the peak's own.

The numbers need no SymPy: each slope is worked out exactly from the input's residual table
(engine/slopes.py), with SymPy's derivative (:func:`sympy_slope`) only where that way cannot
answer. The symbolic form and the symbolic derivatives are built when first asked for (the
JSON report shows them; the table does not).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from sympy import Basic, Derivative, Integer, Max, Min, Symbol, diff

from .errors import EngineError
from .forward import evaluate
from .exact import TooLarge, Unsupported, evaluate_exact
from .specialise import specialise
from .focus import NUMERIC_UNITS, Focus, default_target, focus, _resolve_output
from .problem import Problem
from .regimes import PEAKS, TOTAL_OF_PEAK, phase_reached
from .slopes import STEP, slope_at
from .symbolic import sympy_value
from .values import plain_number

__all__ = ["Sensitivity", "InputSensitivity", "sensitivity", "sympy_slope", "table_inputs"]


@dataclass(frozen=True)
class InputSensitivity:
    name: str
    at: Basic  # the input's value at the point
    slope: Basic  # its value at the point (bytes per unit of the input)
    elasticity: Optional[float]
    doubling_ratio: Optional[float]  # target(2x) / target(x)


@dataclass(frozen=True)
class Sensitivity:
    target: str
    value: Basic  # the target at the point
    at: Dict[str, Basic]
    inputs: Tuple[InputSensitivity, ...]  # ranked by |elasticity|
    phase: Optional[Tuple[str, str]] = None  # a peak's: (label, output) of the phase that reaches it
    symbolic_of: Optional[Callable[[], Basic]] = field(default=None, repr=False, compare=False)

    @cached_property
    def symbolic(self) -> Basic:
        """The target, specialised to the choices (a peak: at the phase that reaches it); built
        when first asked for (seconds for a large target)."""
        return self.symbolic_of()

    @property
    def expression(self) -> str:
        return str(self.symbolic)

    def derivative(self, name: str) -> str:
        """∂target/∂name, symbolic (worked out when asked: seconds for a large target)."""
        symbol = Symbol(name)
        return str(diff(self.symbolic, symbol) if symbol in self.symbolic.free_symbols else Integer(0))

    def as_dict(self) -> dict:
        from .values import to_python

        expression = self.expression
        return {
            "target": self.target,
            "value": to_python(self.value),
            "expression": expression,
            "phase": None if self.phase is None else {"reached_at": self.phase[0], "output": self.phase[1]},
            "at": {n: to_python(v) for n, v in self.at.items()},
            "inputs": {
                i.name: {
                    "expression": expression,
                    "derivative": self.derivative(i.name),
                    "value": to_python(i.slope),
                    "elasticity": i.elasticity,
                    "doubling_ratio": i.doubling_ratio,
                }
                for i in self.inputs
            },
        }


def sensitivity(problem: Problem, target: Optional[str] = None) -> Sensitivity:
    target = _resolve_output(problem, target or default_target(problem), "--target")
    point = evaluate(problem)  # the phase reached, and the value at the point (the problem's point)
    phase = phase_reached(target, point.values)
    rows: List[InputSensitivity] = []
    at: Dict[str, Basic] = {}
    value = None
    for name, fx in table_inputs(problem, target):
        x0 = fx.at
        f0 = sympy_value(fx.at_value(x0))
        value = f0
        at[name] = x0
        x = plain_number(fx.at_plain)
        exact = slope_at(fx.residual, fx.value, name, x) if fx.residual is not None and x is not None else None
        if exact is None:
            slope = sympy_slope(fx, x0, f0)
        elif exact is STEP:
            slope = _step(fx, x0, f0)
        else:
            slope = sympy_value(exact)
        elasticity = float(x0 * slope / f0) if f0 != 0 else None
        try:
            doubled = sympy_value(fx.at_value(2 * x0)) if fx.feasible(2 * x0) else None
            ratio = float(doubled / f0) if doubled is not None and doubled.is_number and f0 != 0 else None
        except (TypeError, ValueError, ZeroDivisionError):
            ratio = None
        rows.append(InputSensitivity(name, x0, slope, elasticity, ratio))
    rows.sort(key=lambda r: -abs(r.elasticity or 0))
    if value is None:
        value = point.require(target)

    def symbolic() -> Basic:
        return _at_phase(problem, target, phase[1]) if phase else specialise(problem, target)[0]

    return Sensitivity(target, value, at, tuple(rows), phase, symbolic)


def table_inputs(problem: Problem, target: str) -> Iterator[Tuple[str, Focus]]:
    """(input, its focus) for each input the sensitivity table has: a numeric input the target
    depends on, without a list of allowed values, that has a value at the point."""
    rs = problem.ruleset
    for name in rs.inputs_of(target):
        if rs.unit(name) not in NUMERIC_UNITS or rs.allowed_values(name) is not None:
            continue
        try:
            fx = focus(problem, name, target)
        except EngineError:
            continue
        if fx.at is not None and getattr(fx.at, "is_number", False):
            yield name, fx


def sympy_slope(fx, x0: Basic, f0: Basic) -> Basic:
    """∂target/∂x at x0 with SymPy: the target with its maxes (mins) at x0 chosen, differentiated
    and evaluated at x0; the step f(x0+1) − f(x0) where the derivative has no value there (an
    unevaluated Derivative of a floor or a ceiling, an undecided Piecewise). ``f0`` is f(x0)."""
    branch = fx.branch_expr(x0)
    derivative = diff(branch if branch is not None else _branch_at(fx.expr, fx.symbol, x0), fx.symbol)
    # an unevaluated Derivative (of a count's floor, say) has no value at a number: step instead
    slope = derivative.xreplace({fx.symbol: x0}) if not derivative.has(Derivative) else derivative
    return slope if slope.is_number else _step(fx, x0, f0)


def _step(fx, x0: Basic, f0: Basic) -> Basic:
    """f(x0+1) − f(x0): the slope where the derivative is not defined (a ceiling, a Piecewise)."""
    return sympy_value(fx.at_value(x0 + 1)) - f0


def _branch_at(expr: Basic, symbol: Symbol, x0: Basic) -> Basic:
    """``expr`` with each max (min) replaced by its argument that is largest (smallest) at
    ``symbol`` = x0, innermost first: the same slope at x0 where the extremum is strict, found
    without SymPy differentiating a max (Heaviside forms, seconds per input)."""
    point = {str(symbol): Fraction(int(x0.p), int(x0.q))} if x0.is_Rational else None

    def pick(e):
        if point is None:
            return e
        try:
            values = [evaluate_exact(arg, point) for arg in e.args]
            best = max(values) if isinstance(e, Max) else min(values)
        except (Unsupported, TooLarge, ArithmeticError, TypeError, ValueError, RecursionError):
            return e  # SymPy differentiates the max itself
        return e.args[values.index(best)]

    return expr.replace(lambda e: isinstance(e, (Max, Min)), pick)


def _at_phase(problem: Problem, peak: str, phase: str) -> Basic:
    """The peak's symbolic form where ``phase`` reaches it: the max over phases replaced by that
    phase, which is then expanded (the choices fixed as the point has them)."""
    rs = problem.ruleset
    phases = [output for _, output in PEAKS[TOTAL_OF_PEAK[peak]][2]]
    inner, fixed = specialise(problem, phase)
    outer = rs.expand(peak, fixed={n: v for n, v in fixed.items()}, keep=phases)
    reached = Symbol(phase)
    outer = outer.replace(lambda e: isinstance(e, Max) and reached in e.args, lambda e: reached)
    return outer.xreplace({reached: inner})
