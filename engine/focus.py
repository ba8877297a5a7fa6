"""One output as a function of one input, every other input bound.

The common ground of the inverse questions: ``solve`` looks for where the
function meets a budget, ``sensitivity`` differentiates it, ``sweep`` tabulates
it. The function is built by evaluating the rules with the input left as a
symbol, so it is exactly what ``vram-eval SPEC`` computes at any value.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Dict, List, Optional, Tuple

from sympy import Basic, Integer, Symbol
from sympy.logic.boolalg import And, BooleanAtom, Or, false, true

from .errors import (BindingError, EvaluationError, Location, NoDependence, SolveError, UnboundInput, UnknownName,
                     ValueTooLarge, WrongKind, closest, did_you_mean)
from .forward import check_requirements, dependents
from .symbolic import evaluate_values
from .guards import blame, check_memory
from .exact import MAX_BITS, MemoEnv, TooLarge, Unsupported, evaluate_exact, to_sympy_value
from .problem import Problem
from .rules import Rule
from .symbols import Text

__all__ = ["Focus", "focus", "default_target", "default_total", "NUMERIC_UNITS"]

NUMERIC_UNITS = (None, "count", "bytes", "ratio")


@dataclass(frozen=True)
class Focus:
    problem: Problem
    name: str  # the input, canonical
    target: str  # the output, canonical
    symbol: Symbol
    expr: Basic  # the target as an expression of `symbol` alone
    at: Optional[Basic]  # the input's value at the spec's point, if it has one
    requirements: Tuple[Tuple[Rule, Basic], ...]  # (rule, condition in `symbol`) that involve the input
    # (expectation, condition in `symbol`, {name it tests: value in `symbol`}): the warnings
    expectations: Tuple[Tuple[Rule, Basic, Dict[str, Basic]], ...] = ()

    @property
    def unit(self) -> Optional[str]:
        return self.problem.ruleset.unit(self.name)

    @property
    def integer(self) -> bool:
        """Counts and bytes take whole values."""
        return self.unit in ("count", "bytes")

    def at_value(self, x) -> Basic:
        """The target at ``x``, exactly (by exact.py where it can; a power too large to
        work out, such as 2**s at s = 2^40, is a located error, never a hang)."""
        value = _exact(x)
        if value.is_Rational:
            try:
                return to_sympy_value(evaluate_exact(self.expr, MemoEnv({self.name: Fraction(int(value.p), int(value.q))})))
            except TooLarge as exc:
                rule = self.problem.ruleset.rules.get(self.target)
                raise ValueTooLarge(
                    f"'{self.target}' is too large to work out exactly at {self.name} = {value} ({exc})",
                    rule.location if rule else None,
                    hint=f"exact values are limited to 2^{MAX_BITS}: is a power's exponent an input?", rule=rule,
                ) from None
            except (Unsupported, ArithmeticError, TypeError, ValueError, RecursionError):
                pass
        return self.expr.xreplace({self.symbol: value})

    def feasible(self, x) -> bool:
        """Do the formulas' requirements that involve the input hold at ``x``?"""
        return self.failing(x) is None

    def failing(self, x) -> Optional[Rule]:
        """The first requirement that involves the input and does not hold at ``x``, or None."""
        value = _exact(x)
        for rule, condition in self.requirements:
            try:
                decided = condition.xreplace({self.symbol: value})
            except (ZeroDivisionError, TypeError, ValueError):
                return rule
            if not (isinstance(decided, BooleanAtom) and bool(decided)):
                return rule
        return None

    def warnings_at(self, x) -> List[str]:
        """What the formulas' expectations that involve the input say at ``x`` ("beyond the
        model's context length s_max (here s = 17,252, s_max = 4,096)")."""
        from .forward import expectation_warning

        value = _exact(x)
        out = []
        for rule, condition, tested in self.expectations:
            try:
                decided = condition.xreplace({self.symbol: value})
            except (ZeroDivisionError, TypeError, ValueError):
                continue
            if isinstance(decided, BooleanAtom) and not bool(decided):
                out.append(expectation_warning(rule, {n: v.xreplace({self.symbol: value}) for n, v in tested.items()}))
        return out

    def with_values(self, names: List[str]) -> Dict[str, Basic]:
        """Other outputs (components of the target) as expressions of the input."""
        return _evaluate(self.problem, self.name, names)[0]


def _exact(x) -> Basic:
    return x if isinstance(x, Basic) else Integer(x)


def default_target(problem: Problem) -> str:
    """What a question answers against unless --target says: the peak over phases of the spec's
    regime (input `regime`: training, lora, qlora, inference), what a GPU sees — or its total
    (the sum of parts) where the peak cannot be computed (a pure Mamba stack's phases need the
    attention heads it does not have)."""
    from .regimes import PEAKS

    total = default_total(problem)
    peak = PEAKS[total][0] if total in PEAKS else None
    if peak is None or peak not in problem.ruleset.rules or _unbound_inputs(problem, peak):
        return total
    return peak


def default_total(problem: Problem) -> str:
    """The total (sum of parts) of the spec's regime (its job in formulas/jobs.toml)."""
    regime = problem.bindings.get("regime")
    value = regime.value.value if regime is not None and isinstance(regime.value, Text) else None
    if value is None:
        rule = problem.ruleset.rules.get("regime")
        value = rule.expr.value if rule is not None and isinstance(rule.expr, Text) else "training"
    from .regimes import JOBS, job_of

    job = job_of(value) or next(iter(JOBS.values()))
    return job.total


def _unbound_inputs(problem: Problem, name: str) -> List[str]:
    """Inputs ``name`` needs that have neither a value nor a default (in the branches taken)."""
    _, missing = problem.point.of([name])
    return sorted(missing.get(name, ()))


def _resolve_output(problem: Problem, target: str, where: str) -> str:
    rs = problem.ruleset
    canonical = rs.resolve(target)
    if canonical is None or canonical not in rs.rules or rs.rules[canonical].kind != "definition":
        outputs = tuple(rs.outputs)
        guess = closest(target, outputs)
        raise UnknownName[SolveError](f"no output is called '{target}'", Location(where, None, 1, target, len(target)),
                                      hint=did_you_mean(guess) or "`vram-eval explain --list` lists the outputs",
                                      name=target, known=outputs, suggestion=guess)
    return canonical


def focus(problem: Problem, name: str, target: Optional[str] = None, where: str = "--for") -> Focus:
    """The target (default: the regime's total) as a function of input ``name``; ``where``
    is what errors about the input point at (``--for`` of solve, the range of sweep)."""
    rs = problem.ruleset
    target = _resolve_output(problem, target or default_target(problem), "--target")
    canonical = rs.resolve(name)
    if canonical is None:
        known = tuple(rs.known_names())
        guess = closest(name, known)
        raise UnknownName[SolveError](f"no input is called '{name}'", Location(where, None, 1, name, len(name)),
                                      hint=did_you_mean(guess) or "`vram-eval explain --list` lists the inputs",
                                      name=name, known=known, suggestion=guess)
    rule = rs.rules.get(canonical)
    if rule is not None and rule.kind == "table":
        raise WrongKind[SolveError](f"'{canonical}' is a table, not a number", Location(where, None, 1, name, len(name)),
                                    name=canonical, actual="table", wanted="a number")
    unit = rs.unit(canonical)
    if unit not in NUMERIC_UNITS or rs.allowed_values(canonical) is not None:
        raise WrongKind[SolveError](
            f"'{canonical}' is a {'choice' if unit != 'bool' else 'true/false'} input, not a number",
            Location(where, None, 1, name, len(name)),
            hint="set it with --set and solve for a number such as s, b, dp or lora_rank",
            name=canonical, actual="choice" if unit != "bool" else "bool", wanted="a number",
        )
    if canonical not in rs.closure([target]):
        raise NoDependence(
            f"{target} does not depend on {canonical}",
            Location(where, None, 1, name, len(name)),
            hint=f"{target} depends on: " + ", ".join(i for i in rs.inputs_of(target) if rs.unit(i) in NUMERIC_UNITS),
            target=target, name=canonical,
        )
    foci = problem.point.__dict__.setdefault("foci", {})  # the same question again: the same function
    if (canonical, target) in foci:
        return foci[(canonical, target)]
    _check_users_memory(problem, target)
    involved = [req for req in rs.requirements if canonical in rs.closure(req.deps)]
    rest = [req for req in rs.requirements if req not in involved]
    expecting = [rule for rule in rs.expectations if canonical in rs.closure(rule.deps)]
    deps = set().union(*(req.deps for req in rs.requirements + expecting))
    values, at, missing = _evaluate(problem, canonical, [target], also=deps)  # one pass for all
    # The requirements the input does not touch must hold at the spec's point (kv_heads = 24 with
    # 64 heads is wrong whatever tp is): the located error `vram-eval SPEC` gives. Their inputs do
    # not depend on the input, so their values here are plain numbers.
    check_requirements(rs, problem.bindings, values, rest)
    symbol = Symbol(canonical)
    expectations = tuple((rule, condition, {d: values[d] for d in rule.deps})
                         for rule, condition in _requirements_in(expecting, values, missing))
    foci[(canonical, target)] = Focus(problem, canonical, target, symbol, values[target], at,
                                      _requirements_in(involved, values, missing), expectations)
    return foci[(canonical, target)]


def _check_users_memory(problem: Problem, target: str) -> None:
    """The memories of the user's own files behind the target must not be negative at the
    spec's point (as `vram-eval SPEC` checks them); nothing to do without such files."""
    rs = problem.ruleset
    mine = [n for n in rs.closure([target]) if n in rs.rules and not rs.rules[n].builtin
            and rs.rules[n].kind == "definition" and rs.unit(n) == "bytes"]
    if not mine:
        return
    try:
        values, _ = problem.point.of(mine)
    except ValueTooLarge:
        return  # too large at the spec's point (2 ** s at s = 4096): the question is about other values
    except EvaluationError as exc:
        raise blame(exc, rs, problem.bindings) from None
    check_memory(rs, problem.bindings, {n: values[n] for n in mine if n in values})


def _evaluate(problem: Problem, name: str, outputs: List[str], also=()):
    """(values as expressions of the input, its value at the spec's point, what could not be
    computed) for ``outputs`` and whatever ``also`` names need (requirements' dependencies)."""
    rs = problem.ruleset
    bound = {n: b.value for n, b in problem.bindings.items()}
    needed = rs.closure(list(outputs) + sorted(also))
    moving = dependents(rs, [name], needed) & needed | {name}
    bound[name] = Symbol(name)
    try:
        # What does not depend on the input is the point's, worked out once for every question.
        point_values, point_missing = problem.point.of([name] + sorted(needed - moving))
        at = problem.bindings[name].value if name in problem.bindings else point_values.get(name)
        known = ({n: v for n, v in point_values.items() if n in needed and n not in moving},
                 {n: m for n, m in point_missing.items() if n in needed and n not in moving})
        values, missing = evaluate_values(rs, bound, only=needed, free={name}, known=known)
    except EvaluationError as exc:
        raise blame(exc, rs, problem.bindings) from None
    for out in outputs:
        if out in missing:
            lacking = sorted(missing[out])
            raise UnboundInput[BindingError](
                f"'{out}' cannot be computed: " + ", ".join(f"'{m}'" for m in lacking) + " not set",
                rs.rules[out].location, hint="set " + " and ".join(lacking) + " in the spec or with --set NAME=VALUE",
                name=out, missing=tuple(lacking))
    return values, at, missing


def _requirements_in(requirements: List[Rule], values, missing) -> Tuple[Tuple[Rule, Basic], ...]:
    """Each requirement's condition as an expression of the input, from the values focus computed."""
    return tuple(
        (req, _substituted(req.expr, {Symbol(d): values[d] for d in req.deps}))
        for req in requirements
        if not any(d in missing for d in req.deps)
    )


def _substituted(expr: Basic, mapping: Dict[Symbol, Basic]) -> Basic:
    """expr with the point's values, ``or`` and ``and`` short-circuited as the evaluator does:
    `layers == 0 or heads % k == 0` with layers = 0 holds even where k = 0. A part that has no
    value (x % 0) is false, as an unmet requirement is everywhere else."""
    if isinstance(expr, (Or, And)):
        decides, parts = (true, []) if isinstance(expr, Or) else (false, [])
        for arg in expr.args:
            part = _substituted(arg, mapping)
            if part == decides:
                return decides
            if not isinstance(part, BooleanAtom):
                parts.append(part)
        return type(expr)(*parts) if parts else (false if decides == true else true)
    try:
        return expr.xreplace(mapping)
    except (ArithmeticError, TypeError, ValueError):
        return false
