"""Sensitivity: how the target moves with each input, at the spec's point.

For each numeric input the target depends on: the symbolic partial derivative
(with the string/boolean choices fixed), its value at the point (bytes per unit),
the elasticity ∂ln M/∂ln x, and the ratio M(2x)/M(x) — the seed's "batch ×2 → ×2,
seq ×2 → ×4" table, computed instead of guessed. Inputs are ranked by |elasticity|.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from sympy import Basic, Derivative, Integer, diff

from .errors import EngineError
from .explain import specialise
from .focus import NUMERIC_UNITS, default_total, focus, _resolve_output
from .load import Problem

__all__ = ["Sensitivity", "InputSensitivity", "sensitivity"]


@dataclass(frozen=True)
class InputSensitivity:
    name: str
    at: Basic  # the input's value at the point
    derivative: str  # ∂target/∂name, symbolic
    slope: Basic  # its value at the point (bytes per unit of the input)
    elasticity: Optional[float]
    doubling_ratio: Optional[float]  # target(2x) / target(x)


@dataclass(frozen=True)
class Sensitivity:
    target: str
    value: Basic  # the target at the point
    expression: str  # the target, specialised to the choices
    at: Dict[str, Basic]
    inputs: Tuple[InputSensitivity, ...]  # ranked by |elasticity|

    def as_dict(self) -> dict:
        from .report import to_python

        return {
            "target": self.target,
            "value": to_python(self.value),
            "expression": self.expression,
            "at": {n: to_python(v) for n, v in self.at.items()},
            "inputs": {
                i.name: {
                    "expression": self.expression,
                    "derivative": i.derivative,
                    "value": to_python(i.slope),
                    "elasticity": i.elasticity,
                    "doubling_ratio": i.doubling_ratio,
                }
                for i in self.inputs
            },
        }


def sensitivity(problem: Problem, target: Optional[str] = None) -> Sensitivity:
    rs = problem.ruleset
    # The sum of parts by default: the peak's symbolic derivatives take minutes (--peak asks for them).
    target = _resolve_output(problem, target or default_total(problem), "--target")
    expression, _ = specialise(rs, target, problem.bindings)
    rows: List[InputSensitivity] = []
    at: Dict[str, Basic] = {}
    value = None
    for name in rs.inputs_of(target):
        if rs.unit(name) not in NUMERIC_UNITS or rs.allowed_values(name) is not None:
            continue
        try:
            fx = focus(problem, name, target)
        except EngineError:
            continue
        if fx.at is None or not getattr(fx.at, "is_number", False):
            continue
        x0 = fx.at
        f0 = fx.at_value(x0)
        value = f0
        at[name] = x0
        derivative = diff(fx.expr, fx.symbol)
        # an unevaluated Derivative (of a count's floor, say) has no value at a number: step instead
        slope = derivative.xreplace({fx.symbol: x0}) if not derivative.has(Derivative) else derivative
        if not slope.is_number:
            slope = fx.at_value(x0 + 1) - f0  # a step where the derivative is not defined (ceil, Piecewise)
        elasticity = float(x0 * slope / f0) if f0 != 0 else None
        try:
            doubled = fx.at_value(2 * x0) if fx.feasible(2 * x0) else None
            ratio = float(doubled / f0) if doubled is not None and doubled.is_number and f0 != 0 else None
        except (TypeError, ValueError, ZeroDivisionError):
            ratio = None
        symbolic = diff(expression, fx.symbol) if fx.symbol in expression.free_symbols else Integer(0)
        rows.append(InputSensitivity(name, x0, str(symbolic), slope, elasticity, ratio))
    rows.sort(key=lambda r: -abs(r.elasticity or 0))
    if value is None:
        from .evaluate import evaluate

        value = evaluate(rs, problem.bindings).require(target)
    return Sensitivity(target, value, str(expression), at, tuple(rows))
