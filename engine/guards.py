"""What evaluation refuses to show, and whose fault an error is.

* :func:`check_memory` — no memory the report shows (and none a user's file defines) is
  negative or absurdly large: either is an error naming the definition and the inputs behind it.
  The headrooms, memory left over, are the only memories that may be negative.
* :func:`blame` — an error inside a built-in formula that a user's value caused points at that
  value (its spec line or ``--set``) and says what the formulas expect of it.

Which outputs are shown, and which are headrooms, is the report's data (engine/regimes.py).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Dict, List, Mapping

from .errors import EngineError, EvaluationError, InvalidValue, LimitExceeded, SpecError
from .regimes import HEADROOM, PEAKS, REGIMES
from .rules import Rule, RuleSet
from .spec import Binding
from .values import exact_number

__all__ = ["check_memory", "blame", "MAX_MEMORY", "SIGNED", "SHOWN", "shown_value"]

# No memory the report shows is larger than this: 2^100 bytes, a million times the memory of
# every GPU ever made together. Anything above comes from an input far out of range.
MAX_MEMORY = 2**100

# Memory outputs that may be negative: what is left of the GPU (negative: does not fit).
SIGNED = frozenset(HEADROOM.values()) | frozenset(peak[1] for peak in PEAKS.values())
# The memory the report shows: every row, total, peak and phase of every regime.
SHOWN = (frozenset(out for _, total, rows in REGIMES for out in (total, *rows.values()))
         | frozenset(out for peak, _, phases in PEAKS.values() for out in (peak, *(o for _, o in phases)))) - SIGNED

_CONDITION, _NUMBER = "true or false", "a number"


def check_memory(ruleset: RuleSet, bindings: Mapping[str, Binding], values: Mapping[str, object]) -> None:
    """Every shown memory, and every ``[bytes]`` definition of a user's file, in ``values``
    lies in 0 … MAX_MEMORY. (Built-in intermediate differences such as qlora_shift may be
    negative: they are not shown.)"""
    if len(values) * 4 < len(ruleset.order):  # a few values: the outputs among them, in order
        outputs = [n for n in ruleset.in_order(values) if ruleset.rules.get(n) is not None
                   and ruleset.rules[n].kind == "definition"]
    else:
        outputs = ruleset.outputs
    for name in outputs:
        value = values.get(name)
        if value is None or name in SIGNED or ruleset.unit(name) != "bytes":
            continue
        rule = ruleset.rules[name]
        if name not in SHOWN and rule.builtin:
            continue
        value = _number(value)
        if value is None:
            continue
        if value > MAX_MEMORY:
            raise LimitExceeded[EvaluationError](
                f"'{name}' comes out at about 10^{len(str(int(value))) - 1} bytes at these values, beyond the bound "
                f"of 2^{MAX_MEMORY.bit_length() - 1} bytes (about 10^30) for a memory",
                rule.location, hint="is an input far too large?", rule=rule, what="memory", limit=MAX_MEMORY,
                amount=value)
        if value < 0:
            involved = _involved(ruleset, bindings, rule)
            where = involved[-1].location if rule.builtin and involved else rule.location
            notes = [f"{rule.where}: {one_line(rule.text)}"] if where is not rule.location else []
            if involved:
                notes.append("set here: " + "; ".join(f"{b.location}: {b.key} = {shown_value(b.plain)}"
                                                     for b in involved[-4:]))
            raise InvalidValue[EvaluationError](
                f"'{name}' comes out negative ({value} bytes) at these values; memory cannot be negative",
                where, notes=notes, rule=rule, name=name, value=value, expected="at least 0 bytes",
                hint="check the inputs above (a negative size or count?)" if involved
                else "the definition itself gives a negative number: is a sign or a term wrong?")


def _number(value):
    """A memory's value as a number to compare (exact where it is rational), or None where it is
    not a number (a string, a condition)."""
    exact = exact_number(value)
    if exact is not None:
        return exact
    if getattr(value, "is_number", False) and getattr(value, "is_real", False):
        return value  # an irrational SymPy number: it compares with numbers all the same
    return None


def blame(exc: EvaluationError, ruleset: RuleSet, bindings: Mapping[str, Binding]) -> EngineError:
    """``exc``, or — if it is a built-in formula's and a user's value is behind it — an error
    at that value: the one whose kind does not fit how the formulas use it, else the latest."""
    rule = getattr(exc, "rule", None)
    if rule is None or not rule.builtin:
        return exc
    involved = _involved(ruleset, bindings, rule)
    if not involved:
        return exc
    uses = _uses(ruleset)
    misfits = [b for b in involved if _misfit(b, uses.get(b.name), ruleset)]
    culprit = (misfits or involved)[-1]
    value = shown_value(culprit.plain)
    if misfits:
        expects = uses[culprit.name]
        return InvalidValue[SpecError](f"'{culprit.key}' = {value}: the formulas use '{culprit.name}' as {expects}",
                                       culprit.location, hint=f"'{culprit.name}' expects {expects}",
                                       notes=[f"{rule.where}: {exc.message}"], name=culprit.name,
                                       value=culprit.plain, expected=expects)
    # the same kind of mistake (no real value, a type, too large...), at the value that caused it
    return exc.moved(SpecError, culprit.location, message=f"'{culprit.key}' = {value}: {exc.message}",
                     notes=[f"{rule.where}: {one_line(rule.text)}"])


def _misfit(binding: Binding, expects, ruleset: RuleSet) -> bool:
    """Is the bound value of a kind the formulas do not use this name as?"""
    value = binding.plain
    if isinstance(value, (str, tuple)):
        return expects is not None and ruleset.allowed_values(binding.name) is None
    if isinstance(value, bool):
        return expects == _NUMBER
    return expects == _CONDITION


def _involved(ruleset: RuleSet, bindings: Mapping[str, Binding], rule: Rule) -> List[Binding]:
    """The bindings the value of ``rule`` depends on, in the order they were given."""
    behind = ruleset.closure(rule.deps)
    return [b for n, b in bindings.items() if n in behind]


def _uses(ruleset: RuleSet) -> Dict[str, str]:
    """name → "true or false" or "a number", from how the formulas use each name directly
    (a condition of an if, an and/or/not; or arithmetic and < >). Only on the error path."""
    from sympy import Add, Basic, Mul, Piecewise, Pow, Symbol
    from sympy.core.relational import GreaterThan, LessThan, StrictGreaterThan, StrictLessThan
    from sympy.logic.boolalg import And, Not, Or

    from .symbols import Text

    out: Dict[str, str] = {}
    for rule in ruleset.rules.values():
        if rule.expr is None or rule.kind == "table":
            continue
        stack = [rule.expr]
        while stack:
            node = stack.pop()
            args = node.args
            if isinstance(node, Piecewise):
                used, kind = [c for _, c in args], _CONDITION
            elif isinstance(node, (And, Or, Not)):
                used, kind = args, _CONDITION
            elif isinstance(node, (Add, Mul, Pow, StrictLessThan, LessThan, StrictGreaterThan, GreaterThan)):
                used, kind = args, _NUMBER
            else:
                used, kind = (), None
            for a in used:
                if isinstance(a, Symbol) and not isinstance(a, Text):
                    out.setdefault(a.name, kind)
            stack.extend(a for a in args if isinstance(a, Basic))
    return out


def shown_value(value) -> str:
    """A value as a message shows it: true/false, "text", ["a", "b"] (a list), {key: value} (a
    table) or the number (3/2 for a fraction) — plain or SymPy alike."""
    cls = value.__class__
    if cls is bool:
        return "true" if value else "false"
    if cls is str:
        return f'"{value}"'
    if cls is tuple:
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    if cls is dict:
        return "{" + ", ".join(f"{k}: {shown_value(v)}" for k, v in value.items()) + "}"
    if cls is Fraction or cls is int:
        return str(value)
    if cls.__name__ in ("BooleanTrue", "BooleanFalse"):  # SymPy's true and false
        return "true" if cls.__name__ == "BooleanTrue" else "false"
    return str(value)


def one_line(text: str) -> str:
    return " ".join(text.split())
