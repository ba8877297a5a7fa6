"""One output as a function of one input, every other input bound.

The common ground of the inverse questions: ``solve`` looks for where the
function meets a budget, ``sensitivity`` differentiates it, ``sweep`` tabulates
it. The function is built by evaluating the rules with the input left as a
symbol, so it is exactly what ``vram-eval SPEC`` computes at any value.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Dict, List, Optional, Tuple

from .errors import (BindingError, EvaluationError, Location, NoDependence, SolveError, UnboundInput, UnknownName,
                     ValueTooLarge, WrongKind, closest, did_you_mean)
from .forward import check_requirements, dependents
from .guards import blame, check_memory
from .nodes import MAX_BITS, TooLarge, Unsupported
from .problem import Problem
from .residual import Rest, residuals
from .rules import Rule
from .values import plain_number

__all__ = ["Focus", "focus", "default_target", "default_total", "NUMERIC_UNITS"]

NUMERIC_UNITS = (None, "count", "bytes", "ratio")


class Focus:
    """The target as a function of one input, every other input at the problem's point, with
    the requirements and expectations that involve the input.

    Built without SymPy where it can be (engine/residual.py: the residual node table, evaluated
    exactly at any value); the SymPy expression (:attr:`expr`) is built only when a question asks
    for it (a closed form, a derivative). Where the residual cannot hold the function, it is
    worked out with SymPy as a whole (``sympy_focus``), and the same methods answer from it."""

    def __init__(self, problem: Problem, name: str, target: str, at_plain, residual=None, value=None,
                 requirements=(), expectations=(), sympy_focus=None) -> None:
        self.problem = problem
        self.name = name  # the input, canonical
        self.target = target  # the output, canonical
        self.at_plain = at_plain  # the input's value at the spec's point (plain), if it has one
        self.residual = residual  # residual.Residuals, or None where SymPy holds the function
        self.value = value  # the target: plain, or a Rest in the residual table
        # (rule, condition: plain or Rest) for the requirements that involve the input
        self.requirements_plain = tuple(requirements)
        # (expectation, condition, {name it tests: value}): the warnings
        self.expectations_plain = tuple(expectations)
        self._sympy = sympy_focus  # (expr, requirements, expectations) in SymPy, once built

    # -- what the input is ------------------------------------------------------
    @property
    def unit(self) -> Optional[str]:
        return self.problem.ruleset.unit(self.name)

    @property
    def integer(self) -> bool:
        """Counts and bytes take whole values."""
        return self.unit in ("count", "bytes")

    @property
    def at(self):
        """The input's value at the spec's point, as SymPy (None if it has none)."""
        if self.at_plain is None:
            return None
        from .symbolic import sympy_value

        return sympy_value(self.at_plain)

    # -- SymPy, on demand -------------------------------------------------------
    @property
    def symbol(self):
        from sympy import Symbol

        return Symbol(self.name)

    def _symbolic(self):
        if self._sympy is None:
            self._sympy = (self._as_sympy(self.value),
                           tuple((rule, self._as_sympy(c)) for rule, c in self.requirements_plain),
                           tuple((rule, self._as_sympy(c), {n: self._as_sympy(v) for n, v in tested.items()})
                                 for rule, c, tested in self.expectations_plain))
        return self._sympy

    def _as_sympy(self, value):
        """A value (plain, or a Rest in the residual table) as SymPy; built node by node once."""
        if not isinstance(value, Rest):
            return _sympy(value)
        built = self.__dict__.setdefault("_built", {})
        if value.i not in built:
            from .nodes_sympy import build_evaluated

            build_evaluated(self.residual.table, [value.i], built)
        return built[value.i]

    def branch_expr(self, x0):
        """The target as SymPy with each max and min replaced by its argument that is largest
        (smallest) at the input's value ``x0``: the same slope there where the extremum is strict
        (sensitivity differentiates it). Built from the residual without building the maxes;
        None where the residual does not hold the function."""
        x = _fraction(x0)
        if self.residual is None or x is None or not isinstance(self.value, Rest):
            return None
        table = self.residual.table

        def choose(node):
            try:
                values = [table.value(a, {self.name: x}) for a in node[1:]]
                best = max(values) if node[0] == "Max" else min(values)
            except (Unsupported, TooLarge, ArithmeticError, TypeError, ValueError, LookupError, RecursionError):
                return None  # SymPy builds the max (and differentiates it)
            return node[1 + values.index(best)]

        from .nodes_sympy import build_choosing

        try:
            return build_choosing(table, self.value.i, choose)
        except RecursionError:
            return None

    @property
    def expr(self):
        """The target as a SymPy expression of :attr:`symbol` alone."""
        return self._symbolic()[0]

    @property
    def requirements(self):
        """(rule, condition as a SymPy expression of :attr:`symbol`) for each requirement that involves the input."""
        return self._symbolic()[1]

    # -- values at a value of the input -----------------------------------------
    def at_value(self, x):
        """The target at ``x``, exactly (a Fraction where the residual holds it; a power too large
        to work out, such as 2**s at s = 2^40, is a located error, never a hang)."""
        value = _fraction(x)
        if self.residual is not None and value is not None:
            try:
                return self.residual.at(self.value, value)
            except TooLarge as exc:
                raise self._too_large(value, exc) from None
            except ArithmeticError:
                return math.nan  # x / 0 at this value: no value (SymPy's zoo), not a number to compare
            except (Unsupported, TypeError, ValueError, LookupError, RecursionError):
                pass  # SymPy says what it comes to (an irrational number, an expression)
        return self._sympy_at(self.expr, x)

    def _sympy_at(self, expr, x):
        from .exact import MemoEnv, evaluate_exact, to_sympy_value

        value = _exact(x)
        if value.is_Rational:
            try:
                return to_sympy_value(evaluate_exact(expr, MemoEnv({self.name: Fraction(int(value.p), int(value.q))})))
            except TooLarge as exc:
                raise self._too_large(value, exc) from None
            except (Unsupported, ArithmeticError, TypeError, ValueError, RecursionError):
                pass
        return expr.xreplace({self.symbol: value})

    def _too_large(self, value, exc) -> ValueTooLarge:
        rule = self.problem.ruleset.rules.get(self.target)
        return ValueTooLarge(
            f"'{self.target}' is too large to work out exactly at {self.name} = {value} ({exc})",
            rule.location if rule else None,
            hint=f"exact values are limited to 2^{MAX_BITS}: is a power's exponent an input?", rule=rule,
        )

    def _decided(self, condition, x) -> Optional[bool]:
        """A condition (plain or Rest) at ``x``: True, False, or None (no value: an error)."""
        value = _fraction(x)
        if value is not None:
            try:
                decided = self.residual.at(condition, value)
                return decided if decided.__class__ is bool else None
            except (ArithmeticError, TypeError, ValueError, LookupError, RecursionError, TooLarge):
                return None  # no value at x (x % 0): not met, as SymPy's zoo is not true either
            except Unsupported:
                pass  # an irrational root: SymPy decides
        from sympy.logic.boolalg import BooleanAtom

        try:
            decided = self._as_sympy(condition).xreplace({self.symbol: _exact(x)})
        except (ZeroDivisionError, TypeError, ValueError):
            return None
        return bool(decided) if isinstance(decided, BooleanAtom) else None

    def feasible(self, x) -> bool:
        """Do the formulas' requirements that involve the input hold at ``x``?"""
        return self.failing(x) is None

    def failing(self, x) -> Optional[Rule]:
        """The first requirement that involves the input and does not hold at ``x``, or None."""
        if self.residual is None:
            from sympy.logic.boolalg import BooleanAtom

            value = _exact(x)
            for rule, condition in self.requirements:
                try:
                    decided = condition.xreplace({self.symbol: value})
                except (ZeroDivisionError, TypeError, ValueError):
                    return rule
                if not (isinstance(decided, BooleanAtom) and bool(decided)):
                    return rule
            return None
        for rule, condition in self.requirements_plain:
            if self._decided(condition, x) is not True:
                return rule
        return None

    def warnings_at(self, x) -> List[str]:
        """What the formulas' expectations that involve the input say at ``x`` ("beyond the
        model's context length s_max (here s = 17,252, s_max = 4,096)")."""
        from .forward import expectation_warning

        out = []
        if self.residual is None:
            from sympy.logic.boolalg import BooleanAtom

            value = _exact(x)
            for rule, condition, tested in self._sympy[2]:
                try:
                    decided = condition.xreplace({self.symbol: value})
                except (ZeroDivisionError, TypeError, ValueError):
                    continue
                if isinstance(decided, BooleanAtom) and not bool(decided):
                    out.append(expectation_warning(rule, {n: v.xreplace({self.symbol: value}) for n, v in tested.items()}))
            return out
        value = _fraction(x)
        for rule, condition, tested in self.expectations_plain:
            if self._decided(condition, x) is False:
                out.append(expectation_warning(rule, {n: self.residual.at(v, value) for n, v in tested.items()}))
        return out

    def values_at(self, names: List[str], x) -> Dict[str, object]:
        """Other outputs (components of the target) at ``x``; a name without a value is left out."""
        res = self.residual
        if res is not None and not all(n in res.values for n in names):
            try:  # components outside the target's closure: their own residuals
                res = residuals(self.problem.ruleset, self.problem.point, self.name,
                                self.problem.ruleset.closure(names))
            except (Unsupported, TooLarge, EvaluationError, ArithmeticError, TypeError, ValueError, LookupError,
                    RecursionError):
                res = None
        if res is not None:
            value = _fraction(x)
            out = {}
            for n in names:
                try:
                    out[n] = res.at(res.values[n], value)
                except (Unsupported, ArithmeticError, TypeError, ValueError, LookupError, RecursionError, TooLarge):
                    continue
            return out
        values = _evaluate(self.problem, self.name, names)[0]
        return {n: v.xreplace({self.symbol: _exact(x)}) for n, v in values.items() if n in names}


_fraction = plain_number  # a value of the input as the residual is evaluated at it


def _sympy(value):
    from .symbolic import sympy_value

    return sympy_value(value)


def _exact(x):
    from sympy import Basic, Integer, Rational

    if isinstance(x, Basic):
        return x
    if isinstance(x, Fraction):
        return Rational(x.numerator, x.denominator)
    return Integer(x)


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


def chosen_target(problem: Problem, target: Optional[str], total: bool) -> Optional[str]:
    """--target as given; else, with --total, the regime's total (sum of parts); else None: the
    regime's peak over phases (default_target)."""
    if target or not total:
        return target
    return default_total(problem)


def default_total(problem: Problem) -> str:
    """The total (sum of parts) of the spec's regime (its job in formulas/jobs.toml)."""
    regime = problem.bindings.get("regime")
    value = regime.plain if regime is not None and isinstance(regime.plain, str) else None
    if value is None:
        rule = problem.ruleset.rules.get("regime")
        default = rule.expression.constant() if rule is not None and rule.expression is not None else None
        value = default if isinstance(default, str) else "training"
    from .regimes import ENGINE, JOBS, job_of

    engine = problem.point.plain_of([ENGINE])[0].get(ENGINE) if ENGINE in problem.ruleset.rules else None
    job = job_of(value, engine if isinstance(engine, str) else None) or next(iter(JOBS.values()))
    return job.total


def _unbound_inputs(problem: Problem, name: str) -> List[str]:
    """Inputs ``name`` needs that have neither a value nor a default (in the branches taken)."""
    _, missing = problem.point.plain_of([name])
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
    rest = [req for req in rs.requirements if all(req is not r for r in involved)]
    expecting = [rule for rule in rs.expectations if canonical in rs.closure(rule.deps)]
    deps = set().union(*(req.deps for req in rs.requirements + expecting))
    at = problem.bindings[canonical].plain if canonical in problem.bindings else None
    try:
        res = residuals(rs, problem.point, canonical, rs.closure([target] + sorted(deps)),
                        [r.expression for r in involved + expecting])
    except EvaluationError as exc:
        raise blame(exc, rs, problem.bindings) from None
    except (Unsupported, TooLarge, ArithmeticError, TypeError, ValueError, LookupError, RecursionError):
        res = None  # SymPy works the function out (and reports any error in its words)
    if res is None:
        foci[(canonical, target)] = _sympy_focus(problem, canonical, target, involved, rest, expecting, deps)
        return foci[(canonical, target)]
    if at is None:
        point_values, _ = problem.point.plain_of([canonical])
        at = point_values.get(canonical)
    # The requirements the input does not touch must hold at the spec's point (kv_heads = 24 with
    # 64 heads is wrong whatever tp is): the located error `vram-eval SPEC` gives.
    check_requirements(rs, problem.bindings, res.values, rest)
    conditions = res.extra[:len(involved)]
    tested = res.extra[len(involved):]
    requirements = [(rule, c) for rule, c in zip(involved, conditions) if c is not None]
    expectations = [(rule, c, {d: res.values[d] for d in rule.deps}) for rule, c in zip(expecting, tested)
                    if c is not None]
    foci[(canonical, target)] = Focus(problem, canonical, target, at, res, res.values[target], requirements,
                                      expectations)
    return foci[(canonical, target)]


def _sympy_focus(problem: Problem, canonical: str, target: str, involved, rest, expecting, deps) -> Focus:
    """The focus worked out with SymPy as a whole: where the residual cannot hold the function."""
    rs = problem.ruleset
    values, at, missing = _evaluate(problem, canonical, [target], also=deps)  # one pass for all
    check_requirements(rs, problem.bindings, values, rest)
    expectations = tuple((rule, condition, {d: values[d] for d in rule.deps})
                         for rule, condition in _requirements_in(expecting, values, missing))
    from .values import to_plain

    return Focus(problem, canonical, target, to_plain(at) if at is not None else None,
                 sympy_focus=(values[target], _requirements_in(involved, values, missing), expectations))


def _check_users_memory(problem: Problem, target: str) -> None:
    """The memories of the user's own files behind the target must not be negative at the
    spec's point (as `vram-eval SPEC` checks them); nothing to do without such files."""
    rs = problem.ruleset
    mine = [n for n in rs.closure([target]) if n in rs.rules and not rs.rules[n].builtin
            and rs.rules[n].kind == "definition" and rs.unit(n) == "bytes"]
    if not mine:
        return
    try:
        values, _ = problem.point.plain_of(mine)
    except ValueTooLarge:
        return  # too large at the spec's point (2 ** s at s = 4096): the question is about other values
    except EvaluationError as exc:
        raise blame(exc, rs, problem.bindings) from None
    check_memory(rs, problem.bindings, {n: values[n] for n in mine if n in values})


def _evaluate(problem: Problem, name: str, outputs: List[str], also=()):
    """(values as expressions of the input, its value at the spec's point, what could not be
    computed) for ``outputs`` and whatever ``also`` names need (requirements' dependencies)."""
    from sympy import Symbol

    from .symbolic import evaluate_values

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


def _requirements_in(requirements: List[Rule], values, missing) -> Tuple[tuple, ...]:
    """Each requirement's condition as an expression of the input, from the values focus computed."""
    from sympy import Symbol

    return tuple(
        (req, _substituted(req.expr, {Symbol(d): values[d] for d in req.deps}))
        for req in requirements
        if not any(d in missing for d in req.deps)
    )


def _substituted(expr, mapping: Dict[object, object]):
    """expr with the point's values, ``or`` and ``and`` short-circuited as the evaluator does:
    `layers == 0 or heads % k == 0` with layers = 0 holds even where k = 0. A part that has no
    value (x % 0) is false, as an unmet requirement is everywhere else."""
    from sympy.logic.boolalg import And, BooleanAtom, Or, false, true

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
