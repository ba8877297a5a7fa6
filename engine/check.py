"""``vram-eval check``: lint formula files without evaluating anything.

Errors: syntax, unknown functions and units, duplicate names, alias clashes,
cycles — in every file, and in every variant of every variant directory; a name in
formulas/jobs.toml that the formulas do not define; a variant that leaves out a name of
its directory's interface, or declares one differently from the others; an input that
nothing reads, and a variant's definition that nothing uses.
Also the TOML data files the engine reads at run time: the catalogs under ``specs/catalog/``
and the jobs file (formulas/jobs.toml): a TOML syntax error in one (an inline table written
over several lines, say) is reported with its file, line and column, not left to the first
run that reads the file.
Warnings: inputs without a default that no spec in ``specs/`` sets.

A variant directory's *interface* (formulas/arch/: the block) is the names its variants
define that a file outside the directory uses: the shared formulas name each of them where
they use it. Every variant defines every one (a block without the feature defines it as 0
or false, with a doc that says so), as the same kind (input or definition) with the same
unit. The other names of a variant file are its own: used only there, free to differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Set, Tuple

from . import resources
from .errors import (EngineError, FormulaError, IncompleteVariant, InconsistentVariants, Location, UnreadableFile,
                     UnusedName)
from .library import Library, formula_files, read_file
from .rules import FormulaFile, Rule, RuleSet, _name_location, _one_line

__all__ = ["CheckReport", "check_paths"]


@dataclass
class CheckReport:
    files: List[str] = field(default_factory=list)
    rules: int = 0
    variants: List[str] = field(default_factory=list)
    errors: List[EngineError] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    tomls: List[str] = field(default_factory=list)  # the TOML catalogs and jobs file parsed


def check_paths(paths: Sequence[str] = (), builtin_dir: Optional[Path] = None,
                catalog_dir: Optional[Path] = None) -> CheckReport:
    """Check the built-in formulas and the user's ``paths``. ``builtin_dir`` checks another
    formulas tree as the built-ins (its jobs.toml, if it has one, as the jobs file);
    ``catalog_dir`` another folder of TOML catalogs than specs/catalog/."""
    report = CheckReport()
    builtin = Path(builtin_dir).resolve() if builtin_dir else resources.formulas_dir().resolve()
    user = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            report.errors.append(UnreadableFile[FormulaError]("no such file or directory", Location(raw), file=raw,
                                                              reason="missing"))
            continue
        resolved = p.resolve()
        if resolved == builtin or builtin in resolved.parents or _copy_of_builtins(p, builtin):
            continue  # the built-ins are always checked (also as a copy: a checkout's formulas/)
        user.append(raw)
    if report.errors:
        return report

    # 1. every file on its own, so that every syntax error is reported at once
    every = [(p, True) for p in formula_files(builtin)]
    every += [(p, False) for raw in user for p in formula_files(Path(raw))]
    for path, is_builtin in every:
        shown = str(Path(builtin.name) / path.relative_to(builtin)) if is_builtin else str(path)
        report.files.append(shown)
        try:
            parsed = read_file(path, shown, is_builtin)  # from the parse cache where it parsed before
            report.rules += len(parsed.rules) + len(parsed.requirements)
        except EngineError as exc:
            report.errors.append(exc)
    # the TOML data files: the catalogs and the jobs file, each parsed on its own
    catalogs = Path(catalog_dir) if catalog_dir else resources.specs_dir() / "catalog"
    tomls = sorted(catalogs.glob("*.toml")) + [p for p in [builtin / "jobs.toml"] if p.is_file()]
    for path in tomls:
        shown = str(Path(builtin.name) / path.name) if path.parent == builtin else str(
            Path(catalogs.parent.name) / catalogs.name / path.name)
        report.tomls.append(shown)
        error = _toml_error(path, shown)
        if error is not None:
            report.errors.append(error)
    if report.errors:
        return report

    # 2. the composed sets: defaults, then each variant of each variant directory
    try:
        library = Library(user, builtin_dir=builtin if builtin_dir else None)
        jobs = _jobs_check(builtin, builtin_dir is not None)
        variants = library.variant_files()
        combos = [{}] + [{sel: value} for sel, options in variants.items() for value in options]
        interface_errors, lacking = _interfaces(library.shared_files() + library.user_files(), variants)
    except EngineError as exc:
        report.errors.append(exc)
        return report
    seen = set()

    def add(error: EngineError) -> None:
        key = (error.message, str(error.location))
        if key not in seen:
            seen.add(key)
            report.errors.append(error)

    for error in interface_errors:
        add(error)
    variant_names = {r.name for files in variants.values() for f in files.values() for r in f.rules}
    unused: Dict[Tuple[str, str], Tuple[Rule, List[str], List[str]]] = {}  # (name, where) → (rule, unused in, in)
    for chosen in combos:
        try:
            ruleset = library.ruleset(chosen)
        except EngineError as exc:
            add(exc)
            continue
        for name, error in ruleset.undeclared():
            if name not in lacking:  # a variant's missing interface name is said once, above
                add(error)
        for error in jobs(ruleset):
            add(error)
        label = ", ".join(f"{sel}={value}" for sel, value in chosen.items())
        report.variants.extend(f"{sel}={value}" for sel, value in chosen.items())
        if chosen or not variants:  # with variants, {} is the default variant's set again
            idle = set(_unused(ruleset, set(variants), variant_names))
            for name, rule in ruleset.rules.items():
                if rule.kind in ("input", "definition", "table"):
                    _, off, among = unused.setdefault((name, rule.where), (rule, [], []))
                    among.append(label)
                    if name in idle:
                        off.append(label)
        for warning in _unbound(ruleset):
            if warning not in report.warnings:
                report.warnings.append(warning)
    for (name, _), (rule, off, among) in unused.items():
        if off:
            add(_unused_error(rule, off if len(off) < len(among) else []))
    return report


def _toml_error(path: Path, shown: str) -> Optional[EngineError]:
    """The located syntax error of a TOML data file (a catalog, the jobs file), or None: the
    line and column tomllib names, with the line and a caret (spec_toml._read_toml's error)."""
    from .errors import SpecError, SpecSyntaxError
    from .spec_file import _Lines
    from .spec_toml import _read_toml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return UnreadableFile[SpecError](f"cannot read {shown}: {exc}", Location(shown), file=shown, reason="unreadable")
    try:
        _read_toml(_Lines(shown, text))
    except SpecSyntaxError as exc:
        exc.hint = "a catalog or jobs file is TOML: an inline table { ... } must stay on one line"
        return exc
    except SpecError as exc:
        return exc
    return None


def _jobs_check(builtin: Path, custom: bool):
    """ruleset → the errors of the jobs file against it (the built-in formulas/jobs.toml, or a
    custom tree's own; none for a tree without one)."""
    from .regimes import JOBS_FILE, check_jobs, read_jobs

    if not custom:
        return check_jobs
    path = builtin / JOBS_FILE
    if not path.is_file():
        return lambda ruleset: []
    jobs, _, _, header = read_jobs(path)
    return lambda ruleset: check_jobs(ruleset, jobs, path, header)


def _interfaces(outside: Sequence[FormulaFile], variants: Mapping[str, Mapping[str, FormulaFile]]):
    """(errors, names some variant lacks) for each variant directory's interface: the names its
    variants define that a file outside it uses."""
    errors: List[FormulaError] = []
    lacking: Set[str] = set()
    for selector, files in variants.items():
        others = list(outside) + [f for s, fs in variants.items() if s != selector for f in fs.values()]
        alias_of = {a: r.name for f in files.values() for r in f.rules for a in r.aliases}
        uses: Dict[str, Rule] = {}  # interface name → the first statement outside that uses it
        for f in others:
            for rule in list(f.rules) + list(f.requirements):
                for name in sorted(rule.deps):
                    uses.setdefault(alias_of.get(name, name), rule)
        defined = {value: {r.name: r for r in f.rules} for value, f in files.items()}
        interface = sorted({name for names in defined.values() for name in names if name in uses})
        for name in interface:
            have = [v for v in files if name in defined[v]]
            use = uses[name]
            used_at = _name_location(use, name)
            for value in files:
                if name in defined[value]:
                    continue
                lacking.add(name)
                errors.append(IncompleteVariant(
                    f"{selector} = \"{value}\" leaves out '{name}', which {use.location.path} uses and "
                    + " and ".join(f"{selector} = \"{h}\"" for h in have) + " define" + ("s" if len(have) == 1 else ""),
                    Location(files[value].path),
                    notes=[f"{used_at}: uses it: {_one_line(use.text)}"]
                    + [f"{defined[h][name].where}: {selector} = \"{h}\" defines it: {_one_line(defined[h][name].text)}"
                       for h in have[:2]],
                    hint=f"define '{name}' in {files[value].path} (a block without the feature defines it as 0 or "
                         "false, with a doc that says so)",
                    name=name, variant=f"{selector}={value}", defined_by=tuple(f"{selector}={h}" for h in have),
                    used_at=used_at))
            declarations = tuple((f"{selector}={v}", defined[v][name].kind, defined[v][name].unit) for v in have)
            if len({(kind, unit) for _, kind, unit in declarations}) > 1:
                first = defined[have[0]][name]
                errors.append(InconsistentVariants(
                    f"the {selector} variants declare '{name}' differently: "
                    + "; ".join(f"{v}: {kind}{f' [{unit}]' if unit else ''}" for v, kind, unit in declarations),
                    first.location,
                    notes=[f"{defined[v][name].where}: {_one_line(defined[v][name].text)}" for v in have[1:]],
                    hint="the formulas outside use one meaning of it: give it the same kind and unit in every variant",
                    name=name, declarations=declarations))
    return errors, lacking


def _unused(ruleset: RuleSet, selectors: Set[str], variant_names: Set[str]) -> List[str]:
    """The inputs nothing reads and the variants' definitions nothing uses, in ``ruleset``.

    What is read starts from every definition outside the variant files (the outputs), every
    requirement and expectation, and every built-in definition a user's file overrides, and
    follows dependencies (an input's default too). A
    variant directory's selector is read by the library (it picks the file), and the spec
    readers' annotations by the report (spec_types.ANNOTATION_INPUTS)."""
    from .spec_types import ANNOTATION_INPUTS

    roots = {n for n, r in ruleset.rules.items() if r.kind == "definition" and n not in variant_names}
    for rule in ruleset.requirements + ruleset.expectations:
        roots |= rule.deps
    for _, replaced in ruleset.overridden:  # what a user's override no longer reads, the built-ins still do
        roots |= replaced.deps
    live = ruleset.closure(roots)
    out = []
    for name, rule in ruleset.rules.items():
        if name in live or name in selectors or name in ANNOTATION_INPUTS:
            continue
        if rule.kind == "input" or (name in variant_names and rule.kind in ("definition", "table")):
            out.append(name)
    return out


def _unused_error(rule: Rule, where: List[str]) -> UnusedName:
    """The error for an input nothing reads (or a variant's definition nothing uses), under the
    variants ``where`` (empty: under every one)."""
    under = f" under {' and '.join(where)}" if where else ""
    if rule.kind == "input":
        return UnusedName(
            f"nothing reads the input '{rule.name}'{under}: no definition, requirement or expectation uses it, "
            "so a value set for it changes nothing", rule.location,
            hint="use it in a formula; if the formulas leave it out on purpose, say so with `expect` (a warning "
                 "when it is set otherwise) or `require`; or remove it",
            name=rule.name, variant=", ".join(where))
    return UnusedName(
        f"nothing uses '{rule.name}'{under}: a variant's definition no formula reads", rule.location,
        hint="remove it, or use it where the block needs it", name=rule.name, variant=", ".join(where))


def _copy_of_builtins(path: Path, builtin: Path) -> bool:
    """Is ``path`` the built-in formulas under another name: a directory whose every
    ``*.formula`` is byte for byte the built-in at the same place (the checkout's
    ``formulas/`` beside an installed wheel), or one built-in file itself?"""
    try:
        if path.is_file():
            return any(path.read_bytes() == twin.read_bytes() for twin in formula_files(builtin))
        files = formula_files(path)
        return bool(files) and all(
            (builtin / f.relative_to(path)).is_file() and (builtin / f.relative_to(path)).read_bytes() == f.read_bytes()
            for f in files)
    except OSError:
        return False


def _unbound(ruleset) -> List[str]:
    """Inputs with no default that no spec in specs/ (nor the HF catalog) sets."""
    from .spec import load_spec
    from .spec_hf import _hf_catalog

    from .hardware import GPU_KEY, GPU_MEMORY

    keys = set()
    for path in sorted(resources.specs_dir().glob("*.toml")):
        try:
            keys |= {e.name for e in load_spec(str(path)).entries}
        except EngineError:
            continue
    if GPU_KEY in keys:
        keys.add(GPU_MEMORY)  # a catalog GPU binds gpu_memory
    try:
        catalog = _hf_catalog()
        keys |= set(catalog.get("keys", {}).values())
        for bindings in catalog.get("model_types", {}).values():
            keys |= set(bindings)
    except (OSError, ValueError):
        pass
    bound = {ruleset.resolve(k) for k in keys}
    out = []
    for name in ruleset.inputs:
        rule = ruleset.rules.get(name)
        if name in bound or name in ruleset.free or (rule is not None and rule.expr is not None):
            continue
        users = sorted(n for n, r in ruleset.rules.items() if name in r.deps)
        where = rule.where if rule else (ruleset.rules[users[0]].where if users else "?")
        out.append(f"{where}: warning: '{name}' has no default and no spec in specs/ sets it"
                   + (f" (used by {', '.join(users[:3])})" if users else ""))
    return out
