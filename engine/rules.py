"""Rules and the RuleSet: names, overrides, the dependency graph, cycles, order.

A :class:`Rule` is one statement of a formula file: a definition
(``name = expression``), an input declaration, a table, or a requirement. A
:class:`RuleSet` is every rule from the loaded files, with

* duplicates refused (within the built-in files, or within the user's), and
  a user's file allowed to override a built-in definition (recorded);
* aliases resolved, in specs and in expressions alike;
* names used but never defined or declared taken as inputs;
* the dependency graph checked for cycles and put in evaluation order.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Iterable, List, Optional, Tuple

from .errors import CyclicDefinition, DuplicateDefinition, FormulaError, Location, UnknownName
from .nodes import Expression

__all__ = ["Rule", "FormulaFile", "RuleSet"]


@dataclass(frozen=True)
class Rule:
    """One statement of a formula file."""

    name: Optional[str]  # None for a requirement
    kind: str  # "definition" | "input" | "table" | "requirement" | "expectation" (a soft requirement)
    expression: Optional[Expression]  # the expression, an input's default, the table, the condition
    unit: Optional[str]
    doc: str
    aliases: Tuple[str, ...]
    location: Location
    text: str  # the statement as written
    comment: str  # the comment lines right above it: notes and sources
    builtin: bool

    @property
    def expr(self):
        """The expression as SymPy (built on first use from the cache's node table)."""
        return self.expression.expr if self.expression is not None else None

    @functools.cached_property
    def deps(self) -> FrozenSet[str]:
        return self.expression.names if self.expression is not None else frozenset()

    @property
    def where(self) -> str:
        return f"{self.location.path}:{self.location.line}"


@dataclass(frozen=True)
class FormulaFile:
    path: Optional[str]
    rules: Tuple[Rule, ...]
    requirements: Tuple[Rule, ...]
    builtin: bool


@dataclass
class RuleSet:
    """Every rule of the loaded formula files, checked and ordered."""

    rules: Dict[str, Rule]
    requirements: List[Rule]
    alias_of: Dict[str, str]
    overridden: List[Tuple[Rule, Rule]]  # (the user's rule, the built-in it replaced)
    free: FrozenSet[str]  # names used but never defined or declared: implicit inputs
    order: List[str]  # every name, dependencies before dependants
    choices: Dict[str, Tuple[str, ...]] = field(default_factory=dict)  # variant selectors → their values
    expectations: List[Rule] = field(default_factory=list)  # soft requirements: warnings, not errors

    # ------------------------------------------------------------------
    @classmethod
    def build(cls, files: Iterable[FormulaFile], choices: Optional[Dict[str, Tuple[str, ...]]] = None) -> "RuleSet":
        rules: Dict[str, Rule] = {}
        overridden: List[Tuple[Rule, Rule]] = []
        requirements: List[Rule] = []
        for file in files:
            for rule in file.rules:
                old = rules.get(rule.name)
                if old is not None:
                    if old.builtin and not rule.builtin:
                        overridden.append((rule, old))
                        if rule.unit is None and old.unit is not None:
                            rule = dataclasses.replace(rule, unit=old.unit)  # an override keeps its unit
                    else:
                        raise DuplicateDefinition[FormulaError](
                            f"'{rule.name}' is defined twice",
                            rule.location,
                            notes=[f"{old.where}: first defined here: {_one_line(old.text)}"],
                            hint="rename one of them, or put an override in your own file passed with --formulas",
                            name=rule.name, first=old.location,
                        )
                rules[rule.name] = rule
            requirements.extend(file.requirements)

        alias_of = _aliases(rules)
        if alias_of:
            rules = {name: _canonical(rule, alias_of) for name, rule in rules.items()}
            requirements = [_canonical(rule, alias_of) for rule in requirements]
        expectations = [rule for rule in requirements if rule.kind == "expectation"]
        requirements = [rule for rule in requirements if rule.kind != "expectation"]

        used = set()
        for rule in list(rules.values()) + requirements + expectations:
            used |= rule.deps
        free = frozenset(used - set(rules))
        order = _order(rules)
        return cls(rules, requirements, alias_of, overridden, free, order, dict(choices or {}), expectations)

    # ------------------------------------------------------------------
    def resolve(self, name: str) -> Optional[str]:
        """The canonical name for a name or alias, or None if unknown."""
        if name in self.rules or name in self.free:
            return name
        return self.alias_of.get(name)

    def undeclared(self) -> List[Tuple[str, UnknownName]]:
        """(name, located error) for each name a formula uses that nothing defines or declares
        (a typo, or a new input that needs ``input NAME``), with "did you mean"."""
        from .errors import closest, did_you_mean

        known = sorted((set(self.rules) | set(self.alias_of)) - self.free)
        first_use: Dict[str, Rule] = {}  # the first statement, in evaluation order, that uses each name
        for rule in [self.rules[n] for n in self.order if n in self.rules] + self.requirements + self.expectations:
            for name in rule.deps & self.free:
                first_use.setdefault(name, rule)
        errors = []
        for name in sorted(self.free):
            guess = closest(name, known)
            errors.append((name, UnknownName[FormulaError](
                f"'{name}' is not defined: no formula defines it and no input declares it",
                _name_location(first_use[name], name),
                hint=(did_you_mean(guess) + " " if guess else "")
                + f"(a new input must be declared: input {name} [count] = 1 \"what it is\")",
                name=name, known=known, suggestion=guess,
            )))
        return errors

    def known_names(self) -> List[str]:
        return sorted(set(self.rules) | set(self.free) | set(self.alias_of))

    @property
    def inputs(self) -> List[str]:
        """Declared inputs and implicit ones (free names), in evaluation order."""
        return [n for n in self.order if n in self.free or self.rules[n].kind == "input"]

    @property
    def outputs(self) -> List[str]:
        return [n for n in self.order if n in self.rules and self.rules[n].kind == "definition"]

    def unit(self, name: str) -> Optional[str]:
        rule = self.rules.get(name)
        return rule.unit if rule else None

    def allowed_values(self, name: str) -> Optional[FrozenSet[str]]:
        """The strings an input may take, learnt from how the formulas use it:
        the keys of every table it indexes, else the strings it is compared with."""
        if name in self.choices:
            return frozenset(self.choices[name])
        rule = self.rules.get(name)
        if rule is not None and rule.unit not in (None, "text", "list"):
            return None  # a number or a bool takes no strings: no need to walk the formulas
        return self._string_uses(name)[0]

    def _string_uses(self, name: str):
        """(the strings ``name`` may take or None, whether it is used as a list), from a walk of
        the expressions that use it (each name's answer kept)."""
        cache = self.__dict__.setdefault("_string_cache", {})
        if name in cache:
            return cache[name]
        is_list = False
        keys: List[FrozenSet[str]] = []
        literals: set = set()
        for rule in list(self.rules.values()) + self.requirements:
            if rule.expression is None or name not in rule.deps:
                continue
            for tag, a, b in _string_nodes(rule.expression):
                if tag == "Lookup":
                    target = self.rules.get(a[1]) if a[0] == "Sym" else None
                    if b == ("Sym", name) and target and target.kind == "table":
                        keys.append(frozenset(_table_keys(target.expression)))
                elif tag == "TextEq":
                    for x, y in ((a, b), (b, a)):
                        if x == ("Sym", name) and y[0] == "Text":
                            literals.add(y[1])
                elif b == ("Sym", name):  # Member: item in collection
                    literals.add(a[1])
                    is_list = True
        allowed = frozenset.intersection(*keys) if keys else (frozenset(literals) if literals else None)
        cache[name] = (allowed, is_list)
        return cache[name]

    def is_list_input(self, name: str) -> bool:
        rule = self.rules.get(name)
        if rule is not None and rule.unit is not None:
            return rule.unit == "list"  # a declared unit says it (a [count] is never a list): no walk
        return self._string_uses(name)[1]

    def in_order(self, names: Iterable[str]) -> List[str]:
        """Those of ``names`` the rule set orders, in evaluation order: ``[n for n in self.order if
        n in names]``, without walking every name (each name's position kept)."""
        kept = self.__dict__.get("_position")
        if kept is None or kept[0] is not self.order or kept[1] != len(self.order):
            kept = self.__dict__["_position"] = (self.order, len(self.order),
                                                  {n: i for i, n in enumerate(self.order)})
        position = kept[2]
        return sorted((n for n in set(names) if n in position), key=position.__getitem__)

    def closure(self, names: Iterable[str]) -> FrozenSet[str]:
        """The names and everything they depend on, definitions and inputs alike (a few names'
        closure kept: the questions ask the same ones again and again)."""
        if names is self.order:
            return self.__dict__.setdefault("_everything", frozenset(self.order))
        names = tuple(names)
        if len(names) > 16:
            return self._closure(names)
        cache = self.__dict__.setdefault("_closures", {})
        found = cache.get(names)
        if found is None:
            if len(cache) > 4096:
                cache.clear()
            found = cache[names] = self._closure(names)
        return found

    def _closure(self, names) -> FrozenSet[str]:
        seen, stack = set(), list(names)
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self.dependencies(current))
        return frozenset(seen)

    def dependencies(self, name: str) -> FrozenSet[str]:
        rule = self.rules.get(name)
        return rule.deps if rule else frozenset()

    def inputs_of(self, name: str) -> List[str]:
        """Every input the value of ``name`` can depend on (through defaults too)."""
        return self.inputs_behind([name])

    def inputs_behind(self, names: Iterable[str]) -> List[str]:
        """Every input the given names can depend on, in evaluation order."""
        seen, stack, out = set(), list(names), []
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            rule = self.rules.get(current)
            if rule is None or rule.kind == "input":
                out.append(current)
            if rule is not None:
                stack.extend(sorted(rule.deps))
        return [n for n in self.order if n in out]

    def expand(self, name: str, fixed=None, keep: Iterable[str] = ()):
        """The expression of ``name`` with every definition substituted, down to inputs. Names in
        ``fixed`` take those (SymPy) values as the expansion goes (so a branch they rule out is
        never built); definitions in ``keep`` stay names."""
        from sympy import Symbol

        from .symbols import substitute

        fixed = {Symbol(n): v for n, v in (fixed or {}).items()}
        keep = set(keep)
        memo: Dict[str, object] = {}
        needed = self.closure([name])
        for current in self.order:
            if current not in needed or current in keep:
                continue
            rule = self.rules.get(current)
            if rule is None or rule.kind != "definition":
                continue
            subs = {Symbol(d): memo[d] if d in memo else fixed[Symbol(d)] for d in rule.deps
                    if d in memo or Symbol(d) in fixed}
            memo[current] = substitute(rule.expr, subs)
            if current == name:
                break
        if name in memo:
            return memo[name]
        return Symbol(name)


def _name_location(rule: Rule, name: str) -> Location:
    """Where ``name`` is first written in the statement (else the statement itself)."""
    import re

    loc = rule.location
    for m in re.finditer(r"(?<![A-Za-z0-9_\"'])" + re.escape(name) + r"(?![A-Za-z0-9_])", rule.text):
        if m.start() == 0 and rule.kind not in ("requirement", "expectation"):
            continue  # the statement's own name
        before = rule.text[: m.start()]
        line = (loc.line or 1) + before.count("\n")
        column = m.start() - (before.rfind("\n") + 1) + 1 if "\n" in before else (loc.column or 1) + m.start()
        source = rule.text.splitlines()[before.count("\n")]
        if "\n" not in before and loc.source_line is not None:
            source = loc.source_line
        return Location(loc.path, line, column, source, len(name))
    return loc


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:77] + "..."


def _aliases(rules: Dict[str, Rule]) -> Dict[str, str]:
    alias_of: Dict[str, str] = {}
    for rule in rules.values():
        for alias in rule.aliases:
            if alias in rules:
                raise DuplicateDefinition[FormulaError](
                    f"alias '{alias}' of '{rule.name}' is already the name of a rule",
                    rule.location,
                    notes=[f"{rules[alias].where}: '{alias}' is defined here"],
                    name=alias, first=rules[alias].location,
                )
            if alias in alias_of and alias_of[alias] != rule.name:
                other = rules[alias_of[alias]]
                raise DuplicateDefinition[FormulaError](
                    f"alias '{alias}' is given to both '{alias_of[alias]}' and '{rule.name}'",
                    rule.location,
                    notes=[f"{other.where}: '{other.name}' declares it too"],
                    name=alias, first=other.location,
                )
            alias_of[alias] = rule.name
    return alias_of


def _canonical(rule: Rule, alias_of: Dict[str, str]) -> Rule:
    """Rewrite aliases used inside an expression to the canonical names."""
    hits = {a for a in rule.deps if a in alias_of}
    if not hits:
        return rule
    return dataclasses.replace(rule, expression=rule.expression.renamed({a: alias_of[a] for a in hits}))


def _order(rules: Dict[str, Rule]) -> List[str]:
    """Names in dependency order (iterative DFS); a cycle is a located error."""
    order: List[str] = []
    state: Dict[str, int] = {}  # 1 = on the stack, 2 = done
    for root in rules:
        if state.get(root):
            continue
        stack = [(root, iter(sorted(rules[root].deps)))]
        path = [root]
        state[root] = 1
        while stack:
            name, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                state[name] = 2
                order.append(name)
                continue
            if child not in rules:
                if child not in state:
                    state[child] = 2
                    order.append(child)  # an implicit input
                continue
            if state.get(child) == 1:
                cycle = path[path.index(child) :] + [child]
                raise _cycle_error(cycle, rules)
            if not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(rules[child].deps))))
    return order


def _cycle_error(cycle: List[str], rules: Dict[str, Rule]) -> CyclicDefinition:
    first = rules[cycle[0]]
    notes = [f"{rules[n].where}: {_one_line(rules[n].text)}" for n in cycle[:-1]]
    return CyclicDefinition(
        "these definitions depend on each other in a cycle: " + " → ".join(cycle),
        first.location,
        notes=notes,
        hint="one of them must be given a value that does not depend on the others",
        cycle=tuple(cycle),
    )


def _string_nodes(expression: Expression):
    """``(tag, first argument, second argument)`` of each lookup, string comparison and
    membership test in an expression, each argument as its node (``("Sym", name)``,
    ``("Text", value)``, ...)."""
    table, root = expression.table
    if table is None:
        yield from _string_nodes_sympy(expression.expr)
        return
    nodes = table.nodes
    for i in table.reachable(root):
        node = nodes[i]
        if node[0] in ("Lookup", "TextEq", "Member"):
            yield node[0], nodes[node[1]], nodes[node[2]]


def _string_nodes_sympy(expr):
    """The same, for an expression the node format has no tag for (walked with SymPy)."""
    from sympy import Symbol

    from .symbols import Lookup, Member, Text, TextEq

    def shown(x):
        if isinstance(x, Text):
            return ("Text", x.value)
        return ("Sym", x.name) if isinstance(x, Symbol) else ("",)

    for node in expr.atoms(Lookup, TextEq, Member):
        tag = {Lookup: "Lookup", TextEq: "TextEq", Member: "Member"}[type(node)]
        yield tag, shown(node.args[0]), shown(node.args[1])


def _table_keys(expression: Expression):
    """The keys of a table literal."""
    table, root = expression.table
    if table is None:
        return expression.expr.entries
    nodes = table.nodes
    node = nodes[root]
    return [nodes[nodes[pair][1]][1] for pair in nodes[node[2]][1:]] if node[0] == "Table" else []
