"""Evaluate every rule at the bound point: the forward question.

Rules are evaluated in dependency order; each expression has the values of
its direct dependencies substituted (``xreplace``), so SymPy only ever does
exact arithmetic on numbers, never symbolic simplification. A rule whose
inputs are not all bound is *unavailable*, with the missing inputs named;
asking for it explicitly is a :class:`BindingError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence

import warnings

from sympy import Basic, Piecewise, Symbol, log, nan, zoo
from sympy.logic.boolalg import BooleanAtom
from sympy.utilities.exceptions import SymPyDeprecationWarning

from .errors import (BindingError, EvaluationError, LimitExceeded, NoRealValue, RequirementNotMet, SpecError, TypeMismatch,
                     UnboundInput, UnknownKey, UnknownName, ValueTooLarge, closest, did_you_mean)
from .guards import blame, check_memory, one_line, shown_value
from .rules import Rule, RuleSet
from .spec import Binding
from .exact import MAX_BITS, TooLarge, Unsupported, evaluate_exact, to_python_value, to_sympy_value
from .symbols import Lookup, Member, MissingKey, Table, Text, TextSet

__all__ = ["Breakdown", "Point", "evaluate", "evaluate_values", "dependents", "check_requirements", "unmet_expectations", "expectation_warning",
           "shown_number"]


@dataclass(frozen=True)
class Breakdown:
    """Every value at one point: what ``vram-eval SPEC`` prints."""

    ruleset: RuleSet
    bindings: Mapping[str, Binding]
    values: Mapping[str, Basic]  # every name that has a value
    missing: Mapping[str, FrozenSet[str]]  # name → the unbound inputs it needs
    spec: Optional[str] = None
    title: Optional[str] = None
    focus: tuple = ()  # the outputs asked for with --output, if any

    @property
    def inputs(self) -> Dict[str, Basic]:
        return {n: self.values[n] for n in self.ruleset.inputs if n in self.values}

    @property
    def outputs(self) -> Dict[str, Basic]:
        return {n: self.values[n] for n in self.ruleset.outputs if n in self.values}

    @property
    def warnings(self) -> List[str]:
        """What the formulas' expectations say of this point (``expect`` statements that do not hold)."""
        return unmet_expectations(self.ruleset, self.values)

    def unit(self, name: str) -> Optional[str]:
        return self.ruleset.unit(name)

    def only(self, names: Iterable[str]) -> "Breakdown":
        """The same breakdown, reporting only ``names`` among the outputs."""
        focus = tuple(self.ruleset.resolve(n) for n in names)
        keep = set(focus) | set(self.ruleset.inputs_behind(focus))
        values = {n: v for n, v in self.values.items() if n in keep}
        missing = {n: m for n, m in self.missing.items() if n in keep}
        return Breakdown(self.ruleset, self.bindings, values, missing, self.spec, self.title, focus)

    def __getitem__(self, name: str) -> Basic:
        return self.require(name)

    def require(self, name: str) -> Basic:
        """The value of ``name``; a located error if it is unknown or unavailable."""
        canonical = self.ruleset.resolve(name)
        if canonical is None:
            known = tuple(self.ruleset.known_names())
            guess = closest(name, known)
            raise UnknownName[BindingError](f"no input or output is called '{name}'", hint=did_you_mean(guess),
                                            name=name, known=known, suggestion=guess)
        if canonical in self.values:
            return self.values[canonical]
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
        values, missing = point.everything()
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
    needs (:meth:`of`), and kept for the next question at the same point. Every question's
    point is its Problem's (``problem.point``); only what a question changes (a free input, a
    remedy's setting) is computed again."""

    def __init__(self, ruleset: RuleSet, bindings: Mapping[str, Binding]) -> None:
        self.ruleset = ruleset
        self.bindings = bindings
        self.values: Dict[str, Basic] = {}
        self.missing: Dict[str, FrozenSet[str]] = {}
        self._done: set = set()

    def of(self, names: Iterable[str]):
        """``(values, missing)`` with every name ``names`` depends on worked out (and possibly more:
        index them by name). An error of the formulas at the point (EvaluationError) is raised
        each time it is asked for; :func:`~vram_eval.guards.blame` says whose value caused it."""
        needed = self.ruleset.closure(names)
        todo = needed - self._done
        if todo:
            bound = {n: b.value for n, b in self.bindings.items()}
            values, missing = evaluate_values(self.ruleset, bound, only=todo | self._done,
                                              known=(self.values, self.missing))
            self.values.update(values)
            self.missing.update(missing)
            self._done |= todo
        return self.values, self.missing

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
        """``(values, missing)`` of every name of the rule set."""
        return self.of(self.ruleset.order)


def dependents(ruleset: RuleSet, names: Iterable[str], among=None) -> FrozenSet[str]:
    """``names`` and every name (among ``among``, default all) whose value depends on them."""
    moving = set(names)
    for n in ruleset.order:
        if (among is None or n in among) and n not in moving and ruleset.dependencies(n) & moving:
            moving.add(n)
    return frozenset(moving)


def evaluate_values(ruleset: RuleSet, bound: Mapping[str, Basic], only=None, free=frozenset(), known=None):
    """``(values, missing)`` for a plain mapping name → value (the library core).

    ``only`` limits the work to those names (say, the closure of one output); ``free``
    names symbols that may stay in the values — bind ``x`` to ``Symbol("x")`` to get
    every output as an expression of ``x`` (solve, sensitivity and sweep do). ``known``,
    ``(values, missing)`` already worked out at the same point, is taken as it is, not
    computed again (a :class:`Point`'s, or those that do not depend on a free input)."""
    values: Dict[str, Basic] = {}
    missing: Dict[str, FrozenSet[str]] = {}
    symbols: Dict[Symbol, Basic] = {}
    plain: Dict[str, object] = {}  # the same values as Python Fractions/bools/strings, for exact.py
    free = frozenset(free)
    done_values, done_missing = known if known is not None else ({}, {})
    for name in ruleset.order:
        if only is not None and name not in only:
            continue
        if name in done_missing:
            missing[name] = done_missing[name]
            continue
        if name in done_values:
            value = values[name] = done_values[name]
            symbols[Symbol(name)] = value
            try:
                plain[name] = to_python_value(value)
            except Unsupported:
                pass
            continue
        rule = ruleset.rules.get(name)
        if name in bound:
            value = bound[name]
        elif rule is None or (rule.kind == "input" and rule.expr is None):
            missing[name] = frozenset({name})
            continue
        else:
            lacking = frozenset().union(*(missing[d] for d in rule.deps if d in missing)) if rule.deps else frozenset()
            try:
                if lacking:
                    # An unset input only in a branch not taken (a learned position table's s_max, when
                    # the model has none) leaves the value decided: exact.py evaluates the branches it
                    # takes and gives up (None) on an unset name it reaches.
                    value = _fast_value(rule, plain) if rule.expr.has(Piecewise) else None
                    if value is None:
                        missing[name] = lacking
                        continue
                else:
                    value = _fast_value(rule, plain)  # None when a dependency is symbolic, or on any doubt
                    if value is None:
                        value = _value_of(rule, symbols, free)
            except TooLarge as exc:
                raise ValueTooLarge(
                    f"'{name}' is too large to work out exactly at these values ({exc})", rule.location,
                    hint=f"exact values are limited to 2^{MAX_BITS} (about 10^1233); is an input far too large, "
                         "or a power's exponent an input?", rule=rule) from None
            if getattr(value, "is_Rational", False) and (value.p.bit_length() > MAX_BITS or value.q.bit_length() > MAX_BITS):
                raise ValueTooLarge(
                    f"'{name}' is beyond 2^{MAX_BITS} (about 10^1233) at these values", rule.location,
                    hint="no memory size is that large: is an input far too large?", rule=rule)
        values[name] = value
        symbols[Symbol(name)] = value
        try:
            plain[name] = to_python_value(value)
        except Unsupported:
            pass
    return values, missing


def _fast_value(rule: Rule, plain: Mapping[str, object]) -> Optional[Basic]:
    """The rule's value by exact.py, or None to let SymPy do it (irrational results, errors)."""
    try:
        return to_sympy_value(evaluate_exact(rule.expr, plain))
    except (Unsupported, ArithmeticError, TypeError, ValueError, MissingKey, RecursionError):
        return None  # SymPy recomputes it and reports any error in its own words


def _value_of(rule: Rule, symbols: Mapping[Symbol, Basic], free=frozenset()) -> Basic:
    expr = rule.expr
    subs = {Symbol(d): symbols[Symbol(d)] for d in rule.deps}
    _check_kinds(rule, subs)
    if not free:
        _check_logs(rule, subs)
    try:
        with warnings.catch_warnings():
            # SymPy only warns when a table or a list lands in a sum; here that is an error.
            warnings.simplefilter("error", SymPyDeprecationWarning)
            value = expr.xreplace(subs) if subs else expr
    except MissingKey as exc:
        raise UnknownKey[EvaluationError](
            f"'{rule.name}': the table {exc.table.table_name} has no key {exc.key}",
            rule.location,
            hint="keys: " + ", ".join(exc.table.entries), rule=rule,
            table=exc.table.table_name, key=exc.key.value, keys=tuple(exc.table.entries),
        ) from None
    except ZeroDivisionError:
        raise NoRealValue[EvaluationError](f"'{rule.name}' divides by zero at these values (x / 0 or x % 0)",
                                           rule.location, rule=rule, operation="division") from None
    except (TypeError, ValueError, AttributeError, SymPyDeprecationWarning) as exc:
        raise TypeMismatch[EvaluationError](
            f"'{rule.name}' cannot be computed from these values ({_plain(exc)})",
            rule.location,
            hint="true/false and strings cannot be used in arithmetic; write (A if flag else B)", rule=rule,
            expected="a number", found="true/false or a string",
        ) from None
    except RecursionError:
        raise LimitExceeded[EvaluationError](f"'{rule.name}' is nested too deeply to evaluate", rule.location,
                                             rule=rule, what="nesting") from None
    if free and _names(value) and _names(value) <= free:
        return value
    return _checked(rule, value)


def _check_kinds(rule: Rule, subs: Mapping[Symbol, Basic]) -> None:
    """A table or a list is only ever looked up or searched: anywhere else it is an error
    that names it (SymPy would put it in a sum and fail somewhere inside)."""
    for symbol, value in subs.items():
        if isinstance(value, (Table, TextSet)) and _used_outside(rule.expr, symbol):
            what = "the table" if isinstance(value, Table) else "the list"
            how = "look a value up with table[key]" if isinstance(value, Table) else 'test it with "item" in list'
            raise TypeMismatch[EvaluationError](f"'{rule.name}' uses {what} '{symbol.name}' as a value", rule.location,
                                                hint=f"{what} cannot be used in arithmetic or compared; {how}",
                                                rule=rule, expected="a number", found=what.replace("the ", "a "))


def _used_outside(expr: Basic, symbol: Symbol) -> bool:
    """Does ``symbol`` appear in ``expr`` other than as a Lookup's table or a Member's list?"""
    stack = [expr]
    while stack:
        node = stack.pop()
        if node == symbol:
            return True
        if isinstance(node, Lookup):
            stack.extend(a for a in node.args[1:])
            if node.args[0] != symbol:
                stack.append(node.args[0])
            continue
        if isinstance(node, Member):
            stack.append(node.args[0])
            continue
        stack.extend(getattr(node, "args", ()))
    return False


def _check_logs(rule: Rule, subs: Mapping[Symbol, Basic]) -> None:
    """log() of zero or a negative number, and log(x, b) with b <= 0 or b = 1, are errors
    (SymPy turns log(x, 0) into 0 without a word)."""
    if not rule.expr.has(log):
        return
    for node in rule.expr.atoms(log):
        argument = node.args[0].xreplace(subs) if subs else node.args[0]
        if argument.is_number and argument.is_real and argument <= 0:
            raise NoRealValue[EvaluationError](
                f"'{rule.name}' takes the logarithm of {argument} at these values (log needs a positive number; "
                "log(x, base) a positive base other than 1)", rule.location, rule=rule, operation="log")


def _names(value: Basic) -> FrozenSet[str]:
    return frozenset(s.name for s in value.free_symbols if not isinstance(s, Text)) if isinstance(value, Basic) else frozenset()


def _plain(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) < 120 else text[:117] + "..."


def _checked(rule: Rule, value: Basic) -> Basic:
    """A value must be a finite real number, a boolean, a string, a list or a table."""
    if isinstance(value, (BooleanAtom, Text, TextSet, Table)):
        return value
    if value.has(zoo, nan) or value.has(Symbol("zoo")):
        raise NoRealValue[EvaluationError](f"'{rule.name}' divides by zero at these values", rule.location, rule=rule,
                                           operation="division")
    if not value.is_number:
        raise TypeMismatch[EvaluationError](
            f"'{rule.name}' does not reduce to a number at these values: {value}",
            rule.location,
            hint="is a string compared with < or >, or a true/false used as a number?", rule=rule,
            expected="a number", found="an expression with names left in it",
        )
    if value.is_real is False:
        raise NoRealValue[EvaluationError](f"'{rule.name}' has no real value at these values ({value})", rule.location,
                                           hint="a square root or logarithm of a negative number?", rule=rule,
                                           operation="complex")
    if value.is_finite is False:
        raise NoRealValue[EvaluationError](f"'{rule.name}' is infinite at these values", rule.location, rule=rule,
                                           operation="infinite")
    return value


def _holds(rule, values: Mapping[str, Basic], plain: Mapping) -> Optional[bool]:
    """Does a requirement's (or expectation's) condition hold at the values? None: undecided."""
    try:
        ok = evaluate_exact(rule.expr, plain)
    except Unsupported:
        try:
            ok = rule.expr.xreplace({Symbol(d): values[d] for d in rule.deps})
        except (TypeError, ValueError, MissingKey):
            return None
    except (ArithmeticError, TypeError, ValueError, MissingKey):
        return None
    if ok is True or (isinstance(ok, BooleanAtom) and bool(ok)):
        return True
    if ok is False or (isinstance(ok, BooleanAtom) and not bool(ok)):
        return False
    return None


def _python_values(values: Mapping[str, Basic]) -> dict:
    plain = {}
    for n, v in values.items():
        try:
            plain[n] = to_python_value(v)
        except Unsupported:
            pass
    return plain


def shown_number(value) -> str:
    """A value as a warning shows it: whole numbers with thousands separators (8,192)."""
    if isinstance(value, Basic) and value.is_Integer:
        return f"{int(value):,}"
    return shown_value(value)


def unmet_expectations(ruleset: RuleSet, values: Mapping[str, Basic], expectations=None) -> List[str]:
    """The warnings of the expectations (``expect COND "doc"``) that do not hold at the values,
    each with the values it tested: "beyond the model's context length s_max (here s = 8,192,
    s_max = 4,096)". One whose inputs have no value, or whose condition cannot be decided, says nothing."""
    plain = _python_values(values)
    out = []
    for rule in ruleset.expectations if expectations is None else expectations:
        if any(d not in values for d in rule.deps) or _holds(rule, values, plain) is not False:
            continue
        out.append(expectation_warning(rule, values))
    return out


def expectation_warning(rule, values: Mapping[str, Basic]) -> str:
    """An unmet expectation in words, with the values it tested: "beyond the model's context
    length s_max (here s = 8,192, s_max = 4,096)"."""
    shown = ", ".join(f"{n} = {shown_number(values[n])}" for n in sorted(rule.deps) if n in values)
    return (rule.doc or f"expected: {one_line(rule.text)}") + (f" (here {shown})" if shown else "")


def check_requirements(ruleset: RuleSet, bindings: Mapping[str, Binding], values: Mapping[str, Basic],
                        requirements=None) -> None:
    """Every requirement (or those given) whose inputs have values must hold: else a SpecError
    located at the latest spec line or --set that bound an input involved."""
    plain = _python_values(values)
    for rule in ruleset.requirements if requirements is None else requirements:
        if any(d not in values for d in rule.deps):
            continue
        if _holds(rule, values, plain):
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
