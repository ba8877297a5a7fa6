"""The jobs vram-eval reports side by side, read from their data file (``formulas/jobs.toml``):
each job's total, the rows that make it up, its peak over phases, its headrooms and the changes
worth trying when it does not fit. The report prints them; solve explains a failure with them;
``vram-eval check`` checks every name against the formulas (``check_jobs``).

The module-level tables below are views of that file, in the shapes their readers use.
"""

from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from . import resources
from .errors import FormulaError, Location, UnknownName
from .values import exact_number

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Job", "Remedy", "read_jobs", "JOBS", "job_of", "shown", "REGIMES", "ROWS", "OVERHEAD_ROW", "OVERHEAD_PARTS",
           "OVERHEAD_INPUTS", "HEADROOM", "PEAKS", "TOTAL_OF_PEAK", "phase_reached", "components", "REMEDIES", "SMALLEST",
           "REMEDY_SOLVES", "remedy_entry", "check_jobs", "HEADER", "HeaderItem",
           "OVERHEAD_WORDS", "OVERHEAD_MEASURE", "OVERHEAD_WHOLE", "OVERHEAD_FRAGMENTATION", "OVERHEAD_CALIBRATED"]

JOBS_FILE = "jobs.toml"
# The input that chooses which engine's job the report shows (a job's `engine`).
ENGINE = "engine"
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
    engine: Optional[str] = None  # shown only when the `engine` input has this value
    stands_for: Optional[str] = None  # at that engine, this regime value asks about this job too ("inference")


@dataclass(frozen=True)
class HeaderItem:
    """One item of a report header line (jobs.toml's [header]): see the file for the fields."""

    show: str
    names: Tuple[str, ...]  # the {name}s of `show`, in order
    when: Dict[str, object]
    unless: Dict[str, object]
    words: Dict[str, Dict[str, str]]
    defaulted_from: Optional[str] = None
    defaulted_note: str = ""
    join: str = ","  # how a list value is joined
    has: Tuple[str, ...] = ()  # names that must have a value (beyond those of `show`)
    lacks: Tuple[str, ...] = ()  # names that must have none
    nonzero: Tuple[str, ...] = ()  # at least one of these must have a value other than 0


_NAME_IN_TEXT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _header_item(raw, where: str, path) -> HeaderItem:
    fields = {"show", "when", "unless", "words", "defaulted", "join", "has", "lacks", "nonzero"}
    if not isinstance(raw, dict) or not isinstance(raw.get("show"), str) or not set(raw) <= fields:
        raise _error(f"{where}: an item is {{ show = \"TEXT with {{name}}\" }} with optional when, unless, words, "
                     "defaulted, join, has, lacks, nonzero", "[header]", path)
    names = {k: raw.get(k, []) for k in ("has", "lacks", "nonzero")}
    if not isinstance(raw.get("join", ","), str) or \
            not all(isinstance(v, list) and all(isinstance(n, str) for n in v) for v in names.values()):
        raise _error(f"{where}: join is a text; has, lacks and nonzero are lists of names", f'"{raw["show"]}"', path)
    tables = {k: raw.get(k, {}) for k in ("when", "unless", "words")}
    defaulted = raw.get("defaulted", {})
    if not all(isinstance(v, dict) for v in list(tables.values()) + [defaulted]) or \
            not all(isinstance(w, dict) for w in tables["words"].values()) or \
            (defaulted and not (isinstance(defaulted.get("from"), str) and isinstance(defaulted.get("note"), str))):
        raise _error(f"{where}: when, unless and words are tables (words: name = {{ value = \"text\" }}); "
                     "defaulted is { from = \"NAME\", note = \"TEXT\" }", f'"{raw["show"]}"', path)
    return HeaderItem(raw["show"], tuple(_NAME_IN_TEXT.findall(raw["show"])), dict(tables["when"]),
                      dict(tables["unless"]), {n: dict(w) for n, w in tables["words"].items()},
                      defaulted.get("from"), defaulted.get("note", ""), raw.get("join", ","), tuple(names["has"]),
                      tuple(names["lacks"]), tuple(names["nonzero"]))


def _path():
    return resources.formulas_dir() / JOBS_FILE


def _error(message: str, needle: Optional[str] = None, path=None, kind=None, **facts) -> FormulaError:
    """Located at the first line of the jobs file that holds ``needle`` (else the file): a
    FormulaError, or ``kind`` (a kind of errors.py) in that family with its ``facts``."""
    path = path or _path()
    cls = FormulaError if kind is None else kind[FormulaError]
    lines = path.read_text(encoding="utf-8").splitlines()
    for n, text in enumerate(lines, 1):
        if needle is not None and needle in text:
            column = text.index(needle) + 1
            return cls(message, Location(str(path), n, column, text, len(needle)), **facts)
    return cls(message, Location(str(path)), **facts)


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


def _engine(entry: dict, key: str, where: str, path) -> Optional[str]:
    """A job's `engine` or `stands_for`: a value of an input (text), or None."""
    value = entry.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise _error(f"{where}: '{key}' must be a value of the {'engine' if key == 'engine' else 'regime'} input (text)",
                     f"[{where}]", path)
    return value


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
            remedies=tuple(_remedy(r, where, path) for r in remedies), engine=_engine(entry, "engine", where, path),
            stands_for=_engine(entry, "stands_for", where, path))
    order = data.get("row_order")
    overhead = data.get("overhead") or {}
    if not isinstance(order, list) or not jobs:
        raise _error("the jobs file needs row_order = [...] and at least one [job.NAME] table", None, path)
    for job in jobs.values():
        for row in job.rows:
            if row not in order:
                raise _error(f"job.{job.name}: the row '{row}' is not in row_order", f'"{row}"', path)
    header = data.get("header") or {}
    lines = {}
    for line in ("model_line", "settings_line"):
        items = header.get(line, [])
        if not isinstance(items, list):
            raise _error(f"header.{line} must be a list of items", f"{line} =", path)
        lines[line] = tuple(_header_item(item, f"header.{line}", path) for item in items)
    for part in ("caveats", "footnotes"):
        listed = header.get(part, [])
        if not isinstance(listed, list) or not all(isinstance(c, list) and c for c in listed):
            raise _error(f"header.{part} must be a list of lines, each a list of items", f"{part} =", path)
        lines[part] = tuple(tuple(_header_item(item, f"header.{part}", path) for item in line) for line in listed)
    count = header.get("count", {"name": "", "words": ""})
    if not (isinstance(count, dict) and set(count) == {"name", "words"} and all(isinstance(v, str) for v in count.values())):
        raise _error('header.count must be { name = "OUTPUT", words = "WORDS" }', "count =", path)
    lines["count"] = (count["name"], count["words"])
    return jobs, tuple(order), overhead, lines


_JOBS, _ROWS, _OVERHEAD, HEADER = read_jobs()
JOBS: Dict[str, Job] = _JOBS
ROWS: Tuple[str, ...] = _ROWS
OVERHEAD_ROW: str = _OVERHEAD.get("row", "runtime overhead")
OVERHEAD_PARTS: Tuple[str, ...] = tuple(_OVERHEAD.get("parts", ()))
OVERHEAD_INPUTS: Tuple[str, ...] = tuple(_OVERHEAD.get("inputs", ()))
OVERHEAD_WORDS: Dict[str, str] = dict(_OVERHEAD.get("words", {}))
OVERHEAD_MEASURE: str = _OVERHEAD.get("measure", "")
OVERHEAD_WHOLE: str = _OVERHEAD.get("whole", "")
OVERHEAD_FRAGMENTATION: str = _OVERHEAD.get("fragmentation", "")
OVERHEAD_CALIBRATED: str = _OVERHEAD.get("calibrated", "")

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


@functools.lru_cache(maxsize=None)
def remedy_entry(name: str, value: str):
    """A remedy's setting as a spec entry, read once (jobs.toml's ``set = "NAME=VALUE"`` is
    --set text: the same spellings, true/false and lists)."""
    from .spec import parse_set

    return parse_set(f"{name}={value}")


def phase_reached(peak: str, values) -> Optional[Tuple[str, str]]:
    """(label, output) of the phase that reaches a peak over phases at these values (name → value):
    the first of the largest, as the report's "reached at" names it; None for an output that is
    not a peak, or when no phase has a value."""
    total = TOTAL_OF_PEAK.get(peak)
    if total is None:
        return None
    known = [(values[out], label, out) for label, out in PEAKS[total][2]
             if values.get(out) is not None and (exact_number(values[out]) is not None
                                                  or getattr(values[out], "is_number", False))]
    if not known:
        return None
    top = max(v for v, _, _ in known)
    return next((label, out) for v, label, out in known if v == top)


def job_of(regime: str, engine: Optional[str] = None) -> Optional[Job]:
    """The job a value of the `regime` input names (None for another value); where that job is
    another engine's than ``engine``, the job of ``engine`` that stands for it (regime =
    "inference" at engine = "vllm" is vLLM's job)."""
    job = JOBS.get(regime)
    if job is not None and job.engine is not None and engine is not None and job.engine != engine:
        return next((j for j in JOBS.values() if j.engine == engine and j.stands_for == regime), job)
    return job


def shown(engine: Optional[str]) -> Tuple[Job, ...]:
    """The report's columns at a value of the `engine` input: the jobs of no engine, and those of
    this one (all of them when the value is unknown)."""
    return tuple(j for j in JOBS.values() if j.engine is None or engine is None or j.engine == engine)


def components(total: str) -> Dict[str, str]:
    """row → output for a job's total ({} for any other output)."""
    for _, name, rows in REGIMES:
        if name == total:
            return rows
    return {}


def check_jobs(ruleset, jobs: Optional[Dict[str, Job]] = None, path=None, header=None) -> List[FormulaError]:
    """Every output the jobs file names is a definition of the formulas, every input a remedy sets
    or solves for is one of their inputs, and every value of `regime` has a job."""
    errors: List[FormulaError] = []
    jobs = JOBS if jobs is None else jobs

    def output(name: str, what: str):
        canonical = ruleset.resolve(name)
        if canonical is None or canonical not in ruleset.rules or ruleset.rules[canonical].kind != "definition":
            errors.append(_error(f"{what} '{name}' is not an output of the formulas", f'"{name}"', path,
                                 UnknownName, name=name, known=tuple(ruleset.outputs)))

    def an_input(name: str, what: str):
        if ruleset.resolve(name) is None:
            errors.append(_error(f"{what} '{name}' is not an input of the formulas", f'"{name}', path,
                                 UnknownName, name=name, known=tuple(ruleset.known_names())))

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
    engines = ruleset.allowed_values(ENGINE) or set()
    for job in jobs.values():
        if job.stands_for is not None and job.stands_for not in jobs:
            errors.append(_error(f"job.{job.name}: stands_for = \"{job.stands_for}\" is not a job", f"[job.{job.name}]", path))
        if job.engine is not None and job.engine not in engines:
            errors.append(_error(f"job.{job.name}: engine = \"{job.engine}\" is not a value the formulas allow for "
                                 f"'{ENGINE}' ({', '.join(sorted(engines)) or 'none'})", f"[job.{job.name}]", path))
    for name in OVERHEAD_INPUTS + tuple(n for n in (OVERHEAD_WHOLE, OVERHEAD_FRAGMENTATION, OVERHEAD_CALIBRATED) if n):
        an_input(name, "the overhead row's input")
    header = HEADER if header is None else header
    if header.get("count", ("", ""))[0]:
        output(header["count"][0], "header.count: the count")
    for line, items in header.items():
        if line == "count":
            continue
        for item in (i for group in items for i in group) if line in ("caveats", "footnotes") else items:
            for name in set(item.names) | set(item.when) | set(item.unless) | set(item.words) | \
                    ({item.defaulted_from} if item.defaulted_from else set()) | set(item.has) | set(item.lacks) | \
                    set(item.nonzero):
                an_input(name, f"header.{line}: the item '{item.show}' names")
    return errors
