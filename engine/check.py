"""``vram-eval check``: lint formula files without evaluating anything.

Errors: syntax, unknown functions and units, duplicate names, alias clashes,
cycles — in every file, and in every variant of every variant directory; a name in
formulas/jobs.toml that the formulas do not define.
Warnings: inputs without a default that no spec in ``specs/`` sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Sequence

from . import resources
from .errors import EngineError, FormulaError, Location
from .library import Library, formula_files
from .transform import read_formula_file

__all__ = ["CheckReport", "check_paths"]


@dataclass
class CheckReport:
    files: List[str] = field(default_factory=list)
    rules: int = 0
    variants: List[str] = field(default_factory=list)
    errors: List[EngineError] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


def check_paths(paths: Sequence[str] = ()) -> CheckReport:
    report = CheckReport()
    builtin = resources.formulas_dir().resolve()
    user = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            report.errors.append(FormulaError("no such file or directory", Location(raw)))
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
            parsed = read_formula_file(path, builtin=is_builtin, shown=shown)
            report.rules += len(parsed.rules) + len(parsed.requirements)
        except EngineError as exc:
            report.errors.append(exc)
    if report.errors:
        return report

    # 2. the composed sets: defaults, then each variant of each variant directory
    try:
        library = Library(user)
        combos = [{}] + [{sel: value} for sel, options in library.variants().items() for value in options]
    except EngineError as exc:
        report.errors.append(exc)
        return report
    seen = set()
    for chosen in combos:
        try:
            ruleset = library.ruleset(chosen)
        except EngineError as exc:
            key = (exc.message, str(exc.location))
            if key not in seen:
                seen.add(key)
                report.errors.append(exc)
            continue
        for _, error in ruleset.undeclared():
            key = (error.message, str(error.location))
            if key not in seen:
                seen.add(key)
                report.errors.append(error)
        if not chosen:  # the jobs file names outputs and inputs of the default set
            from .regimes import check_jobs

            for error in check_jobs(ruleset):
                key = (error.message, str(error.location))
                if key not in seen:
                    seen.add(key)
                    report.errors.append(error)
        for sel, value in chosen.items():
            report.variants.append(f"{sel}={value}")
        for warning in _unbound(ruleset):
            if warning not in report.warnings:
                report.warnings.append(warning)
    return report


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

    from .hardware import GPU_KEY

    keys = set()
    for path in sorted(resources.specs_dir().glob("*.toml")):
        try:
            keys |= {e.name for e in load_spec(str(path)).entries}
        except EngineError:
            continue
    if GPU_KEY in keys:
        keys.add("gpu_memory")  # a catalog GPU binds gpu_memory
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
