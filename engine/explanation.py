"""``vram-eval explain NAME``: everything the formulas say about one name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Mapping, Optional, Tuple

from sympy.logic.boolalg import BooleanAtom

from .errors import BindingError, Location, UnknownName, closest, did_you_mean
from .problem import Problem
from .rules import RuleSet
from .specialise import specialise
from .symbols import Table

__all__ = ["Explanation", "explain", "list_names"]


@dataclass(frozen=True)
class Explanation:
    name: str
    kind: str  # definition | input | table | implicit input
    unit: Optional[str]
    doc: str
    written: Optional[str]  # the statement as written
    expanded: Optional[str]  # the SymPy form with every definition substituted, at the chosen variants
    choices: Tuple[str, ...]  # the string/boolean input values `expanded` assumes
    expanded_general: Optional[str]  # the same with every choice left symbolic
    where: Optional[str]  # file:line
    notes: str  # the comment block above it: sources, caveats
    aliases: Tuple[str, ...]
    depends_on: Tuple[str, ...]  # direct dependencies
    inputs: Tuple[str, ...]  # every input it can depend on
    used_by: Tuple[str, ...]  # direct dependants
    allowed: Optional[Tuple[str, ...]]  # for string inputs
    replaces: Optional[str]  # the built-in it overrides, if any


def explain(ruleset: RuleSet, name: str, bindings: Optional[Mapping] = None) -> Explanation:
    """Everything about ``name``; ``bindings`` (name → Binding) fix string and boolean
    inputs for the specialised expansion (their defaults otherwise)."""
    canonical = ruleset.resolve(name)
    if canonical is None:
        from .library import Library

        elsewhere = Library().variants_defining(name)
        where = Location("explain", None, 1, name, len(name))
        known = tuple(ruleset.known_names())
        if elsewhere:
            raise UnknownName[BindingError](f"'{name}' is defined only for " + " and ".join(elsewhere), where,
                                            hint="choose that variant: --set " + elsewhere[0],
                                            name=name, known=known, suggestion=None)
        guess = closest(name, known)
        raise UnknownName[BindingError](f"no input or output is called '{name}'", where,
                                        hint=did_you_mean(guess) or "`vram-eval explain --list` lists every name",
                                        name=name, known=known, suggestion=guess)
    rule = ruleset.rules.get(canonical)
    used_by = tuple(n for n in ruleset.order if n in ruleset.rules and canonical in ruleset.rules[n].deps)
    allowed = ruleset.allowed_values(canonical)
    replaces = next((old.where for new, old in ruleset.overridden if new.name == canonical), None)
    if rule is None:
        return Explanation(canonical, "implicit input", None, "used by the formulas but never declared",
                           None, None, (), None, None, "", (), (), (canonical,), used_by,
                           tuple(sorted(allowed)) if allowed else None, None)
    expanded = general = None
    choices: Tuple[str, ...] = ()
    if rule.kind == "definition":
        full = ruleset.expand(canonical)
        general = str(full)
        specialised, fixed = specialise(Problem(ruleset, bindings or {}), canonical, full)
        expanded = str(specialised)
        used = {str(sym) for sym in full.free_symbols}
        choices = tuple(f"{n} = {_show(v)}" for n, v in fixed.items() if n in used and not isinstance(v, Table))
    return Explanation(
        name=canonical,
        kind=rule.kind,
        unit=rule.unit,
        doc=rule.doc,
        written=rule.text,
        expanded=expanded,
        choices=choices,
        expanded_general=general,
        where=rule.where,
        notes=rule.comment,
        aliases=rule.aliases,
        depends_on=tuple(sorted(rule.deps)),
        inputs=tuple(i for i in ruleset.inputs_of(canonical) if i != canonical),
        used_by=used_by,
        allowed=tuple(sorted(allowed)) if allowed else None,
        replaces=replaces,
    )


def _show(value) -> str:
    if isinstance(value, BooleanAtom):
        return "true" if value else "false"
    return str(value)


def list_names(ruleset: RuleSet) -> List[Tuple[str, str, str, str]]:
    """(name, kind, unit, doc) for every input and output, inputs first."""
    out = []
    for name in ruleset.inputs:
        rule = ruleset.rules.get(name)
        out.append((name, "input", (rule.unit if rule else "") or "", rule.doc if rule else "(implicit)"))
    for name in ruleset.outputs:
        rule = ruleset.rules[name]
        out.append((name, "output", rule.unit or "", rule.doc))
    return out
