"""The inverse question: the largest (or smallest) value of one input that keeps
an output within a budget.

The output is first reduced to a function of that input alone (engine/focus.py).
If it grows with the input the answer is the largest value that fits; if it
shrinks (dp, tp, zero_stage…) the smallest. Count-like inputs get whole numbers
checked exactly: the answer fits and the next one does not. Where the function is
a polynomial of degree 1 or 2, the closed form is given too, symbolic in the other
inputs; otherwise (Piecewise, ceil, max…) an exact integer search answers, and
says so. When nothing fits, the answer says which component alone is too big and
which change would fit, found by solving again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import List, Optional, Sequence, Tuple

from .errors import (EngineError, InvalidValue, Location, NoDependence, SolveError, SpecError, UnboundInput,
                     ValueTooLarge)
from .focus import Focus, focus
from .nodes import MAX_BITS
from .problem import Problem
from .regimes import REMEDIES, REMEDY_SOLVES, SMALLEST, TOTAL_OF_PEAK, components, job_of, remedy_entry

from .spec_types import Entry
from .units import format_bytes, parse_quantity, unit_hint

__all__ = ["Solution", "solve", "parse_budget", "SEARCH_LIMIT"]

# The search for a bound doubles up to this value; beyond it an input has no practical meaning.
SEARCH_LIMIT = 2**62
# Upward/downward scan for a value the formulas' requirements accept (e.g. tp must divide a).
SCAN_LIMIT = 100_000
# A target that is not monotonic is searched value by value up to this many values.
EXHAUSTIVE_LIMIT = 1_000_000


@dataclass(frozen=True)
class Solution:
    name: str
    target: str
    budget: int  # bytes
    budget_text: str
    value: Optional[object]  # int for counts and bytes, else a Fraction
    direction: str  # "largest" or "smallest"
    method: str
    closed_form: Optional[str] = None  # symbolic in the other inputs
    root: Optional[object] = None  # the real root at the spec's values (SymPy: it may be irrational)
    reason: Optional[str] = None
    target_at_value: Optional[object] = None
    next_value: Optional[object] = None  # the first value that does not fit
    target_at_next: Optional[object] = None
    next_invalid: Optional[str] = None  # why the formulas reject next_value (tp = 7 with 8 KV heads)
    notes: Tuple[str, ...] = ()
    suggestions: Tuple[str, ...] = ()
    unit: Optional[str] = None

    def as_dict(self) -> dict:
        """The DESIGN.md JSON shape, plus documented extras."""
        from .values import to_python

        return {
            "for": self.name,
            "target": self.target,
            "budget": self.budget,
            "value": to_python(self.value) if self.value is not None else None,
            "closed_form": self.closed_form,
            "reason": self.reason,
            "direction": self.direction,
            "method": self.method,
            "root": float(self.root) if self.root is not None else None,
            "target_at_value": to_python(self.target_at_value) if self.target_at_value is not None else None,
            "next_value": to_python(self.next_value) if self.next_value is not None else None,
            "target_at_next": to_python(self.target_at_next) if self.target_at_next is not None else None,
            "next_invalid": self.next_invalid,
            "notes": list(self.notes),
            "suggestions": list(self.suggestions),
        }


_MEMORY = "a memory size with a unit, such as 24GiB"


def parse_budget(text: str, where: str = "--budget") -> int:
    """'24GiB' → bytes. A budget must carry a memory unit."""
    loc = Location(where, None, 1, text, len(text))
    try:
        parsed = parse_quantity(text)
    except ValueError:
        parsed = None
    if parsed is None:
        fixed = unit_hint(text)
        raise InvalidValue[SolveError](f"'{text}' is not a memory size", loc,
                                       hint=f"did you mean '{text[: -len(fixed)].strip()}{fixed}'?" if fixed else
                                       "give a unit: KiB MiB GiB TiB (powers of 2) or KB MB GB TB (powers of 10), e.g. 24GiB",
                                       name="budget", value=text, expected=_MEMORY)
    value, kind = parsed
    if kind is None:
        raise InvalidValue[SolveError](f"the budget '{text}' has no unit", loc,
                                       hint=f"say {text}GiB (2^30 bytes) or {text}GB (10^9 bytes); the two differ by 7%",
                                       name="budget", value=text, expected=_MEMORY)
    if kind != "bytes":
        raise InvalidValue[SolveError](f"'{text}' is a count, not memory", loc, hint="memory units: GiB, GB, MiB, ...",
                                       name="budget", value=text, expected=_MEMORY)
    if value <= 0:
        raise InvalidValue[SolveError]("the budget must be positive", loc, name="budget", value=text, expected="above 0")
    return math.ceil(value)


def budgets(problem: Problem, budget_texts: Sequence[str] = (), gpu_ids: Sequence[str] = ()) -> List[Tuple[str, int]]:
    """(label, bytes) for each budget text (--budget) and catalog GPU (--gpu); the problem's GPU
    (its gpu_memory) if neither is given."""
    from .hardware import GPU_MEMORY, find_gpu

    out = [(text, parse_budget(text)) for text in budget_texts]
    for gpu_id in gpu_ids:
        gpu = find_gpu(gpu_id)
        out.append((gpu_label(gpu), gpu.usable_bytes))
    if not out:
        memory = problem.bindings.get(GPU_MEMORY)
        if memory is None:
            raise UnboundInput[SpecError]("solve needs a budget", Location("--budget"),
                                          hint="give --budget 24GiB, --gpu h100, or gpu = \"h100\" in the spec",
                                          name=GPU_MEMORY, missing=(GPU_MEMORY,))
        out.append((gpu_label(problem.gpu) if problem.gpu else GPU_MEMORY, int(memory.value)))
    return out


def gpu_label(gpu) -> str:
    """A catalog GPU as a budget's label: its id and usable memory, e.g. "l40s (46,068 MiB usable)"."""
    if gpu.reported_mib is not None:
        return f"{gpu.id} ({gpu.reported_mib:,} MiB usable)"
    return f"{gpu.id} ({gpu.memory}, no driver figure)"


def solve(problem: Problem, name: str, budget: int, target: Optional[str] = None, budget_text: Optional[str] = None,
          remedies: bool = True) -> Solution:
    fx = focus(problem, name, target)
    return _solve(fx, int(budget), budget_text or format_bytes(budget), remedies)


# ---------------------------------------------------------------------------


class _Fn:
    """The target at integer (or rational) points, exactly, memoised."""

    def __init__(self, fx: Focus) -> None:
        self.fx = fx
        self.memo = {}

    def __call__(self, x):
        if x not in self.memo:
            try:
                value = self.fx.at_value(x)
            except ValueTooLarge:
                value = BEYOND  # past 2^MAX_BITS: over any budget, and never worked out
            if value.__class__ not in (int, Fraction) and (not getattr(value, "is_number", False) or value.is_real is False
                                                    or value.is_finite is False):
                raise _Undefined(x)
            self.memo[x] = value
        return self.memo[x]


class _Undefined(Exception):
    pass


# Stands for a target too large to work out (2**s at s = 2^40): larger than any budget.
BEYOND = Fraction(2) ** (MAX_BITS + 1)


def _solve(fx: Focus, budget: int, budget_text: str, remedies: bool) -> Solution:
    f = _Fn(fx)
    notes: List[str] = []
    lo = _lowest(fx, f)
    direction, monotone = _direction(fx, f, lo)
    base = dict(name=fx.name, target=fx.target, budget=int(budget), budget_text=budget_text,
                direction=direction, unit=fx.unit)
    if direction == "flat":
        try:
            shown = f"; {fx.target} = {format_bytes(f(lo))}"
        except (_Undefined, EngineError):
            shown = ""
        raise NoDependence(
            f"{fx.target} does not change with {fx.name} at these values",
            Location("--for", None, 1, fx.name, len(fx.name)),
            hint=f"for example zero_stage only matters with dp > 1{shown}", target=fx.target, name=fx.name,
        )
    if not monotone:
        notes.append(f"{fx.target} is not monotonic in {fx.name}: every value was checked exactly")
        value = _exhaustive(fx, f, lo, budget, direction)
        method = "exact search of every value (not monotonic)"
    elif fx.integer:
        value = _integer_search(fx, f, lo, budget, direction)
        method = "exact integer search"
    else:
        value = _rational_search(fx, f, lo, budget, direction)
        method = "exact bisection"

    closed, root = _closed_form(fx, budget, direction)
    if _degree(fx) in (1, 2):
        method = f"closed form ({_kind(fx)}), checked by exact integer search"
    elif monotone:
        method += f" ({fx.target} has Piecewise/ceil/max or a high degree in {fx.name}: no closed form)"

    if value is _NONE_FIT:
        reason, suggestions = _why_nothing_fits(fx, f, lo, budget, direction, remedies)
        return Solution(**base, value=None, method=method, closed_form=closed, root=root, reason=reason,
                        notes=tuple(notes), suggestions=tuple(suggestions))
    if value is _UNBOUNDED:
        reason = (f"{fx.target} stays within {budget_text} for every {fx.name} up to {SEARCH_LIMIT:,}: "
                  f"no limit to report")
        return Solution(**base, value=None, method=method, reason=reason, notes=tuple(notes))

    nxt = value + 1 if direction == "largest" else value - 1
    at_next = invalid = None
    rejected = None if direction == "smallest" and nxt < lo else fx.failing(nxt)
    if direction == "smallest" and nxt < lo:
        nxt = None
    elif rejected is not None:  # tp = 7 with 8 KV heads: not a value that does not fit, not a value at all
        invalid = rejected.doc or f"requirement not met: {rejected.text}"
    else:
        try:
            at_next = f(nxt)
        except _Undefined:
            at_next = None
        if at_next is BEYOND:
            at_next = None
    notes += fx.warnings_at(value)  # the formulas' expectations (s beyond s_max)
    plain = (lambda v: int(v) if v is not None and fx.integer else v)  # noqa: E731 - ints for counts
    return Solution(**base, value=plain(value), method=method, closed_form=closed, root=root,
                    target_at_value=f(value), next_value=plain(nxt), target_at_next=at_next, next_invalid=invalid,
                    notes=tuple(notes))


_NONE_FIT = object()
_UNBOUNDED = object()


def _lowest(fx: Focus, f: _Fn) -> int:
    """The smallest value the input may take: 0 if the formulas accept it, else 1."""
    for candidate in (0, 1):
        if fx.feasible(candidate):
            try:
                f(candidate)
                return candidate
            except _Undefined:
                continue
    return 1


def _direction(fx: Focus, f: _Fn, lo: int):
    """('largest' if the target grows, 'smallest' if it shrinks, or 'flat'; monotone?)."""
    points = [lo + k for k in range(4)] + [lo + 2**k for k in range(2, 41, 2)]
    values = []
    for x in points:
        try:
            values.append(f(x))
        except _Undefined:
            break
    rising = any(b > a for a, b in zip(values, values[1:]))
    falling = any(b < a for a, b in zip(values, values[1:]))
    if not rising and not falling:
        return "flat", True
    if rising and falling:
        return ("largest" if values[-1] > values[0] else "smallest"), False
    return ("largest" if rising else "smallest"), True


def _integer_search(fx: Focus, f: _Fn, lo: int, budget: int, direction: str):
    fits = lambda x: f(x) <= budget  # noqa: E731
    if direction == "largest":
        if not fits(lo):
            return _NONE_FIT
        hi = max(lo, 1)
        while fits(hi):
            if hi > SEARCH_LIMIT:
                return _largest_accepted(fx, lo, hi) if not fx.feasible(hi) else _UNBOUNDED
            hi *= 2
        good, bad = lo, hi  # fits(good), not fits(bad)
        while bad - good > 1:
            mid = (good + bad) // 2
            good, bad = (mid, bad) if fits(mid) else (good, mid)
        value = _scan(fx, good, -1, lambda x: x >= lo)
        return _largest_accepted(fx, lo, good) if value is _NONE_FIT else value
    # smallest
    hi = max(lo, 1)
    while not fits(hi):
        if hi > SEARCH_LIMIT:
            return _NONE_FIT
        hi *= 2
    if fits(lo):
        return _scan(fx, lo, +1, fits)
    bad, good = lo, hi
    while good - bad > 1:
        mid = (good + bad) // 2
        bad, good = (bad, mid) if fits(mid) else (mid, good)
    return _scan(fx, good, +1, fits)


def _largest_accepted(fx: Focus, lo: int, fitting: int):
    """Everything from lo to ``fitting`` fits, but the requirements refuse ``fitting``: one bounds
    the input from above (max_model_len <= s_max, n_gpu_layers <= L + 1), and the answer is the
    largest value they accept below it."""
    if not fx.feasible(lo):
        return _NONE_FIT
    ok, no = lo, fitting
    while no - ok > 1:
        mid = (ok + no) // 2
        ok, no = (mid, no) if fx.feasible(mid) else (ok, mid)
    return _scan(fx, ok, -1, lambda x: x >= lo)


def _scan(fx: Focus, start, step: int, ok):
    """From ``start``, the first value the requirements accept (tp must divide a, ...)."""
    x = start
    for _ in range(SCAN_LIMIT):
        if not ok(x):
            return _NONE_FIT
        if fx.feasible(x):
            return x
        x += step
    return _NONE_FIT


def _exhaustive(fx: Focus, f: _Fn, lo: int, budget: int, direction: str):
    """Every value from lo on: in float64 with NumPy to find the candidates, then exactly."""
    try:
        import numpy as np
    except ImportError:  # without the plot extra: exact evaluation of fewer values
        candidates = [lo + k for k in range(10_000)]
    else:
        from .grid import target_on_grid  # walks the expression: no code is generated from it

        xs = np.arange(int(lo), int(lo) + EXHAUSTIVE_LIMIT, dtype=np.int64)
        values = target_on_grid(fx, xs.astype(float), Location("--target", None, 1, fx.target, len(fx.target)))
        near = values <= float(budget) * (1 + 1e-9)
        candidates = [int(x) for x in xs[near]]
    if direction == "largest":
        candidates = candidates[::-1]
    for x in candidates:
        try:
            if f(x) <= budget and fx.feasible(x):
                return x
        except _Undefined:
            continue
    return _NONE_FIT


def _rational_search(fx: Focus, f: _Fn, lo: int, budget: int, direction: str):
    """Bisection on exact rationals to 1e-9 relative, for inputs that need not be whole."""
    value = _integer_search(fx, f, lo, budget, direction)
    if value is _NONE_FIT or value is _UNBOUNDED:
        return value
    a, b = (Fraction(value), Fraction(value + 1)) if direction == "largest" else (Fraction(value - 1), Fraction(value))
    for _ in range(40):
        mid = (a + b) / 2
        if (f(mid) <= budget) == (direction == "largest"):
            a = mid
        else:
            b = mid
    return a if direction == "largest" else b


# What a rational function of the input is made of: a residual holding anything else (a
# piecewise, a max, a ceiling) has no closed form, and SymPy is not asked.
_RATIONAL_TAGS = frozenset({"Add", "Mul", "Pow", "Sym", "Int", "Q"})


def _equation(expr, x, budget):
    """The numerator of expr − budget over a common denominator, as a polynomial in x
    (so that c0 + c1/x = M is solved as well as c0 + c1·x = M), or None."""
    from sympy import Poly, fraction, together

    try:
        numerator, _ = fraction(together(expr - budget))
        poly = Poly(numerator, x)
    except Exception:  # Piecewise, ceil, max...: not a rational function of x
        return None
    return poly if poly.degree() >= 1 else None


def _degree(fx: Focus) -> Optional[int]:
    if fx.residual is not None and not fx.residual.tags(fx.value) <= _RATIONAL_TAGS:
        return None  # no closed form: SymPy is not needed
    from sympy import Symbol

    poly = _equation(fx.expr, fx.symbol, Symbol("M"))
    return poly.degree() if poly is not None else None


def _kind(fx: Focus) -> str:
    from sympy import Poly

    try:
        polynomial = Poly(fx.expr, fx.symbol).degree() >= 1
    except Exception:
        polynomial = False
    degree = _degree(fx)
    name = {1: "linear", 2: "quadratic"}.get(degree, f"degree {degree}")
    return f"{name} in {fx.name}" if polynomial else f"rational in {fx.name}: {name} after clearing the denominator"


def _closed_form(fx: Focus, budget: int, direction: str):
    """(symbolic solution or None, real root at the spec's values or None) for degree 1-2."""
    degree = _degree(fx)
    if degree not in (1, 2):
        return None, None
    poly = _equation(fx.expr, fx.symbol, budget)
    candidates = [r for r in _roots(poly) if r.is_real and r >= 0] if poly is not None else []
    # the smallest non-negative root: where the target crosses the budget
    root = min(candidates, key=lambda r: float(r)) if candidates else None
    try:
        solution = _symbolic_solution(fx, degree, direction)
    except (ArithmeticError, TypeError, ValueError, RecursionError):
        # SymPy could not build the expression in the sizes alone (a branch the numbers rule out,
        # built with them symbolic, compares nan): the answer stands, without its closed form
        solution = None
    return solution, root


def _roots(poly) -> list:
    """The exact roots of a degree 1 or 2 polynomial (the quadratic formula; SymPy's
    general `roots` would import half of SymPy on a cold start)."""
    from sympy import sqrt

    coeffs = poly.all_coeffs()
    if len(coeffs) == 2:
        return [-coeffs[1] / coeffs[0]]
    c2, c1, c0 = coeffs
    disc = c1**2 - 4 * c2 * c0
    if disc < 0:
        return []
    return [(-c1 - sqrt(disc)) / (2 * c2), (-c1 + sqrt(disc)) / (2 * c2)]


def _symbolic_solution(fx: Focus, degree: int, direction: str) -> Optional[str]:
    """x = ... in terms of the other inputs and the budget M (None if not rational there)."""
    from sympy import Symbol

    expr = _sizes_expression(fx)
    x, M = fx.symbol, Symbol("M")
    poly = _equation(expr, x, M)
    if poly is None or poly.degree() != degree:
        return None
    coeffs = poly.all_coeffs()
    if degree == 1:
        c1, c0 = coeffs
        solution = -c0 / c1
    else:
        from sympy import sqrt

        c2, c1, c0 = coeffs
        solution = (-c1 + sqrt(c1**2 - 4 * c2 * c0)) / (2 * c2)
    rounding = ("floor" if direction == "largest" else "ceiling") if fx.integer else ""
    return f"{x} = {rounding}({solution})" if rounding else f"{x} = {solution}"


def _sizes_expression(fx: Focus):
    """The target down to the inputs, with what only chooses a branch fixed at the spec's values
    (the strings, booleans and tables; then every name a remaining condition tests but the input:
    pp == 1, zero_stage >= 3, b > 1), so the closed form reads as arithmetic in the sizes. The
    choices are fixed rule by rule while expanding, so the branches they rule out are never built."""
    from sympy import Piecewise, Symbol

    from .specialise import choices

    rs = fx.problem.ruleset
    # an output the spec or --set gives (params = 7.5B) is solved as given: a name here
    expr = rs.expand(fx.target, fixed=choices(fx.problem, fx.target), keep=fx.problem.bindings)
    structural = set()
    for node in expr.atoms(Piecewise):
        for _, cond in node.args:
            structural |= {str(sym) for sym in getattr(cond, "free_symbols", ())}
    structural.discard(fx.name)
    if structural:
        expr = expr.xreplace({Symbol(n): v for n, v in _values_at_point(fx, structural).items()})
    return expr


def _values_at_point(fx: Focus, names) -> dict:
    values, _ = fx.problem.point.of(names)
    return {n: values[n] for n in names if n in values}


def _why_nothing_fits(fx: Focus, f: _Fn, lo: int, budget: int, direction: str, remedies: bool):
    x = lo if direction == "largest" else SEARCH_LIMIT
    shown_x = f"{fx.name} = {int(x):,}" if direction == "largest" else f"any {fx.name}"
    # a peak's phases each hold the weights, gradients and states: a part alone over the budget
    # is over it at the peak too
    parts = components(TOTAL_OF_PEAK.get(fx.target, fx.target))
    over = []
    if parts:
        values = fx.values_at([n for n in parts.values() if n in fx.problem.ruleset.rules], x)
        for row, out in parts.items():
            v = values.get(out)
            if v is None:
                continue
            if (v.__class__ in (int, Fraction) or getattr(v, "is_number", False)) and v > budget:
                over.append(f"{row} alone need{'s' if not row.endswith('s') else ''} {format_bytes(v)} > {format_bytes(budget)}")
    total = f(x) if direction == "largest" else None
    if over:
        reason = "nothing fits: " + "; ".join(over) + f" (at {shown_x})"
    elif total is not None:
        reason = f"nothing fits: {fx.target} is {format_bytes(total)} > {format_bytes(budget)} already at {shown_x}"
    else:
        reason = f"nothing fits: {fx.target} stays above {format_bytes(budget)} for {shown_x}"
    suggestions = _remedies(fx, budget) if remedies else []
    return reason, suggestions


def _remedies(fx: Focus, budget: int) -> List[str]:
    """Changes from the regime's REMEDIES (engine/regimes.py) under which something fits: each one
    alone, then — when none does — two together (QLoRA with gradient checkpointing), at most three;
    then the fewest GPUs the model can be split over (tp), the other inputs as given."""
    from itertools import combinations

    untried = []
    for key, val in REMEDIES.get(fx.target, []):
        current = fx.problem.bindings.get(key)
        if val == SMALLEST:
            tried = key == fx.name  # the question's own input
        else:
            tried = current is not None and _shown_setting(current.plain) == val
        if not tried:
            untried.append((key, val))
    # Changes on the same GPUs first; then more GPUs (tensor parallelism), on their own.
    same_gpus = [change for change in untried if change[1] != SMALLEST]
    found: List[str] = []
    for size in (1, 2):
        for changes in combinations(same_gpus, size):
            keys = [k for k, _ in changes]
            if len(set(keys)) < len(keys):
                continue  # two values of one input
            shown = _remedy_fits(fx, budget, changes)
            if shown is not None:
                found.append(shown)
            if len(found) >= 3:
                break
        if found:
            break
    for change in untried:
        if change[1] == SMALLEST:
            shown = _remedy_fits(fx, budget, [change])
            if shown is not None:
                found.append(shown)
    return found


def _shown_setting(value) -> str:
    """A bound value as a remedy's setting is written in jobs.toml: true, false, cpu, 3."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Fraction)) and value.denominator == 1:
        return str(value.numerator)
    return str(value).lower()


def _remedy_fits(fx: Focus, budget: int, changes) -> Optional[str]:
    """'--set k=v [--set k=v]: x = N fits', or None when nothing fits with those changes."""
    target = fx.target
    for key, val in changes:
        if key == "regime" and job_of(val) is not None:  # the same question of the other job: total or peak
            target = job_of(val).peak if fx.target in TOTAL_OF_PEAK else job_of(val).total
    try:
        trial = _with(fx.problem, *(remedy_entry(k, v) for k, v in changes if v != SMALLEST))
        for key, val in changes:
            if val == SMALLEST:  # the input's smallest value that fits, the question's input as given
                least = solve(trial, key, int(budget), target, remedies=False)
                if least.value is None:
                    return None
                changes = [(k, f"{int(least.value)}" if v == SMALLEST and k == key else v) for k, v in changes]
                trial = _with(trial, Entry(key, int(least.value), Location("remedy")))
        settings = " ".join(f"--set {k}={v}" for k, v in changes)
        answer_with = next((REMEDY_SOLVES[k] for k, _ in changes if k in REMEDY_SOLVES), None)
        if answer_with is not None and fx.name != answer_with:  # ZeRO-3 shards over dp: how many
            sol = solve(trial, answer_with, int(budget), target, remedies=False)
            return f"{settings} with {answer_with} >= {int(sol.value):,} fits" if sol.value is not None else None
        sol = solve(trial, fx.name, int(budget), target, remedies=False)
    except EngineError:
        return None
    if sol.value is None:
        return None
    shown = f"{int(sol.value):,}" if fx.integer else f"{float(sol.value):.6g}"
    return f"{settings}: {fx.name} = {shown} fits"


def _with(problem: Problem, *entries: Entry) -> Problem:
    """The problem with a remedy's settings: another point, sharing what they do not change."""
    return problem.changed(entries)
