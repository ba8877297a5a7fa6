"""Sweep: one or more outputs over a range of one input, vectorised.

Each output is reduced to a function of the input (engine/focus.py) and
evaluated on the whole grid at once by engine/vectorise.py, which walks the SymPy
expression with NumPy — no code is generated from the formulas: 10^6 points take
well under a second. Whole-number outputs come back as exact integers where
float64 holds them exactly (below 2^53), checked against exact evaluation.

A range is checked before anything is computed: its points are finite numbers of
at most 2^53 in size (at most 10^7 of them, a geometric factor of at most 1024),
whole numbers for counts and bytes, and every point must meet the formulas'
requirements that involve the input (``tp`` must divide ``a``...), as direct
evaluation would demand; the first point that does not is named, with a range
that avoids it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Dict, Optional, Sequence, Tuple

from .errors import EvaluationError, InvalidValue, Location, RequirementNotMet, SolveError, TypeMismatch
from .focus import Focus, focus
from .problem import Problem
from .units import NumberTooLarge, parse_quantity
from .values import exact_number

__all__ = ["Range", "SweepResult", "parse_range", "sweep", "json_value", "MAX_POINTS", "MAX_VALUE", "MIN_MAGNITUDE",
           "MAX_FACTOR"]

MAX_POINTS = 10_000_000  # a sweep larger than this is refused
MAX_VALUE = 2**53  # the largest size of a point: float64 holds every whole number up to it exactly
MIN_MAGNITUDE = Fraction(1, 2**53)  # the smallest size of a non-zero start, stop or step
MAX_FACTOR = 1024  # the largest geometric step (x1024)

_BOUND_TEXT = "2^53 = 9,007,199,254,740,992"


@dataclass(frozen=True)
class Range:
    name: str
    start: Fraction
    stop: Fraction
    step: Optional[Fraction]  # arithmetic step, or None for a geometric one
    factor: Optional[int]  # "x2"
    text: str
    # (column, width) in `text` of the name, start, stop, step and of START:STOP[:STEP] (1-based)
    spans: Tuple[Tuple[int, int], ...] = ()
    kinds: Tuple[Optional[str], ...] = ()  # the unit written on start, stop, step: "bytes", "count" or None

    def count(self) -> int:
        if self.factor:
            # the largest k with start * factor^k <= stop, exactly (a float log misses by one near powers)
            ratio = self.stop / self.start
            bits = ratio.numerator.bit_length() - ratio.denominator.bit_length()  # log2(ratio), to within 1
            k = max(0, (bits - 1) // self.factor.bit_length())  # no more than the answer
            while k > 0 and self.factor ** k > ratio:
                k -= 1
            while self.factor ** (k + 1) <= ratio:
                k += 1
            return k + 1
        return int((self.stop - self.start) // self.step) + 1

    def point(self, k: int) -> Fraction:
        """The k-th point, exactly."""
        if self.factor:
            return self.start * self.factor ** k
        return self.start + k * self.step

    @property
    def whole(self) -> bool:
        return self.start.denominator == 1 and (self.step is None or self.step.denominator == 1)

    def values(self):
        """The grid: a NumPy array when NumPy is there (int64 for whole points), else a list."""
        n = self.count()
        try:
            import numpy as np
        except ImportError:  # pragma: no cover - exercised without the plot extra
            return [self.point(k) for k in range(n)]
        if self.factor:
            points = [self.point(k) for k in range(n)]
            if self.whole:
                return np.array([int(v) for v in points], dtype=np.int64)
            return np.array([_to_float(v) for v in points], dtype=float)
        if self.whole:
            start, step = int(self.start), int(self.step)
            return np.arange(start, start + n * step, step, dtype=np.int64)
        # (A + k·B) / D with whole A, B: each point is the float nearest the exact one
        # (parse_range keeps |A + k·B| within 2^53, where float64 is exact for whole numbers).
        d = math.lcm(self.start.denominator, self.step.denominator)
        a, b = int(self.start * d), int(self.step * d)
        return (a + b * np.arange(n, dtype=float)) / d

    def part(self, part: str) -> str:
        """The text of ``part`` (name, start, stop, step, range) as written."""
        index = ("name", "start", "stop", "step", "range").index(part)
        if index >= len(self.spans):
            return self.text
        column, width = self.spans[index]
        return self.text[column - 1:column - 1 + width]

    def location(self, part: str = "range") -> Location:
        """Where in the range's text ``part`` (name, start, stop, step, range) is."""
        index = ("name", "start", "stop", "step", "range").index(part)
        column, width = self.spans[index] if index < len(self.spans) else (1, len(self.text))
        return Location("sweep", None, column, self.text, max(1, width))


def _to_float(v: Fraction) -> float:
    try:
        return v.numerator / v.denominator
    except OverflowError:
        return math.inf if v > 0 else -math.inf


def parse_range(text: str) -> Range:
    """``s=512:8192:512`` (STOP inclusive), ``s=512:32768:x2`` (geometric), ``b=1:64``.
    A range that cannot be read raises a :class:`RangeError` (a SpecError): RangeSyntaxError,
    InvalidValue[RangeError] or LimitExceeded[RangeError], with the range's ``text`` and the ``part`` at fault."""
    from .errors import InvalidValue, LimitExceeded, RangeError, RangeSyntaxError

    loc = Location("sweep", None, 1, text, len(text))
    m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([^:]+):([^:]+)(?::([^:]+))?\s*", text)
    if not m:
        raise RangeSyntaxError(f"'{_clip(text)}' is not a range", loc,
                               hint="write NAME=START:STOP[:STEP], e.g. s=512:8192:512 or s=512:32768:x2",
                               text=text, part="range")
    name, start_t, stop_t, step_t = m.groups()

    def span(group: int) -> Tuple[int, int]:
        if m.group(group) is None:  # no step: an empty span after the stop
            return (m.end(3) + 1, 0)
        part = m.group(group)
        lead = len(part) - len(part.lstrip())
        return (m.start(group) + lead + 1, max(1, len(part.strip())))

    values_end = m.end(4 if step_t is not None else 3)
    spans = (span(1), span(2), span(3), span(4), (m.start(2) + 1, values_end - m.start(2)))

    def at(group: int) -> Location:
        column, width = spans[group - 1]
        return Location("sweep", None, column, text, width)

    kinds = {}
    syntax = RangeSyntaxError
    invalid = InvalidValue[RangeError]
    limit = LimitExceeded[RangeError]

    def number(part: str, what: str, group: int) -> Fraction:
        try:
            parsed = parse_quantity(part.strip())
        except NumberTooLarge:
            raise limit(f"the {what} '{_clip(part)}' of the range is too large: sweep values are at most "
                        f"{_BOUND_TEXT} in size", at(group), text=text, part=what, what="value",
                        limit=MAX_VALUE) from None
        if parsed is None:
            raise syntax(f"the {what} '{_clip(part)}' of the range is not a number", at(group),
                         hint="points are finite numbers such as 512, 1.5, 4K or 2GiB", text=text, part=what)
        v, kinds[what] = parsed
        value = Fraction(v)
        written = _clip(part)
        if abs(value) > MAX_VALUE:
            raise limit(f"the {what} {written} of the range is beyond the bound of a sweep: "
                        f"values are at most {_BOUND_TEXT} in size", at(group),
                        hint="float64 holds whole numbers exactly only up to 2^53; sweep a smaller range",
                        text=text, part=what, what="value", limit=MAX_VALUE, amount=value)
        if value != 0 and abs(value) < MIN_MAGNITUDE:
            raise limit(f"the {what} {written} of the range is too small: non-zero values are at least "
                        f"2^-53 in size", at(group), text=text, part=what, what="smallness", limit=MIN_MAGNITUDE,
                        amount=value)
        return value

    start, stop = number(start_t, "start", 2), number(stop_t, "stop", 3)
    if stop < start:
        raise invalid(f"the range stops ({_show(stop)}) before it starts ({_show(start)})", at(5),
                      hint="write NAME=START:STOP with START <= STOP", text=text, part="range", name="stop",
                      value=stop, expected=f"at least the start, {_show(start)}")
    factor = step = None
    if step_t is not None and step_t.strip().lower().startswith("x"):
        digits = step_t.strip()[1:]
        if not re.fullmatch(r"[0-9]{1,5}", digits):
            raise syntax(f"'{_clip(step_t)}' is not a geometric step", at(4),
                         hint="x2 doubles, x10 multiplies by ten", text=text, part="step")
        factor = int(digits)
        if factor < 2:
            raise invalid("a geometric step must multiply by 2 or more", at(4), text=text, part="step", name="step",
                          value=factor, expected="x2 or more")
        if factor > MAX_FACTOR:
            raise limit(f"a geometric step multiplies by at most {MAX_FACTOR}, not {factor}", at(4),
                        hint="x2 doubles, x10 multiplies by ten", text=text, part="step", what="factor",
                        limit=MAX_FACTOR, amount=factor)
        if start <= 0:
            raise invalid("a geometric range must start above 0", at(2), text=text, part="start", name="start",
                          value=start, expected="above 0")
    else:
        step = number(step_t, "step", 4) if step_t is not None else Fraction(1)
        if step <= 0:
            raise invalid(f"the step must be positive, not {_show(step)}", at(4) if step_t is not None else at(5),
                          text=text, part="step" if step_t is not None else "range", name="step", value=step,
                          expected="above 0")
        d = math.lcm(start.denominator, step.denominator)
        if d > 1 and max(abs(start), abs(stop)) * d > MAX_VALUE:
            raise limit(f"the points of {_clip(text[m.start(2):values_end], 48)} are finer than "
                        f"float64 can tell apart at {_show(max(abs(start), abs(stop)))}", at(5),
                        hint=f"with a step of {_show(step)}, keep the values below {_show(Fraction(MAX_VALUE, d))}"
                             f" (the values times the step's denominator are at most 2^53)",
                        text=text, part="range", what="precision", limit=MAX_VALUE,
                        amount=max(abs(start), abs(stop)) * d)
    rng = Range(name, start, stop, step, factor, text, spans,
                tuple(kinds.get(what) for what in ("start", "stop", "step")))
    if rng.count() > MAX_POINTS:
        raise limit(f"{rng.count():,} points is more than the limit of {MAX_POINTS:,}", at(5),
                    hint="use a larger step or a geometric one (x2)", text=text, part="range", what="points",
                    limit=MAX_POINTS, amount=rng.count())
    return rng


def _clip(text: str, width: int = 24) -> str:
    text = text.strip()
    return text if len(text) <= width else text[: width - 3] + "..."


def _show(value) -> str:
    """A point as a range would write it: 3, 2.5, 1e-05 (a float's digits where not a short decimal)."""
    value = Fraction(value) if isinstance(value, (int, float, Fraction)) else exact_number(value)
    if value.denominator == 1:
        return str(value.numerator)
    q = value.denominator
    while q % 2 == 0:
        q //= 2
    while q % 5 == 0:
        q //= 5
    if q == 1 and len(str(value.denominator)) <= 20:
        with localcontext() as ctx:
            ctx.prec = len(str(abs(value.numerator))) + len(str(value.denominator)) + 2
            text = format(Decimal(value.numerator) / Decimal(value.denominator), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return repr(_to_float(value))


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

    def as_dict(self, column=None) -> dict:
        """The JSON shape; ``column`` turns a column (the grid, an output) into what stands for
        it (by default the list of its values as JSON numbers, :func:`json_value`)."""
        column = column or (lambda values: [json_value(v) for v in values])
        return {
            "for": self.name,
            "targets": list(self.columns),
            "units": {k: u for k, u in self.units.items()},
            "values": column(self.xs),
            "outputs": {t: column(col) for t, col in self.columns.items()},
        }


def json_value(v):
    """A value of a sweep as a JSON number: an int where it is whole, None beyond float64."""
    if hasattr(v, "item"):
        v = v.item()
    exact = exact_number(v) if not isinstance(v, (int, float)) else None
    if exact is not None:  # an exact value (a column constant over the range): a number
        v = int(exact) if exact.denominator == 1 else float(exact)
    if isinstance(v, float) and not math.isfinite(v):
        return None  # beyond float64 (or no real value): JSON has no inf
    return int(v) if isinstance(v, float) and v.is_integer() else v


def sweep(problem: Problem, rng: Range, targets: Sequence[Optional[str]] = (None,)) -> SweepResult:
    try:
        foci = [focus(problem, rng.name, target) for target in targets or (None,)]
    except SolveError as exc:
        if exc.location is None or exc.location.path != "--for":
            raise
        # the input was named in the range, not with --for: point there (the same kind, with its facts)
        raise exc.relocated(rng.location("name")) from None
    _check_units(foci[0], rng)
    _check_whole(foci[0], rng)
    xs = rng.values()
    grid = xs.astype(float) if hasattr(xs, "astype") else xs  # float64 once, for every evaluation
    _check_requirements(foci[0], rng, xs, grid)
    _check_sign(foci[0], rng)
    columns, units, exact = {}, {}, {}
    for fx in foci:
        columns[fx.target], exact[fx.target] = _tabulate(fx, xs, rng, grid)
        units[fx.target] = problem.ruleset.unit(fx.target)
    name = foci[0].name
    return SweepResult(name, problem.ruleset.unit(name), xs, columns, units, exact)


# --- the range against the input's domain ---------------------------------------


def _check_units(fx: Focus, rng: Range) -> None:
    """What a spec or --set refuses: memory written as a count, or a count as memory."""
    unit = fx.unit
    for part, kind in zip(("start", "stop", "step"), rng.kinds):
        wrong = (kind == "count" and unit == "bytes") or (kind == "bytes" and unit in ("count", "ratio"))
        if wrong:
            found = "a count" if kind == "count" else "memory"
            expected = "memory" if unit == "bytes" else "a count" if unit == "count" else "a plain number"
            raise TypeMismatch[SolveError](f"the {part} '{rng.part(part)}' of the range is "
                                           f"{'a count (K/M/B/T = 10^3..10^12)' if kind == 'count' else 'memory'}, "
                                           f"but {fx.name} is {expected}",
                                           rng.location(part),
                                           hint='give a byte unit, for example "24GiB" or "80GB"' if unit == "bytes"
                                           else "write a plain number", expected=expected, found=found)


def _check_sign(fx: Focus, rng: Range) -> None:
    """What a spec or --set refuses: a negative count or memory size (after the formulas'
    requirements, which may say more: b >= 1)."""
    unit = fx.unit
    if unit in ("count", "bytes") and rng.start < 0:
        what = "a memory size" if unit == "bytes" else "a count"
        rest = rng.part("stop") + (f":{rng.part('step')}" if rng.part("step") else "")
        raise InvalidValue[SolveError](f"{fx.name} is {what}, which cannot be negative: the range starts at "
                                       f"{rng.part('start')}", rng.location("start"),
                                       hint=f"start at 0 or above, e.g. {fx.name}=0:{rest}", name=fx.name,
                                       value=rng.start, expected="at least 0")


def _check_whole(fx: Focus, rng: Range) -> None:
    """Counts and bytes take whole values: so must every point of the range."""
    if not fx.integer or rng.whole:
        return
    part, value = ("start", rng.start) if rng.start.denominator != 1 else ("step", rng.step)
    lo, hi = math.ceil(rng.start), math.floor(rng.stop)
    if rng.factor:
        hint = f"start at a whole number, e.g. {rng.name}={lo}:{rng.part('stop')}:x{rng.factor}"
    elif lo > hi:
        hint = f"no whole number lies between {_show(rng.start)} and {_show(rng.stop)}"
    else:
        step = max(1, math.ceil(rng.step))
        hint = f"sweep whole values, e.g. {rng.name}={lo}:{hi}" + (f":{step}" if step != 1 else "")
    raise InvalidValue[SolveError](f"{fx.name} takes whole values (unit {fx.unit}): the {part} {rng.part(part)} "
                                   f"of the range is not a whole number", rng.location(part), hint=hint, name=fx.name,
                                   value=value, expected="a whole number")


def _check_requirements(fx: Focus, rng: Range, xs, grid=None) -> None:
    """Every point meets the formulas' requirements that involve the input: vectorised,
    each offender confirmed exactly (and the ends and middle confirmed exactly too)."""
    if not _requirements(fx):
        return
    n = len(xs)
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - exact, point by point
        np = None
    if np is None:  # pragma: no cover
        for k in range(n):
            if not fx.feasible(rng.point(k)):
                _requirement_error(fx, rng, k, None)
        return
    grid = xs.astype(float) if grid is None else grid
    ok = np.ones(n, dtype=bool)
    for rule, condition in _on_grid(fx, grid, rng.location(), [c for _, c in _requirements(fx)], rng.whole, True):
        ok &= condition(f"the requirement '{_one_line(rule.doc or rule.text)}'", rule)
    for k in sorted({0, n // 2, n - 1}):  # exact at the probes, even where the floats agree
        if ok[k] and not fx.feasible(rng.point(k)):
            ok[k] = False
    for k in np.flatnonzero(~ok):
        if fx.feasible(rng.point(int(k))):
            ok[k] = True  # a float64 false alarm
        else:
            _requirement_error(fx, rng, int(k), ok)


def _requirement_error(fx: Focus, rng: Range, k: int, ok) -> None:
    x = rng.point(k)
    rule = fx.failing(x) or _requirements(fx)[0][0]  # called only where feasible() said no
    n = len(ok) if ok is not None else rng.count()
    notes = [f"{rule.where}: {_one_line(rule.text)}"]
    hint = "sweep only values the formulas accept"
    if ok is not None:
        import numpy as np

        bad = np.flatnonzero(~ok)
        shown = ", ".join(_show(rng.point(int(i))) for i in bad[:6]) + (", ..." if len(bad) > 6 else "")
        if n > 1:
            notes.append(f"{len(bad):,} of the {n:,} points {'breaks' if len(bad) == 1 else 'break'} "
                         f"the formulas' requirements: {shown}")
        better = _suggest(fx, rng, ok)
        if better:
            hint = f"sweep only values that meet them, e.g. {better}"
        elif not ok.any():
            hint = f"no point of {rng.text.strip()} meets them: sweep values the formulas accept"
    raise RequirementNotMet[SolveError](f"{fx.name} = {_show(x)} breaks a requirement of the formulas: "
                                        f"{_one_line(rule.doc or rule.text)}", rng.location("range"), notes=notes,
                                        hint=hint, rule=rule, values={fx.name: x})


def _suggest(fx: Focus, rng: Range, ok) -> Optional[str]:
    """A range whose every point is accepted, with as many points as can be found: the
    accepted points themselves if they are evenly spaced, else the longest geometric run
    (x2, x3, ... from the first accepted point) or the longest run of consecutive points."""
    import numpy as np

    good = np.flatnonzero(ok)
    if len(good) == 0:
        return None
    i0, i1 = int(good[0]), int(good[-1])
    name = rng.name

    def arithmetic(a: int, b: int, d: int) -> str:
        lo, hi = _show(rng.point(a)), _show(rng.point(b))
        if a == b:
            return f"{name}={lo}:{lo}"
        if rng.factor:
            return f"{name}={lo}:{hi}:x{rng.factor ** d}"
        step = rng.step * d
        return f"{name}={lo}:{hi}" + (f":{_show(step)}" if step != 1 else "")

    d = int(np.gcd.reduce(good - i0)) if len(good) > 1 else 1
    if ok[i0:i1 + 1:d].all() and (not rng.factor or rng.factor ** d <= MAX_FACTOR):
        return arithmetic(i0, i1, d)
    # the longest run of consecutive accepted points
    edges = np.flatnonzero(np.diff(np.concatenate(([0], ok.view(np.int8), [0]))))
    starts, ends = edges[0::2], edges[1::2] - 1
    longest = int(np.argmax(ends - starts))
    best, best_count = arithmetic(int(starts[longest]), int(ends[longest]), 1), int(ends[longest] - starts[longest]) + 1
    first = rng.point(i0)
    if first > 0 and not rng.factor:
        for f in range(2, 11):  # first, first·f, first·f², ... while the formulas accept them
            points, p = [], first
            while p <= rng.stop and len(points) < 64 and fx.feasible(p):
                points.append(p)
                p *= f
            if len(points) > best_count:
                best, best_count = f"{name}={_show(first)}:{_show(points[-1])}:x{f}", len(points)
    return best


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# --- the values --------------------------------------------------------------------


def _requirements(fx: Focus):
    """(rule, condition) of the requirements that involve the input: plain or residual where the
    residual holds the function (no SymPy), else SymPy's."""
    return fx.requirements_plain if fx.residual is not None else fx.requirements


def _on_grid(fx: Focus, grid, where, conditions, whole: bool, ascending: bool):
    """(rule, condition(what, rule) → boolean array) for each requirement, walked over the grid:
    the residual table where there is one (engine/vectorise.py's table walker), else SymPy's."""
    import numpy as np

    from .residual import Rest

    if fx.residual is not None:
        from .vectorise import TableVectorised

        roots = [c.i for c in conditions if isinstance(c, Rest)]
        walker = TableVectorised(fx.residual.table, fx.name, grid, where, roots, whole=whole, ascending=ascending)

        def condition(c):
            if isinstance(c, Rest):
                return lambda what, rule: walker.condition(c.i, what=what)
            return lambda what, rule: np.full(grid.shape, c is True, dtype=bool)  # decided at the point
    else:
        from .vectorise import Vectorised

        walker = Vectorised(fx.symbol, grid, where, conditions, whole=whole, ascending=ascending)

        def condition(c):
            return lambda what, rule: walker.condition(c, what=what)
    return [(rule, condition(c)) for rule, c in _requirements(fx)]


def target_on_grid(fx: Focus, grid, where, whole: bool = False, ascending: bool = False):
    """The target at every point of a float64 grid (NaN where it has no real value)."""
    import numpy as np

    from .residual import Rest

    what = f"'{fx.target}'"
    if fx.residual is not None:
        if not isinstance(fx.value, Rest):  # the same at every point
            from .vectorise import TableVectorised

            if isinstance(fx.value, bool) or not isinstance(fx.value, (int, Fraction)):
                raise TableVectorised(fx.residual.table, fx.name, grid, where).fail(
                    "a true/false condition where a number is expected" if isinstance(fx.value, bool)
                    else f"the value {fx.value!r}, which is not a number", found="a condition")
            return np.full(grid.shape, float(fx.value), dtype=np.float64)
        from .vectorise import TableVectorised

        return TableVectorised(fx.residual.table, fx.name, grid, where, [fx.value.i], whole=whole,
                               ascending=ascending).number(fx.value.i, what=what)
    from .vectorise import Vectorised

    return Vectorised(fx.symbol, grid, where, [fx.expr], whole=whole, ascending=ascending).number(fx.expr, what=what)


def _tabulate(fx: Focus, xs, rng: Optional[Range] = None, grid=None):
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None

    def exact_point(k: int):
        if rng is not None:
            return rng.point(k)
        x = xs[k].item() if hasattr(xs[k], "item") else xs[k]
        return Fraction(int(x)) if float(x).is_integer() else Fraction(str(x))

    if np is None:  # pragma: no cover - without NumPy: exact evaluation point by point (slower, same values)
        return [fx.at_value(exact_point(k)) for k in range(len(xs))], True
    where = rng.location() if rng is not None else Location("sweep")
    grid = xs.astype(float) if grid is None else grid
    values = target_on_grid(fx, grid, where, whole=rng is not None and rng.whole, ascending=rng is not None)
    # Whole numbers of bytes: exact integers while float64 holds them exactly (the largest
    # size below 2^53; NaN and inf fail the test), every value whole in float64, and the
    # exact values at the ends, the middle, the largest and the smallest agreeing.
    n = len(xs)
    top, bottom = int(np.argmax(values)), int(np.argmin(values))  # NaN, if any, is found by both
    if n == 0 or not max(values[top], -values[bottom]) < 2**53:
        return values, False
    ints = values.astype(np.int64)
    if not (ints == values).all():
        return values, False
    for k in sorted({0, n // 2, n - 1, top, bottom}):
        try:
            exact_value = fx.at_value(exact_point(k))
        except EvaluationError:  # too large to work out exactly: not a float64 integer either
            return values, False
        exact = exact_number(exact_value)
        if not (exact is not None and exact.denominator == 1 and int(exact) == int(ints[k])):
            return values, False
    return ints, True
