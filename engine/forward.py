"""Evaluate every rule at the bound point: the forward question.

Rules are evaluated in dependency order, each from its node table (engine/nodes.py) with the
values of its dependencies, in exact Python arithmetic: int and Fraction for numbers, bool, str, tuple
(a list) and dict (a table). SymPy is not imported for it; a value that arithmetic does not
cover (an irrational root, a logarithm), and every error, is worked out by SymPy instead
(engine/symbolic.py), in the same semantics. A rule whose inputs are not all bound is
*unavailable*, with the missing inputs named; asking for it explicitly is a
:class:`BindingError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence

from .errors import (BindingError, EvaluationError, RequirementNotMet, SpecError, UnboundInput, UnknownName,
                     ValueTooLarge, closest, did_you_mean)
from .guards import blame, check_memory, one_line, shown_value
from .nodes import MAX_BITS, TooLarge, Unsupported
from .rules import Rule, RuleSet
from .spec import Binding
from .values import exact_number, to_plain

__all__ = ["Breakdown", "Point", "evaluate", "plain_values", "walk", "dependents", "check_requirements", "unmet_expectations",
           "expectation_warning", "shown_number"]

_NUMBERS = frozenset({int, Fraction})
_NOT_NUMBERS = frozenset({bool, str, tuple, dict})
_NONE: FrozenSet[str] = frozenset()


@dataclass(frozen=True)
class Breakdown:
    """Every value at one point: what ``vram-eval SPEC`` prints."""

    ruleset: RuleSet
    bindings: Mapping[str, Binding]
    plain: Mapping[str, object]  # every name that has a value: int, Fraction, bool, str, tuple (a list), dict (a table)
    missing: Mapping[str, FrozenSet[str]]  # name → the unbound inputs it needs
    spec: Optional[str] = None
    title: Optional[str] = None
    focus: tuple = ()  # the outputs asked for with --output, if any

    @property
    def values(self) -> Mapping[str, object]:
        """The same values as SymPy objects (Integer, Rational, Text, ...; converted when read)."""
        view = self.__dict__.get("_view")
        if view is None:
            from .symbolic import SympyView

            view = SympyView(self.plain)
            object.__setattr__(self, "_view", view)
        return view

    @property
    def inputs(self) -> Dict[str, object]:
        """The inputs' plain values."""
        return {n: self.plain[n] for n in self.ruleset.inputs if n in self.plain}

    @property
    def outputs(self) -> Dict[str, object]:
        """The outputs' plain values."""
        return {n: self.plain[n] for n in self.ruleset.outputs if n in self.plain}

    @property
    def warnings(self) -> List[str]:
        """What the formulas' expectations say of this point (``expect`` statements that do not hold)."""
        return unmet_expectations(self.ruleset, self.plain)

    def unit(self, name: str) -> Optional[str]:
        return self.ruleset.unit(name)

    def only(self, names: Iterable[str]) -> "Breakdown":
        """The same breakdown, reporting only ``names`` among the outputs."""
        focus = tuple(self.ruleset.resolve(n) for n in names)
        keep = set(focus) | set(self.ruleset.inputs_behind(focus))
        values = {n: v for n, v in self.plain.items() if n in keep}
        missing = {n: m for n, m in self.missing.items() if n in keep}
        return Breakdown(self.ruleset, self.bindings, values, missing, self.spec, self.title, focus)

    def __getitem__(self, name: str):
        return self.require(name)

    def require(self, name: str):
        """The value of ``name`` as SymPy; a located error if it is unknown or unavailable."""
        return self.values[self._available(name)]

    def plain_value(self, name: str):
        """The value of ``name`` as the plain evaluator gives it (int, Fraction, bool, str, ...)."""
        return self.plain[self._available(name)]

    def _available(self, name: str) -> str:
        canonical = self.ruleset.resolve(name)
        if canonical is None:
            known = tuple(self.ruleset.known_names())
            guess = closest(name, known)
            raise UnknownName[BindingError](f"no input or output is called '{name}'", hint=did_you_mean(guess),
                                            name=name, known=known, suggestion=guess)
        if canonical in self.plain:
            return canonical
        missing = sorted(self.missing.get(canonical, {canonical}))
        rule = self.ruleset.rules.get(canonical)
        raise UnboundInput[BindingError](
            f"'{canonical}' cannot be computed: " + _missing_text(missing),
            rule.location if rule else None,
            hint="set " + (" and ".join(missing)) + " in the spec or with --set NAME=VALUE",
            name=canonical, missing=tuple(missing),
        )


def _missing_text(missing: Sequence[str]) -> str:
    if len(missing) == 1:
        return f"the input '{missing[0]}' is not set"
    return "the inputs " + ", ".join(f"'{m}'" for m in missing) + " are not set"


def evaluate(
    problem,
    bindings: Optional[Mapping[str, Binding]] = None,
    wanted: Optional[Iterable[str]] = None,
    spec: Optional[str] = None,
    title: Optional[str] = None,
) -> Breakdown:
    """Every value at the problem's point, requirements checked: a Breakdown.

    ``problem`` is a :class:`~vram_eval.problem.Problem` (as for solve, sensitivity and sweep);
    ``evaluate(ruleset, bindings)`` is still accepted. ``wanted`` names outputs that must be
    available (else BindingError)."""
    if bindings is None:
        ruleset, bindings, point = problem.ruleset, problem.bindings, problem.point
        spec = problem.spec_path if spec is None else spec
        title = problem.title if title is None else title
    else:
        ruleset, point = problem, Point(problem, bindings)
    try:
        values, missing = point.plain_of(ruleset.order)
    except EvaluationError as exc:
        raise blame(exc, ruleset, bindings) from None
    values, missing = dict(values), dict(missing)
    check_requirements(ruleset, bindings, values)
    check_memory(ruleset, bindings, values)
    result = Breakdown(ruleset, bindings, values, missing, spec, title)
    for name in wanted or ():
        result.require(name)
    return result


class Point:
    """The values at one bound point, each worked out once: asked for by the names a question
    needs (:meth:`of` as SymPy values, :meth:`plain_of` as plain ones), and kept for the next
    question at the same point. Every question's point is its Problem's (``problem.point``);
    only what a question changes (a free input, a remedy's setting) is computed again."""

    def __init__(self, ruleset: RuleSet, bindings: Mapping[str, Binding]) -> None:
        self.ruleset = ruleset
        self.bindings = bindings
        self.values: Dict[str, object] = {}  # plain values
        self.missing: Dict[str, FrozenSet[str]] = {}
        self._done: set = set()
        self._memo: dict = {}  # the plain evaluator's shared subtrees (max, min, piecewise) at this point
        self._view = None

    def plain_of(self, names: Iterable[str]):
        """``(values, missing)`` with every name ``names`` depends on worked out (and possibly
        more: index them by name), values plain. An error of the formulas at the point
        (EvaluationError) is raised each time it is asked for; :func:`~vram_eval.guards.blame`
        says whose value caused it."""
        needed = self.ruleset.closure(names)
        todo = needed - self._done
        if todo:
            bound = {n: b.plain for n, b in self.bindings.items()}
            values, missing = plain_values(self.ruleset, bound, only=todo | self._done,
                                           known=(self.values, self.missing), memo=self._memo)
            self.values.update(values)
            self.missing.update(missing)
            self._done |= todo
        return self.values, self.missing

    def of(self, names: Iterable[str]):
        """As :meth:`plain_of`, the values as SymPy objects (for the questions that substitute
        them into expressions)."""
        values, missing = self.plain_of(names)
        if self._view is None:
            from .symbolic import SympyView

            self._view = SympyView(self.values)
        return self._view, missing

    def moved(self, bindings: Mapping[str, Binding], changed: Iterable[str]) -> "Point":
        """The point with ``changed`` inputs bound anew (``bindings``): what does not depend on
        them is this point's, taken as it is."""
        point = Point(self.ruleset, bindings)
        moving = dependents(self.ruleset, changed)
        point.values = {n: v for n, v in self.values.items() if n not in moving}
        point.missing = {n: m for n, m in self.missing.items() if n not in moving}
        point._done = {n for n in self._done if n not in moving}
        return point

    def everything(self):
        """``(values, missing)`` of every name of the rule set, as SymPy values."""
        return self.of(self.ruleset.order)


def dependents(ruleset: RuleSet, names: Iterable[str], among=None) -> FrozenSet[str]:
    """``names`` and every name (among ``among``, default all) whose value depends on them."""
    moving = set(names)
    for n in ruleset.order:
        if (among is None or n in among) and n not in moving and ruleset.dependencies(n) & moving:
            moving.add(n)
    return frozenset(moving)


def plain_values(ruleset: RuleSet, bound: Mapping[str, object], only=None, known=None, memo=None):
    """``(values, missing)`` for a mapping name → plain value (the library core).

    ``only`` limits the work to those names (say, the closure of one output); ``known``,
    ``(values, missing)`` already worked out at the same point, is taken as it is, not
    computed again. A value is plain (int, Fraction, bool, str, tuple, dict) except where only
    SymPy could work it out (an irrational number: then the SymPy number)."""
    memo = {} if memo is None else memo

    def value_of(rule: Rule, values, lacking):
        if lacking:
            # An unset input only in a branch not taken (a learned position table's s_max, when
            # the model has none), or in an operand after the one that decides an and/or, leaves
            # the value decided: the evaluator takes the branches it takes and gives up (None) on
            # an unset name it reaches.
            return _plain_value(rule, values, memo) if rule.expression.lazy else None
        value = _plain_value(rule, values, memo)  # None on any doubt: SymPy decides
        if value is None:
            from .symbolic import value_by_sympy

            value = to_plain(value_by_sympy(rule, values))
        return value

    return walk(ruleset, bound, value_of, only, known)


def walk(ruleset: RuleSet, bound: Mapping[str, object], value_of, only=None, known=None):
    """``(values, missing)``: every rule in dependency order, the bound names at their values, a
    rule's value by ``value_of(rule, values so far, the unset inputs it lacks)`` — None where an
    unset input leaves it undecided — and no exact number beyond 2^MAX_BITS. The walk the plain
    evaluator and SymPy's (engine/symbolic.py) share; ``only`` and ``known`` as for
    :func:`plain_values`."""
    values: Dict[str, object] = {}
    missing: Dict[str, FrozenSet[str]] = {}
    done_values, done_missing = known if known is not None else ({}, {})
    names = ruleset.order
    if only is not None and len(only) * 4 < len(names):  # a few names: those, in order
        names = ruleset.in_order(only)
    for name in names:
        if only is not None and name not in only:
            continue
        if name in done_missing:
            missing[name] = done_missing[name]
            continue
        if name in done_values:
            values[name] = done_values[name]
            continue
        rule = ruleset.rules.get(name)
        if name in bound:
            value = bound[name]
        elif rule is None or (rule.kind == "input" and rule.expression is None):
            missing[name] = frozenset({name})
            continue
        else:
            unset = missing.keys() & rule.deps if missing else ()
            lacking = frozenset().union(*(missing[d] for d in unset)) if unset else _NONE
            try:
                value = value_of(rule, values, lacking)
            except TooLarge as exc:
                raise ValueTooLarge(
                    f"'{name}' is too large to work out exactly at these values ({exc})", rule.location,
                    hint=f"exact values are limited to 2^{MAX_BITS} (about 10^1233); is an input far too large, "
                         "or a power's exponent an input?", rule=rule) from None
            if value is None:
                missing[name] = lacking
                continue
            cls = value.__class__
            exact = value if cls in _NUMBERS else None if cls in _NOT_NUMBERS else exact_number(value)
            if exact is not None and (exact.numerator.bit_length() > MAX_BITS
                                      or exact.denominator.bit_length() > MAX_BITS):
                raise ValueTooLarge(
                    f"'{name}' is beyond 2^{MAX_BITS} (about 10^1233) at these values", rule.location,
                    hint="no memory size is that large: is an input far too large?", rule=rule)
        values[name] = value
    return values, missing


def _plain_value(rule: Rule, values: Mapping[str, object], memo: dict):
    """The rule's value by the plain evaluator, or None to let SymPy do it (an irrational
    result, a name without a value, any error: SymPy reports it in its own words)."""
    try:
        return rule.expression.value(values, memo)
    except (Unsupported, ArithmeticError, TypeError, ValueError, LookupError, RecursionError):
        return None


def _holds(rule, values: Mapping[str, object]) -> Optional[bool]:
    """Does a requirement's (or expectation's) condition hold at the values? None: undecided."""
    plain = {d: to_plain(values[d]) for d in rule.deps}
    try:
        ok = rule.expression.value(plain)
    except Unsupported:
        from .symbolic import holds_by_sympy

        return holds_by_sympy(rule, plain)
    except (ArithmeticError, TypeError, ValueError, LookupError, RecursionError):
        return None
    return ok if ok.__class__ is bool else None


def shown_number(value) -> str:
    """A value as a warning shows it: whole numbers with thousands separators (8,192)."""
    if (value.__class__ in _NUMBERS and value.denominator == 1) or getattr(value, "is_Integer", False):
        return f"{int(value):,}"
    return shown_value(value)


def unmet_expectations(ruleset: RuleSet, values: Mapping[str, object], expectations=None) -> List[str]:
    """The warnings of the expectations (``expect COND "doc"``) that do not hold at the values,
    each with the values it tested: "beyond the model's context length s_max (here s = 8,192,
    s_max = 4,096)". One whose inputs have no value, or whose condition cannot be decided, says nothing."""
    out = []
    for rule in ruleset.expectations if expectations is None else expectations:
        if any(d not in values for d in rule.deps) or _holds(rule, values) is not False:
            continue
        out.append(expectation_warning(rule, values))
    return out


def expectation_warning(rule, values: Mapping[str, object]) -> str:
    """An unmet expectation in words, with the values it tested: "beyond the model's context
    length s_max (here s = 8,192, s_max = 4,096)"."""
    shown = ", ".join(f"{n} = {shown_number(values[n])}" for n in sorted(rule.deps) if n in values)
    return (rule.doc or f"expected: {one_line(rule.text)}") + (f" (here {shown})" if shown else "")


def check_requirements(ruleset: RuleSet, bindings: Mapping[str, Binding], values: Mapping[str, object],
                        requirements=None) -> None:
    """Every requirement (or those given) whose inputs have values must hold: else a SpecError
    located at the latest spec line or --set that bound an input involved."""
    for rule in ruleset.requirements if requirements is None else requirements:
        if any(d not in values for d in rule.deps):
            continue
        if _holds(rule, values):
            continue
        # Point at the latest spec line or --set that bound an input involved, if any.
        behind = ruleset.closure(rule.deps)
        involved = [b for n, b in bindings.items() if n in behind]
        where = involved[-1].location if involved else rule.location
        shown = ", ".join(f"{n} = {shown_value(values[n])}" for n in sorted(rule.deps) if n in values)
        raise RequirementNotMet[SpecError](
            (rule.doc or f"requirement not met: {one_line(rule.text)}") + (f" (here {shown})" if shown else ""),
            where,
            notes=[f"{rule.where}: {one_line(rule.text)}"],
            rule=rule, values={n: values[n] for n in sorted(rule.deps) if n in values},
        )
