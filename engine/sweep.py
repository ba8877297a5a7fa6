"""Sweep: one or more outputs over a range of one input, vectorised.

Each output is reduced to a function of the input (engine/focus.py) and compiled
once with SymPy's ``lambdify`` to NumPy, then evaluated on the whole grid:
10^6 points take well under a second. Whole-number outputs come back as exact
integers where float64 holds them exactly (below 2^53), checked against exact
evaluation at the ends and the middle of the range.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

from sympy import Integer, Rational, lambdify

from .errors import Location, SolveError
from .focus import focus
from .load import Problem
from .units import NumberTooLarge, parse_quantity

__all__ = ["Range", "SweepResult", "parse_range", "sweep", "MAX_POINTS"]

MAX_POINTS = 10_000_000  # a sweep larger than this is refused


@dataclass(frozen=True)
class Range:
    name: str
    start: Rational
    stop: Rational
    step: Optional[Rational]  # arithmetic step, or None for a geometric one
    factor: Optional[int]  # "x2"
    text: str

    def count(self) -> int:
        if self.factor:
            return int(math.floor(math.log(self.stop / self.start, self.factor) + 1e-9)) + 1
        return int((self.stop - self.start) // self.step) + 1

    def values(self):
        """The grid: a NumPy array when NumPy is there, else a list."""
        n = self.count()
        whole = self.start.q == 1 and (self.step is None or self.step.q == 1)
        try:
            import numpy as np
        except ImportError:  # pragma: no cover - exercised without the plot extra
            np = None
        if self.factor:
            values = [self.start * self.factor**k for k in range(n)]
            if np is not None:
                return np.array([int(v) if whole else float(v) for v in values],
                                dtype=np.int64 if whole and values[-1] < 2**62 else float)
            return values
        if np is not None:
            if whole:
                return np.arange(int(self.start), int(self.start) + n * int(self.step), int(self.step), dtype=np.int64)
            return float(self.start) + float(self.step) * np.arange(n, dtype=float)
        return [self.start + k * self.step for k in range(n)]


def parse_range(text: str) -> Range:
    """``s=512:8192:512`` (STOP inclusive), ``s=512:32768:x2`` (geometric), ``b=1:64``."""
    loc = Location("sweep", None, 1, text, len(text))
    m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([^:]+):([^:]+)(?::([^:]+))?\s*", text)
    if not m:
        raise SolveError(f"'{text}' is not a range", loc, hint="write NAME=START:STOP[:STEP], e.g. s=512:8192:512 or s=512:32768:x2")
    name, start_t, stop_t, step_t = m.groups()

    def number(part: str, what: str) -> Rational:
        try:
            parsed = parse_quantity(part.strip())
        except NumberTooLarge:
            parsed = None
        if parsed is None:
            raise SolveError(f"the {what} '{part.strip()}' of the range is not a number", loc)
        v = parsed[0]
        return Rational(v.numerator, v.denominator)

    start, stop = number(start_t, "start"), number(stop_t, "stop")
    if stop < start:
        raise SolveError(f"the range stops ({stop}) before it starts ({start})", loc, hint="write NAME=START:STOP with START <= STOP")
    factor = step = None
    if step_t is not None and step_t.strip().lower().startswith("x"):
        try:
            factor = int(step_t.strip()[1:])
        except ValueError:
            raise SolveError(f"'{step_t}' is not a geometric step", loc, hint="x2 doubles, x10 multiplies by ten") from None
        if factor < 2:
            raise SolveError("a geometric step must multiply by 2 or more", loc)
        if start <= 0:
            raise SolveError("a geometric range must start above 0", loc)
    else:
        step = number(step_t, "step") if step_t is not None else Integer(1)
        if step <= 0:
            raise SolveError(f"the step must be positive, not {step}", loc)
    rng = Range(name, start, stop, step, factor, text)
    if rng.count() > MAX_POINTS:
        raise SolveError(f"{rng.count():,} points is more than the limit of {MAX_POINTS:,}", loc,
                         hint="use a larger step or a geometric one (x2)")
    return rng


@dataclass(frozen=True)
class SweepResult:
    name: str
    unit: Optional[str]
    xs: object  # array or list
    columns: Dict[str, object]  # target → array or list of values
    units: Dict[str, Optional[str]]
    exact: Dict[str, bool]  # target → values are exact integers

    def rows(self):
        cols = list(self.columns)
        for i in range(len(self.xs)):
            yield [self.xs[i]] + [self.columns[c][i] for c in cols]

    def as_dict(self) -> dict:
        def py(v):
            if hasattr(v, "item"):
                v = v.item()
            return int(v) if isinstance(v, float) and v.is_integer() else v

        return {
            "for": self.name,
            "targets": list(self.columns),
            "units": {k: u for k, u in self.units.items()},
            "values": [py(x) for x in self.xs],
            "outputs": {t: [py(v) for v in col] for t, col in self.columns.items()},
        }


def sweep(problem: Problem, rng: Range, targets: Sequence[Optional[str]] = (None,)) -> SweepResult:
    xs = rng.values()
    columns, units, exact = {}, {}, {}
    name = None
    for target in targets or (None,):
        fx = focus(problem, rng.name, target)
        name = fx.name
        columns[fx.target], exact[fx.target] = _tabulate(fx, xs)
        units[fx.target] = problem.ruleset.unit(fx.target)
    return SweepResult(name, problem.ruleset.unit(name), xs, columns, units, exact)


def _tabulate(fx, xs):
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None
    if np is None:  # without NumPy: exact evaluation point by point (slower, same values)
        return [fx.at_value(Integer(x) if float(x).is_integer() else Rational(str(x))) for x in xs], True
    f = lambdify(fx.symbol, fx.expr, modules="numpy")
    with np.errstate(all="ignore"):
        values = np.asarray(f(xs.astype(float) if xs.dtype.kind == "i" else xs), dtype=float)
    if values.shape != np.shape(xs):  # a constant expression
        values = np.full(np.shape(xs), float(values))
    # Whole numbers of bytes: exact integers while float64 holds them exactly.
    probes = sorted({0, len(xs) // 2, len(xs) - 1})
    whole = np.all(np.isfinite(values)) and np.nanmax(np.abs(values)) < 2**53
    if whole:
        for i in probes:
            x = xs[i].item()
            exact_value = fx.at_value(Integer(x) if float(x).is_integer() else Rational(str(x)))
            if not (exact_value.is_Integer and int(exact_value) == values[i]):
                whole = False
                break
    if whole:
        return np.rint(values).astype(np.int64), True
    return values, False
