"""The jobs vram-eval reports side by side, read from their data file (``formulas/jobs.toml``):
each job's total, the rows that make it up, its peak over phases, its headrooms and the changes
worth trying when it does not fit. The report prints them; solve explains a failure with them;
``vram-eval check`` checks every name against the formulas (``check_jobs``).

The module-level tables below are views of that file, in the shapes their readers use.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from . import resources
from .errors import FormulaError, Location

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Job", "Remedy", "read_jobs", "JOBS", "job_of", "REGIMES", "ROWS", "OVERHEAD_ROW", "OVERHEAD_PARTS",
           "OVERHEAD_INPUTS", "HEADROOM", "PEAKS", "TOTAL_OF_PEAK", "phase_reached", "components", "REMEDIES", "SMALLEST",
           "REMEDY_SOLVES", "check_jobs"]

JOBS_FILE = "jobs.toml"
# A remedy's value that asks solve for the input's smallest value that fits.
SMALLEST = "smallest"


@dataclass(frozen=True)
class Remedy:
    name: str  # the input to set
    value: str  # its value, or SMALLEST
    solve_for: Optional[str] = None  # answer with this input instead of the question's


@dataclass(frozen=True)
class Job:
    name: str  # the value of the `regime` input
    heading: str
    total: str
    headroom: str
    peak: str
    peak_headroom: str
    rows: Dict[str, str]  # report row → output
    phases: Tuple[Tuple[str, str], ...]  # (label, output), in step order
    remedies: Tuple[Remedy, ...]


def _path():
    return resources.formulas_dir() / JOBS_FILE


def _error(message: str, needle: Optional[str] = None, path=None) -> FormulaError:
    """Located at the first line of the jobs file that holds ``needle`` (else the file)."""
    path = path or _path()
    lines = path.read_text(encoding="utf-8").splitlines()
    for n, text in enumerate(lines, 1):
        if needle is not None and needle in text:
            column = text.index(needle) + 1
            return FormulaError(message, Location(str(path), n, column, text, len(needle)))
    return FormulaError(message, Location(str(path)))


def _text(entry: dict, key: str, where: str, path) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise _error(f"{where}: '{key}' must be a name (text)", f"[{where}]", path)
    return value


def _pairs(entry: dict, key: str, where: str, path) -> Dict[str, str]:
    table = entry.get(key)
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise _error(f"{where}: '{key}' must be a table of label = \"output\"", f"[{where}]", path)
    return dict(table)


def _remedy(raw, where: str, path=None) -> Remedy:
    if isinstance(raw, dict) and set(raw) <= {"set", "solve_for"} and isinstance(raw.get("set"), str) \
            and "=" in raw["set"]:
        name, value = (part.strip() for part in raw["set"].split("=", 1))
        solve_for = raw.get("solve_for")
        if name and value and (solve_for is None or isinstance(solve_for, str)):
            return Remedy(name, value.lower(), solve_for)
    if isinstance(raw, dict) and set(raw) == {"smallest"} and isinstance(raw["smallest"], str):
        return Remedy(raw["smallest"], SMALLEST)
    raise _error(f"{where}: a remedy is {{ set = \"NAME=VALUE\" }} (with an optional solve_for = \"NAME\") "
                 f"or {{ smallest = \"NAME\" }}", f"[{where}]", path)


def read_jobs(path=None):
    """(jobs by name, the report's row order, the overhead row's table) from a jobs file
    (default: the built-in formulas/jobs.toml); a malformed entry is a located FormulaError."""
    path = path or _path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise FormulaError(f"the jobs file is not valid TOML: {exc}", Location(str(path))) from None
    jobs: Dict[str, Job] = {}
    for name, entry in (data.get("job") or {}).items():
        where = f"job.{name}"
        if not isinstance(entry, dict):
            raise _error(f"{where} must be a table", f"[{where}]", path)
        remedies = entry.get("remedies", [])
        if not isinstance(remedies, list):
            raise _error(f"{where}: 'remedies' must be a list", f"[{where}]", path)
        jobs[name] = Job(
            name=name, heading=_text(entry, "heading", where, path), total=_text(entry, "total", where, path),
            headroom=_text(entry, "headroom", where, path), peak=_text(entry, "peak", where, path),
            peak_headroom=_text(entry, "peak_headroom", where, path), rows=_pairs(entry, "rows", where, path),
            phases=tuple(_pairs(entry, "phases", where, path).items()),
            remedies=tuple(_remedy(r, where, path) for r in remedies))
    order = data.get("row_order")
    overhead = data.get("overhead") or {}
    if not isinstance(order, list) or not jobs:
        raise _error("the jobs file needs row_order = [...] and at least one [job.NAME] table", None, path)
    for job in jobs.values():
        for row in job.rows:
            if row not in order:
                raise _error(f"job.{job.name}: the row '{row}' is not in row_order", f'"{row}"', path)
    return jobs, tuple(order), overhead


_JOBS, _ROWS, _OVERHEAD = read_jobs()
JOBS: Dict[str, Job] = _JOBS
ROWS: Tuple[str, ...] = _ROWS
OVERHEAD_ROW: str = _OVERHEAD.get("row", "runtime overhead")
OVERHEAD_PARTS: Tuple[str, ...] = tuple(_OVERHEAD.get("parts", ()))
OVERHEAD_INPUTS: Tuple[str, ...] = tuple(_OVERHEAD.get("inputs", ()))

# (heading, total, {row: output}) — the report's columns.
REGIMES: Tuple[Tuple[str, str, Dict[str, str]], ...] = tuple((j.heading, j.total, j.rows) for j in JOBS.values())
HEADROOM: Dict[str, str] = {j.total: j.headroom for j in JOBS.values()}
# total → (peak over phases, its headroom, [(phase, output)]).
PEAKS: Dict[str, Tuple[str, str, Tuple[Tuple[str, str], ...]]] = {
    j.total: (j.peak, j.peak_headroom, j.phases) for j in JOBS.values()}
# peak over phases → the total (sum of parts) of its job.
TOTAL_OF_PEAK: Dict[str, str] = {j.peak: j.total for j in JOBS.values()}
# total or peak → (input, value) pairs to try, in order; the same changes help both.
REMEDIES: Dict[str, List[Tuple[str, str]]] = {
    out: [(r.name, r.value) for r in j.remedies] for j in JOBS.values() for out in (j.total, j.peak)}
# an input a remedy sets → the input solve answers with instead (zero_stage → dp).
REMEDY_SOLVES: Dict[str, str] = {r.name: r.solve_for for j in JOBS.values() for r in j.remedies if r.solve_for}


def phase_reached(peak: str, values) -> Optional[Tuple[str, str]]:
    """(label, output) of the phase that reaches a peak over phases at these values (name → value):
    the first of the largest, as the report's "reached at" names it; None for an output that is
    not a peak, or when no phase has a value."""
    total = TOTAL_OF_PEAK.get(peak)
    if total is None:
        return None
    known = [(values[out], label, out) for label, out in PEAKS[total][2]
             if values.get(out) is not None and getattr(values[out], "is_number", False)]
    if not known:
        return None
    top = max(v for v, _, _ in known)
    return next((label, out) for v, label, out in known if v == top)


def job_of(regime: str) -> Optional[Job]:
    """The job a value of the `regime` input names (None for another value)."""
    return JOBS.get(regime)


def components(total: str) -> Dict[str, str]:
    """row → output for a job's total ({} for any other output)."""
    for _, name, rows in REGIMES:
        if name == total:
            return rows
    return {}


def check_jobs(ruleset, jobs: Optional[Dict[str, Job]] = None, path=None) -> List[FormulaError]:
    """Every output the jobs file names is a definition of the formulas, every input a remedy sets
    or solves for is one of their inputs, and every value of `regime` has a job."""
    errors: List[FormulaError] = []
    jobs = JOBS if jobs is None else jobs

    def output(name: str, what: str):
        canonical = ruleset.resolve(name)
        if canonical is None or canonical not in ruleset.rules or ruleset.rules[canonical].kind != "definition":
            errors.append(_error(f"{what} '{name}' is not an output of the formulas", f'"{name}"', path))

    def an_input(name: str, what: str):
        if ruleset.resolve(name) is None:
            errors.append(_error(f"{what} '{name}' is not an input of the formulas", f'"{name}', path))

    for job in jobs.values():
        for what, name in (("total", job.total), ("headroom", job.headroom), ("peak", job.peak),
                           ("peak_headroom", job.peak_headroom)):
            output(name, f"job.{job.name}: its {what}")
        for row, name in job.rows.items():
            output(name, f"job.{job.name}: the row '{row}'")
        for label, name in job.phases:
            output(name, f"job.{job.name}: the phase '{label}'")
        for remedy in job.remedies:
            an_input(remedy.name, f"job.{job.name}: the remedy's")
            if remedy.solve_for:
                an_input(remedy.solve_for, f"job.{job.name}: the remedy's solve_for")
    allowed = ruleset.allowed_values("regime") or set()
    for value in sorted(set(allowed) - set(jobs)):
        errors.append(_error(f"regime = \"{value}\" is allowed by the formulas but has no [job.{value}]", None, path))
    for name in OVERHEAD_INPUTS:
        an_input(name, "the overhead row's input")
    return errors
