"""Pure renderers: a Breakdown (or any result) → text. No arithmetic beyond
unit conversion happens here; every figure says its unit."""

from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Optional

from .forward import Breakdown
from .hardware import GPU_MEMORY
from .regimes import (_NAME_IN_TEXT, ENGINE, HEADER, HEADROOM, OVERHEAD_CALIBRATED, OVERHEAD_FRAGMENTATION,
                      OVERHEAD_INPUTS, OVERHEAD_MEASURE, OVERHEAD_PARTS, OVERHEAD_ROW, OVERHEAD_WHOLE, OVERHEAD_WORDS, PEAKS,
                      ROWS, phase_reached)
from .regimes import shown as shown_jobs
from .units import format_bytes, format_count, format_number
from .values import exact_number, to_python

__all__ = ["to_python", "breakdown_dict", "render_json", "render_yaml", "render_listing", "render_report", "render",
           "render_check", "render_explanation", "render_names", "render_solutions", "render_sensitivity",
           "render_sweep", "render_gpus"]

UNIT_WORDS = {"GiB": "GiB (2^30 bytes)", "GB": "GB (10^9 bytes)", "MiB": "MiB (2^20 bytes)", "MB": "MB (10^6 bytes)",
              "TiB": "TiB (2^40 bytes)", "TB": "TB (10^12 bytes)"}


def breakdown_dict(result: Breakdown, gpu=None, checkpoint=None, train_configs=()) -> Dict[str, Any]:
    """The DESIGN.md JSON shape, plus documented extras (name, unavailable, overridden, gpu:
    the catalog GPU whose usable bytes are gpu_memory, or null; uncalibrated; warnings: what the
    formulas' expectations say of the point; checkpoint: a model folder's weight files, their
    bytes by group and dtype, or null; train_configs: each --train-config file's format, the keys
    it used and those it ignored, with why; notes: the lines the report prints under its table
    (jobs.toml's header.footnotes, memory in GiB), e.g. vLLM's own error text where a launch would
    be refused)."""
    rs = result.ruleset
    inputs = {n: to_python(v) for n, v in result.inputs.items()}
    outputs = {n: to_python(v) for n, v in result.outputs.items() if rs.rules[n].kind == "definition"}
    units = {n: rs.unit(n) for n in list(inputs) + list(outputs) if rs.unit(n)}
    return {
        "spec": result.spec,
        "name": result.title,
        "inputs": inputs,
        "outputs": outputs,
        "units": units,
        "unavailable": {n: sorted(m) for n, m in result.missing.items() if n in rs.rules and rs.rules[n].kind == "definition"},
        "overridden": [
            {"name": new.name, "by": new.where, "replaces": old.where} for new, old in rs.overridden
        ],
        "gpu": gpu.as_dict() if gpu is not None else None,
        "uncalibrated": uncalibrated_overhead(result),
        "warnings": result.warnings,
        "checkpoint": checkpoint.as_dict() if checkpoint is not None else None,
        "train_configs": [c.as_dict() for c in train_configs],
        "notes": [text for text in (_caveat(result, items, "GiB") for items in HEADER["footnotes"]) if text],
    }


def uncalibrated_overhead(result: Breakdown) -> List[str]:
    """The runtime-overhead inputs (formulas/overhead.formula) that keep a published default
    rather than a measured value: none once overhead_calibrated = 1, or once each is set by the
    spec or --set (`overhead` set stands for its parts). A part that is 0 by rule (NCCL on one
    GPU) is not a default to calibrate."""
    v, bound = result.plain, result.bindings
    if not set(OVERHEAD_INPUTS) <= set(v) or to_python(v.get(OVERHEAD_CALIBRATED, 0)) == 1:
        return []
    parts = [] if OVERHEAD_WHOLE in bound else [n for n in OVERHEAD_PARTS if n not in bound and v[n] != 0]
    fragmentation = OVERHEAD_FRAGMENTATION
    return parts + ([] if not fragmentation or fragmentation in bound or v.get(fragmentation, 0) == 0
                    else [fragmentation])


def render_json(data: Dict[str, Any]) -> str:
    return json.dumps(data, indent=2) + "\n"


def render_yaml(data: Dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def format_value(value, unit: Optional[str], memory_unit: str = "GiB") -> str:
    """One value (plain or SymPy) for a table cell, with its unit."""
    py = to_python(value)
    if isinstance(py, bool):
        return "true" if py else "false"
    if isinstance(py, str):
        return f'"{py}"'
    if isinstance(py, list):
        return ", ".join(py)
    if isinstance(py, dict):
        return "{" + ", ".join(f"{k}: {format_number(v)}" for k, v in py.items()) + "}"
    exact = exact_number(value)
    if unit == "bytes":
        if abs(py) < 1024:  # bytes per element, per parameter: say it in bytes
            shown = format_number(exact if exact is not None and exact.denominator == 1 else py)
            return f"{shown} byte" + ("" if shown == "1" else "s")
        return format_bytes(exact if exact is not None else py, memory_unit)
    if unit == "count" and abs(py) >= 10**4:
        return f"{format_number(int(py)) if float(py).is_integer() else format_number(py)} ({format_count(py)})"
    if exact is not None and exact.denominator == 1:
        return format_number(int(exact))
    return format_number(py)


def render_listing(result: Breakdown, memory_unit: str = "GiB") -> str:
    """Every input and output, one per line, in the order the formula files give them."""
    rs = result.ruleset
    lines: List[str] = []
    title = result.title or "vram-eval"
    lines.append(f"{title}" + (f"  ({result.spec})" if result.spec else ""))
    lines.append("")
    order = {name: i for i, name in enumerate(rs.rules)}
    by_file = lambda items: sorted(items, key=lambda kv: order.get(kv[0], len(order)))  # noqa: E731
    if not result.focus:
        rows = [(n, format_value(v, rs.unit(n), memory_unit), _doc(rs, n)) for n, v in by_file(result.inputs.items())]
        lines += _section("inputs", rows)
    rows = [(n, format_value(v, rs.unit(n), memory_unit), _doc(rs, n))
            for n, v in by_file(result.outputs.items()) if not isinstance(v, dict)]
    lines += _section("outputs", rows)
    unavailable = {n: m for n, m in result.missing.items() if n in rs.rules and rs.rules[n].kind == "definition"}
    if unavailable:
        lines.append("unavailable (inputs not set):")
        for n, m in unavailable.items():
            lines.append(f"  {n}: needs {', '.join(sorted(m))}")
        lines.append("")
    if rs.overridden:
        lines.append("overridden by your formulas:")
        for new, old in rs.overridden:
            lines.append(f"  {new.name}: {new.where} replaces {old.where}")
        lines.append("")
    lines.append(f"memory in {UNIT_WORDS.get(memory_unit, memory_unit)}")
    return "\n".join(lines) + "\n"


def _doc(rs, name: str) -> str:
    rule = rs.rules.get(name)
    return rule.doc if rule else "(input)"


def _section(title: str, rows) -> List[str]:
    if not rows:
        return []
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    out = [f"{title}:"]
    for name, value, doc in rows:
        out.append(f"  {name:<{w0}}  {value:>{w1}}  {doc}".rstrip())
    out.append("")
    return out


# --- the regime report: what `vram-eval SPEC` prints -----------------------

# The columns and rows live in engine/regimes.py. Rows that no column has, or that are zero
# everywhere, are left out; "other" shows whatever a total holds beyond its rows (a term a
# user's formula file added), so each column always adds up to its total.


def _mem(value, unit: str) -> str:
    return format_bytes(value, unit)


def render_report(result: Breakdown, memory_unit: str = "GiB", gpu=None, train_configs=()) -> str:
    """One screen: the model line, components × regimes, totals, and the GPU fit."""
    v = result.plain
    get = lambda name: v.get(name)  # noqa: E731
    lines: List[str] = []
    title = result.title or (result.spec or "model")
    count, words = HEADER["count"]
    head = title
    if get(count) is not None:
        n = to_python(get(count))
        head += f" — {format_count(n)} {words} ({format_number(n)})"
    lines.append(head)
    facts = _header_line(result, HEADER["model_line"])
    lines.append("  " + ", ".join(facts) + (f"   ({result.spec})" if result.spec else ""))
    lines.append("  " + "; ".join(_header_line(result, HEADER["settings_line"])))
    lines += ["  " + text for text in (_caveat(result, items) for items in HEADER["caveats"]) if text is not None]
    if get(GPU_MEMORY) is not None:
        lines.append("  " + _gpu_line(get(GPU_MEMORY), gpu, memory_unit))
    lines.append("")

    columns = []
    engine = get(ENGINE)
    for job in shown_jobs(to_python(engine) if engine is not None else None):
        heading, total, rows = job.heading, job.total, job.rows
        cells = {row: (get(name) if name in v else None) for row, name in rows.items()}
        columns.append((heading, total, rows, cells))
    shown_rows = [r for r in ROWS if any(r in rows and cells.get(r) not in (None, 0) for _, _, rows, cells in columns)]

    table = [[""] + [c[0] for c in columns]]
    uncalibrated = uncalibrated_overhead(result)
    for row in shown_rows:
        line = [row + (" (uncalibrated)" if row == OVERHEAD_ROW and uncalibrated else "")]
        for _, _, rows, cells in columns:
            line.append("—" if row not in rows or cells.get(row) is None else _mem(cells[row], memory_unit))
        table.append(line)
    other = ["other"]
    any_other = False
    for _, total, rows, cells in columns:
        t = get(total)
        parts = [cells[r] for r in rows if cells.get(r) is not None]
        if t is None or len(parts) != len(rows):
            other.append("")
            continue
        rest = t - sum(parts)
        any_other = any_other or rest != 0
        other.append(_mem(rest, memory_unit) if rest != 0 else "")
    if any_other:
        table.append(other)
    totals = ["sum of parts"]
    for _, total, _, _ in columns:
        t = get(total)
        totals.append(_mem(t, memory_unit) if t is not None else "needs " + ", ".join(sorted(result.missing.get(total, ()))))
    table.append(totals)
    rule = len(table) - 1
    table += _peak_rows(columns, get, memory_unit)
    if get(GPU_MEMORY) is not None:
        table.append(["fits the GPU?"] + [_verdict(total, get, memory_unit) for _, total, _, _ in columns])
    lines += _grid(table, rule_before=rule)
    footnotes = [text for text in (_caveat(result, items, memory_unit) for items in HEADER["footnotes"]) if text]
    if footnotes:
        lines.append("")
        lines += footnotes
    if uncalibrated and OVERHEAD_ROW in shown_rows:
        lines.append("")
        lines += _overhead_note(v, uncalibrated, memory_unit)
    if train_configs:
        lines.append("")
        lines += _train_config_lines(train_configs)
    warnings = result.warnings
    if warnings:
        lines.append("")
        lines += [f"warning: {w}" for w in warnings]
    if result.ruleset.overridden:
        lines.append("")
        lines.append("overridden by your formulas: " + ", ".join(
            f"{new.name} ({new.where})" for new, _ in result.ruleset.overridden))
    lines.append("")
    lines.append(f"memory per GPU in {UNIT_WORDS.get(memory_unit, memory_unit)}; "
                 "`--all` lists every input and output, `vram-eval explain NAME` shows a formula")
    return "\n".join(lines) + "\n"


def _train_config_lines(configs) -> List[str]:
    """Each --train-config file: its kind, the keys that set inputs, and the ones left out."""
    out = []
    for c in configs:
        out.append(f"{c.path} ({c.title}): used " + (", ".join(c.used) or "no key"))
        if c.ignored:
            out.append("  ignored: " + ", ".join(k for k, _ in c.ignored) + "  (--format json says why)")
    return out


def _gpu_line(memory, gpu, unit: str) -> str:
    """The header's GPU line: the budget, and for a catalog GPU how it was found."""
    if gpu is None or memory != gpu.usable_bytes:
        return f"GPU: {_mem(memory, unit)} each"
    usable = "usable " if gpu.reported_mib is not None else ""
    return f"GPU: {gpu.name}, {_mem(memory, unit)} {usable}each ({gpu.describe()})"


def _overhead_note(v, uncalibrated: List[str], unit: str) -> List[str]:
    """What the uncalibrated runtime overhead is made of, and how to replace it."""
    words = OVERHEAD_WORDS
    parts = [f"{words[n]} {format_bytes(v[n], 'MiB', digits=0)}" for n in uncalibrated
             if n in words and n != OVERHEAD_FRAGMENTATION]
    if OVERHEAD_FRAGMENTATION in uncalibrated:
        share = format_number(100 * to_python(v[OVERHEAD_FRAGMENTATION]))
        parts.append(f"{words.get(OVERHEAD_FRAGMENTATION, OVERHEAD_FRAGMENTATION)} {share}% of the allocated bytes")
    return [f"runtime overhead (uncalibrated): {' + '.join(parts)}: published defaults;",
            f"  set {', '.join(uncalibrated)} to measured values ({OVERHEAD_MEASURE} measures them)"]


def _fit(room, unit: str) -> str:
    if room is None:
        return "—"
    return f"yes, {_mem(room, unit)} free" if room >= 0 else f"NO, {_mem(-room, unit)} over"


def _peak_rows(columns, get, unit: str) -> List[List[str]]:
    """The peak over phases (formulas/peaks.formula), for the jobs that have one."""
    peaks = [PEAKS.get(total) for _, total, _, _ in columns]
    if not any(p and get(p[0]) is not None for p in peaks):
        return []
    peak_row, at_row = ["peak over phases"], ["  reached at"]
    for p in peaks:
        if p is None or get(p[0]) is None:
            for row in (peak_row, at_row):
                row.append("—")
            continue
        name, _, phases = p
        reached = phase_reached(name, {out: get(out) for _, out in phases})
        peak_row.append(_mem(get(name), unit))
        at_row.append(reached[0] if reached else "")
    return [peak_row, at_row]


def _verdict(total: str, get, unit: str) -> str:
    """Does the job fit? At its peak over phases — what the GPU sees; by the sum of parts only
    where the peak cannot be computed, and then it says so."""
    peak = PEAKS.get(total)
    if peak is not None and get(peak[1]) is not None:
        return _fit(get(peak[1]), unit)
    room = get(HEADROOM[total])
    return "—" if room is None else _fit(room, unit) + " (sum of parts)"


def _header_line(result: Breakdown, items) -> List[str]:
    """The items of a header line (jobs.toml's [header]) that the point shows."""
    return [text for text in (_item_text(result, item) for item in items) if text is not None]


def _caveat(result: Breakdown, items, memory_unit: Optional[str] = None) -> Optional[str]:
    """A caveat or footnote line (jobs.toml's header.caveats, header.footnotes): its items one
    after another, if its first shows; memory in ``memory_unit`` where one is given."""
    texts = [_item_text(result, item, memory_unit) for item in items]
    return "".join(t for t in texts if t) if texts and texts[0] is not None else None


def _item_text(result: Breakdown, item, memory_unit: Optional[str] = None) -> Optional[str]:
    """One header item at the point, or None where it is not shown."""
    v = result.plain
    if any(n not in v for n in item.names + tuple(item.when) + item.has) or any(n in v for n in item.lacks):
        return None
    if item.nonzero and not any(v.get(n) not in (None, 0) for n in item.nonzero):
        return None
    if any(_plain(v[n]) != want for n, want in item.when.items()):
        return None
    if any(n in v and _plain(v[n]) == unwanted for n, unwanted in item.unless.items()):
        return None
    def shown(m) -> str:
        name = m.group(1)
        if memory_unit is not None and result.ruleset.unit(name) == "bytes":
            return _mem(v[name], memory_unit)
        return _shown(v[name], item.words.get(name, {}), item.join)

    text = _NAME_IN_TEXT.sub(shown, item.show)
    first = item.names[0] if item.names else None
    if item.defaulted_from and first not in result.bindings and item.defaulted_from in result.bindings \
            and v.get(item.defaulted_from) == v[first]:
        text += item.defaulted_note
    return text


def _plain(value):
    py = to_python(value)
    return int(py) if isinstance(py, float) and py.is_integer() else py


def _shown(value, words, join: str = ",") -> str:
    """A value in a header line: in words if the data gives them (true/false as written), a list
    joined by ``join``, else as a table cell shows it, without quotes."""
    py = to_python(value)
    key = ("true" if py else "false") if isinstance(py, bool) else str(py)
    if key in words:
        return words[key]
    if isinstance(py, list):
        return join.join(py)
    return format_value(value, None).strip(chr(34))


def _grid(table, rule_before: int) -> List[str]:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    out = []
    for n, row in enumerate(table):
        if n == rule_before:
            out.append("  " + "-" * (sum(widths) + 3 * (len(widths) - 1)))
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        out.append(("  " + "   ".join(cells)).rstrip())
    return out


def render(data_or_result, fmt: str, memory_unit: str = "GiB", listing: bool = False, gpu=None,
           checkpoint=None, train_configs=()) -> str:
    if fmt == "table":
        if listing:
            return render_listing(data_or_result, memory_unit)
        return render_report(data_or_result, memory_unit, gpu, train_configs)
    data = (breakdown_dict(data_or_result, gpu, checkpoint, train_configs) if isinstance(data_or_result, Breakdown)
            else data_or_result)
    return render_json(data) if fmt == "json" else render_yaml(data)


# --- check / explain ------------------------------------------------------


def render_check(report) -> tuple:
    """(stdout, stderr) for ``vram-eval check``."""
    err = "".join(e.render() for e in report.errors)
    out = "".join(w + "\n" for w in report.warnings)
    status = "FAILED" if report.errors else "ok"
    variants = f", variants {', '.join(report.variants)}" if report.variants else ""
    out += (f"checked {len(report.files)} file{'s' if len(report.files) != 1 else ''}, "
            f"{report.rules} statements{variants}: {status}"
            + (f" ({len(report.errors)} error{'s' if len(report.errors) != 1 else ''})" if report.errors else "")
            + (f", {len(report.warnings)} warning{'s' if len(report.warnings) != 1 else ''}" if report.warnings else "")
            + "\n")
    return out, err


def render_explanation(ex, fmt: str = "table") -> str:
    if fmt == "json":
        from dataclasses import asdict

        return render_json(asdict(ex))
    lines = [f"{ex.name}  ({ex.kind}{', ' + ex.unit if ex.unit else ''})"]
    if ex.doc:
        lines.append(f"  {ex.doc}")
    if ex.where:
        lines.append(f"  defined at {ex.where}" + (f", replacing {ex.replaces}" if ex.replaces else ""))
    if ex.aliases:
        lines.append(f"  aliases: {', '.join(ex.aliases)}")
    if ex.notes:
        lines.append("  notes:")
        lines += [f"    {line}" for line in ex.notes.splitlines()]
    if ex.written:
        lines.append("  as written:")
        lines += [f"    {line}" for line in ex.written.splitlines()]
    if ex.expanded is not None:
        lines.append("  expanded" + (f" (at {', '.join(ex.choices)})" if ex.choices else "") + ":")
        lines.append(f"    {ex.name} = {ex.expanded}")
    if ex.allowed:
        lines.append(f"  allowed values: {', '.join(ex.allowed)}")
    if ex.depends_on:
        lines.append(f"  depends on: {', '.join(ex.depends_on)}")
    if ex.inputs:
        lines.append(f"  inputs: {', '.join(ex.inputs)}")
    if ex.used_by:
        lines.append(f"  used by: {', '.join(ex.used_by)}")
    return "\n".join(lines) + "\n"


def render_names(rows, fmt: str = "table") -> str:
    if fmt == "json":
        return render_json([{"name": n, "kind": k, "unit": u or None, "doc": d} for n, k, u, d in rows])
    w = max((len(r[0]) for r in rows), default=4)
    return "".join(f"{n:<{w}}  {k:<6}  {u:<5}  {d}".rstrip() + "\n" for n, k, u, d in rows)


# --- solve / sensitivity / sweep ---------------------------------------------


def _num(value, integer: bool = True) -> str:
    py = to_python(value)
    if isinstance(py, int):
        return f"{py:,}"
    if isinstance(py, float) and abs(py) >= 1e5 and abs(py) < 1e18:
        return f"{py:,.1f}"  # a large fraction (bytes per unit of h): digits, not 1.18192e+07
    return f"{py:.6g}"


def _whole_bytes(value) -> str:
    """Bytes as a whole number: a fraction of a byte (70B parameters over tp = 3) rounds up."""
    exact = exact_number(value)
    if exact is not None:
        return f"{math.ceil(exact):,}"
    py = to_python(value)
    return f"{math.ceil(py):,}" if isinstance(py, float) and math.isfinite(py) else _num(value)


def render_solutions(solutions, fmt: str = "table") -> str:
    if fmt in ("json", "yaml"):
        data = solutions[0].as_dict() if len(solutions) == 1 else [s.as_dict() for s in solutions]
        return render_json(data) if fmt == "json" else render_yaml(data)
    first = solutions[0]
    lines = []
    for sol in solutions:
        if len(solutions) > 1:
            lines.append(f"budget {sol.budget_text}:")
        lines += _solution_lines(sol)
        lines.append("")
    lines.append(f"method: {first.method}")
    if first.closed_form:
        lines.append(f"closed form (M = budget in bytes): {first.closed_form}")
    lines.append("memory in bytes, with GiB = 2^30 bytes in brackets")
    return "\n".join(lines) + "\n"


def _solution_lines(sol) -> List[str]:
    budget = f"{sol.budget_text} = {sol.budget:,} bytes"
    if sol.value is None:
        out = [f"no {sol.name} keeps {sol.target} within {budget}", f"  {sol.reason}"]
        out += [f"  try: {s}" for s in sol.suggestions]
        out += [f"  note: {n}" for n in sol.notes]
        return out
    out = [f"the {sol.direction} {sol.name} that keeps {sol.target} within {budget}: {_num(sol.value)}"]
    out.append(f"  at {sol.name} = {_num(sol.value)}: {sol.target} = {_whole_bytes(sol.target_at_value)} bytes "
               f"({format_bytes(sol.target_at_value)}) — fits")
    if sol.next_value is not None and sol.next_invalid is not None:
        out.append(f"  at {sol.name} = {_num(sol.next_value)}: not a valid value — {sol.next_invalid}")
    elif sol.next_value is not None and sol.target_at_next is not None:
        out.append(f"  at {sol.name} = {_num(sol.next_value)}: {_whole_bytes(sol.target_at_next)} bytes "
                   f"({format_bytes(sol.target_at_next)}) — does not fit")
    if sol.root is not None:
        out.append(f"  the closed form's root: {sol.name} = {float(sol.root):,.6g}")
    out += [f"  note: {n}" for n in sol.notes]
    return out


def render_sensitivity(sens, fmt: str = "table") -> str:
    if fmt in ("json", "yaml"):
        data = sens.as_dict()
        return render_json(data) if fmt == "json" else render_yaml(data)
    lines = [f"sensitivity of {sens.target} = {_num(sens.value)} bytes ({format_bytes(sens.value)})"]
    if sens.phase is not None:
        lines.append(f"  reached at the {sens.phase[0]} ({sens.phase[1]}): each derivative is taken in that phase")
    lines.append("")
    table = [["input", "value", "∂/∂x (bytes per unit)", "elasticity", "×2 → ×"]]
    for row in sens.inputs:
        table.append([row.name, _num(row.at), _num(row.slope),
                      "" if row.elasticity is None else f"{row.elasticity:.3f}",
                      "" if row.doubling_ratio is None else f"{row.doubling_ratio:.3f}"])
    widths = [max(len(r[i]) for r in table) for i in range(5)]
    for n, r in enumerate(table):
        lines.append("  " + "   ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]))
        if n == 0:
            lines.append("  " + "-" * (sum(widths) + 12))
    lines.append("")
    lines.append("elasticity = ∂ln M/∂ln x (1: M grows like x; 2: like x²); ×2 → × is M(2x)/M(x);")
    lines.append("blank: the doubled value is not allowed (e.g. kv_heads must divide a). Symbolic derivatives: --format json")
    return "\n".join(lines) + "\n"


def render_sweep(result, fmt: str = "csv") -> str:
    """A sweep as CSV (a row a point: whole numbers as their digits, other numbers to 17
    significant digits, f"{v:.17g}"), as JSON (``result.as_dict()``) or as a table (memory as
    format_bytes writes it). Whole columns are written at once with NumPy; a cell that NumPy
    cannot write exactly as Python does (a fraction, a float beyond 10^17, a value of a list) is
    formatted on its own, so that the text is the same either way."""
    try:
        import numpy as np
    except ImportError:  # without the plot extra: the columns are lists
        return _sweep_cell_by_cell(result, fmt)
    try:
        return _sweep_at_once(np, result, fmt)
    except _SweepCellByCell:  # a list's value whose text is not plain ASCII
        return _sweep_cell_by_cell(result, fmt)


def _sweep_cell(v) -> str:
    """One cell of a sweep's CSV: an int's digits, a float to 17 significant digits."""
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float):
        return f"{v:.17g}"
    return str(v)


def _sweep_cell_by_cell(result, fmt: str) -> str:
    """The sweep formatted one cell at a time (without NumPy: lists of exact values)."""
    if fmt == "json":
        return render_json(result.as_dict())
    header = [result.name] + list(result.columns)
    if fmt == "csv":
        return "".join(",".join(r) + "\n" for r in [header] + [[_sweep_cell(v) for v in row] for row in result.rows()])

    def memory(v):
        return format_bytes(v.item() if hasattr(v, "item") else v)

    rows = [header] + [[_sweep_cell(row[0])] + [memory(v) if result.units.get(t) == "bytes" else _sweep_cell(v)
                                                for v, t in zip(row[1:], result.columns)] for row in result.rows()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) + "\n" for r in rows)


class _SweepCellByCell(Exception):
    """A text that the columns cannot carry (not ASCII, or with a NUL): format cell by cell."""


def _sweep_at_once(np, result, fmt: str) -> str:
    """render_sweep with NumPy: each column's text made at once, then the rows."""
    if fmt == "json":
        return _sweep_json(np, result)
    header = [result.name] + list(result.columns)
    columns = [result.xs] + [result.columns[t] for t in result.columns]
    if fmt == "csv":
        texts = [_sweep_csv_text(np, values) for values in columns]
        return ",".join(header) + "\n" + _sweep_lines(np, texts, [b","] * (len(texts) - 1) + [b"\n"]).decode("ascii")
    texts = [_sweep_csv_text(np, columns[0])] + [
        _sweep_memory_text(np, values) if result.units.get(t) == "bytes" else _sweep_csv_text(np, values)
        for t, values in zip(result.columns, columns[1:])]
    widths = [max(len(h), text.width) for h, text in zip(header, texts)]
    head = "  ".join(h.rjust(w) for h, w in zip(header, widths)) + "\n"
    return head + _sweep_lines(np, texts, [b"  "] * (len(texts) - 1) + [b"\n"], widths).decode("ascii")


def _sweep_json(np, result) -> str:
    """``render_json(result.as_dict())`` with the long lists written at once: each column stands
    in the dict as a placeholder ("\\u0000" and its number: no name or unit holds a NUL), then
    is put in its place as json.dumps(indent=2) lays a list out, a value a line."""
    import re

    held = []

    def hold(values):
        held.append(values)
        return f"\x00{len(held) - 1}"

    pieces = re.split(r'"\\u0000(\d+)"', render_json(result.as_dict(hold)))
    out = [pieces[0]]
    for k in range(1, len(pieces), 2):
        line = out[-1][out[-1].rfind("\n") + 1:]
        indent = len(line) - len(line.lstrip(" "))
        values = held[int(pieces[k])]
        if len(values) == 0:
            out.append("[]")
        else:
            body = _sweep_lines(np, [_sweep_json_text(np, values)], [b",\n"], indent=indent + 2)
            out.append("[\n" + body[:-2].decode("ascii") + "\n" + " " * indent + "]")
        out.append(pieces[k + 1])
    return "".join(out)


_SWEEP_CHUNK = 1 << 16  # rows made at a time: a few MB, in cache


def _sweep_lines(np, texts, separators, widths=None, indent: int = 0) -> bytes:
    """Rows of cells: ``indent`` spaces, then each column's cell and ``separators[c]`` after it;
    given ``widths``, each cell right-aligned in its width by spaces (a table), else as it is."""
    n = len(texts[0].lengths)
    fields = widths or [text.width for text in texts]
    template = [b" " * indent]
    for field, sep in zip(fields, separators):
        template += [b"\0" * field, sep]
    template = np.frombuffer(b"".join(template), dtype=np.uint8)
    out = []
    for lo in range(0, n, _SWEEP_CHUNK):
        hi = min(n, lo + _SWEEP_CHUNK)
        rows = np.empty((hi - lo, len(template)), dtype=np.uint8)
        rows[:] = template
        at = indent
        for text, field, sep in zip(texts, fields, separators):
            text.fill(rows[:, at:at + field], lo, hi)
            at += field + len(sep)
        if widths:
            rows[rows == 0] = ord(" ")
            out.append(rows.tobytes())
        else:
            out.append(rows[rows != 0].tobytes())
    return b"".join(out)


def _sweep_csv_text(np, values) -> "_SweepText":
    """A column's CSV cells, as _sweep_cell writes them: whole floats below 10^17 as their
    digits (which is what 17 significant digits show of them, "-0" for -0.0)."""
    text = _SweepText(np, len(values))
    if isinstance(values, np.ndarray) and values.dtype == np.int64:
        text.number(np.abs(values).view(np.uint64), values < 0)  # |-2^63| wraps to 2^63 as uint64
    elif isinstance(values, np.ndarray) and values.dtype == np.float64:
        whole = np.isfinite(values) & (np.abs(values) < 1e17) & (values == np.floor(values))
        ints = np.where(whole, values, 0).astype(np.int64)
        text.number(np.abs(ints).view(np.uint64), whole & np.signbit(values), whole)
        rest = np.flatnonzero(~whole)
        text.strings(rest, [f"{v:.17g}" for v in values[rest].tolist()])
    else:
        text.strings(None, [_sweep_cell(v) for v in values])
    return text


def _sweep_json_text(np, values) -> "_SweepText":
    """A column's JSON numbers, as json.dumps writes json_value(v): whole values as ints
    (every digit of a float's integer), other floats as repr(), null beyond float64."""
    from .grid import json_value

    def number(v) -> str:
        v = json_value(v)
        return "null" if v is None else repr(v) if type(v) in (int, float) else json.dumps(v)

    text = _SweepText(np, len(values))
    if isinstance(values, np.ndarray) and values.dtype == np.int64:
        text.number(np.abs(values).view(np.uint64), values < 0)
    elif isinstance(values, np.ndarray) and values.dtype == np.float64:
        whole = np.isfinite(values) & (np.abs(values) < 2.0**63) & (values == np.floor(values))
        ints = np.where(whole, values, 0).astype(np.int64)
        text.number(np.abs(ints).view(np.uint64), ints < 0, whole)  # -0.0 is 0, as int(-0.0)
        rest = np.flatnonzero(~whole)
        text.strings(rest, [number(v) for v in values[rest].tolist()])
    else:
        text.strings(None, [number(v) for v in values])
    return text


def _sweep_memory_text(np, values) -> "_SweepText":
    """A column of bytes as the table shows it, format_bytes(v) ("1,234.57 GiB"). format_bytes
    shows the float nearest v / 2^30, which is float(v) / 2^30 (rounding commutes with powers of
    two, for a float's shortest decimal as for an int) unless that is subnormal; where it shows
    two decimals of it below 2^52, the float is m / 2^k for whole m and k > 0, rounded here to
    hundredths half to even as Python rounds it: at once. The rest ("0.00781 GiB", inf, nan)
    cell by cell."""
    text = _SweepText(np, len(values))
    if not (isinstance(values, np.ndarray) and values.dtype in (np.int64, np.float64)):
        text.strings(None, [format_bytes(v.item() if hasattr(v, "item") else v) for v in values])
        return text
    scaled = values.astype(np.float64) / 2.0**30
    size = np.abs(scaled)
    fast = ((values == 0) | (size >= 0.995)) & (size < 2.0**52)  # (a tiny v / 2^30 may be -0.0)
    fraction, exponent = np.frexp(np.where(fast, size, 0.0))
    mantissa = (fraction * 2.0**53).astype(np.uint64)  # size = mantissa / 2^down, exactly
    down = (53 - exponent).astype(np.uint64)  # 1 to 53: 0.995 <= size < 2^52
    hundredths = mantissa * np.uint64(100)  # below 2^60
    rounded = hundredths >> down
    rest, half = hundredths - (rounded << down), np.uint64(1) << (down - np.uint64(1))
    rounded += (rest > half) | ((rest == half) & ((rounded & np.uint64(1)) == 1))
    text.number(rounded, fast & (scaled < 0), fast, group=True, decimals=2, suffix=b" GiB")
    others = np.flatnonzero(~fast)
    # below 0.995 GiB: 3 significant digits of the same float, where it is not subnormal
    text.strings(others, [f"{x:.3g} GiB" if 2.0**-1022 <= abs(x) < 0.995 else format_bytes(v)
                          for v, x in zip(values[others].tolist(), scaled[others].tolist())])
    return text


class _SweepText:
    """The text of one column of a sweep: ``lengths[i]`` bytes for row i; :meth:`fill` writes
    rows lo..hi right-aligned into a block of bytes, NUL before each text."""

    def __init__(self, np, n: int):
        self.np, self.lengths = np, np.zeros(n, dtype=np.int64)
        self.digits = self.texts = None

    @property
    def width(self) -> int:
        return int(self.lengths.max(initial=0))

    def number(self, magnitude, negative, where=None, group: bool = False, decimals: int = 0,
               suffix: bytes = b"") -> None:
        """The rows where the mask ``where`` holds (all if None) as ``[-]digits[.decimals][suffix]``:
        the whole number ``magnitude`` (uint64) over 10^decimals, its integer digits grouped in
        threes by commas where ``group``; a minus sign where ``negative`` (False elsewhere)."""
        np = self.np
        powers = np.array([10**k for k in range(1, 20)], dtype=np.uint64)
        whole = np.maximum(1 + np.searchsorted(powers, magnitude, side="right") - decimals, 1)
        commas = (whole - 1) // 3 if group else np.zeros_like(whole)
        lengths = negative + whole + commas + (decimals + 1 if decimals else 0) + len(suffix)
        self.lengths[:] = lengths if where is None else np.where(where, lengths, self.lengths)
        self.digits = (magnitude, negative, whole, commas, group, decimals, suffix)

    def strings(self, rows, texts) -> None:
        """The rows at the (ascending) indices ``rows`` (all if None) as the given texts (once a column)."""
        if not len(texts):
            return
        np = self.np
        try:
            data = [t.encode("ascii") for t in texts]
        except UnicodeEncodeError:
            raise _SweepCellByCell() from None
        if any(b"\0" in b for b in data):
            raise _SweepCellByCell()
        rows = np.arange(len(data)) if rows is None else rows
        self.lengths[rows] = np.fromiter(map(len, data), dtype=np.int64, count=len(data))
        self.texts = (rows, data)

    def fill(self, block, lo: int, hi: int) -> None:
        """Rows lo..hi into ``block`` (hi - lo rows of NULs, at least as wide as the column)."""
        np = self.np
        if self.digits is not None:
            magnitude, negative, whole, commas, group, decimals, suffix = self.digits
            m, left, ten = magnitude[lo:hi], whole[lo:hi], np.uint64(10)
            at = block.shape[1] - len(suffix)
            if suffix:
                block[:, at:] = np.frombuffer(suffix, dtype=np.uint8)
            for k in range(decimals):
                m, digit = np.divmod(m, ten)
                block[:, at - 1 - k] = digit + 48
            if decimals:
                at -= decimals + 1
                block[:, at] = ord(".")
            for k in range(int(left.max(initial=0))):
                column = at - 1 - k - (k // 3 if group else 0)
                live = left > k
                m, digit = np.divmod(m, ten)
                block[:, column] = np.where(live, digit + 48, 0)
                if group and k and k % 3 == 0:
                    block[:, column + 1] = np.where(live, ord(","), 0)
            signed = np.flatnonzero(negative[lo:hi])
            block[signed, at - 1 - left[signed] - commas[lo:hi][signed]] = ord("-")
        if self.texts is not None:
            rows, data = self.texts
            a, b = (int(i) for i in np.searchsorted(rows, [lo, hi]))
            width = block.shape[1]
            padded = b"".join(d.rjust(width, b"\0") for d in data[a:b])
            block[rows[a:b] - lo] = np.frombuffer(padded, dtype=np.uint8).reshape(b - a, width)


def render_validation(v, fmt: str = "table") -> str:
    if fmt == "json":
        return render_json(v.as_dict())
    shape = ", ".join(f"{k} {val}" for k, val in v.shape.items())
    rows = [["", "predicted", "measured", "error"]]
    for what, predicted, measured in v.rows:
        error = 0.0 if predicted == measured else 100.0 * (predicted - measured) / measured
        rows.append([what, f"{predicted:,}", f"{measured:,}", f"{error:+.2f}%"])
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [f"validate {v.spec}: built {shape} (bf16, random weights)",
             "  versions: " + ", ".join(f"{k} {val}" for k, val in v.versions.items()), ""]
    lines += ["  " + "   ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]) for r in rows]
    lines += ["",
              "bytes (parameters: a count), measured on the CPU: activations with torch.autograd.graph.saved_tensors_hooks",
              "(each storage once), peaks as live tensor bytes op by op (engine/lab/peaks.py); the training peak's",
              "layer terms are bounds (up to +8%, never under)."]
    return "\n".join(lines) + "\n"


# --- the GPU catalog ----------------------------------------------------------


def render_gpus(gpus, fmt: str = "table", memory_unit: str = "GiB") -> str:
    """``vram-eval gpus``: each catalog GPU with its marketed size, the budget it gives and the
    sources of both."""
    if fmt == "json":
        return render_json([g.as_dict() for g in gpus])
    rows = [["id", "name", "marketed", f"usable {memory_unit}", "basis", "aliases"]]
    for g in gpus:
        usable = format_bytes(g.usable_bytes, memory_unit).rsplit(" ", 1)[0]
        basis = (f"driver: {g.reported_mib:,} MiB" if g.reported_mib is not None else "capacity (no driver figure)")
        if g.devices > 1:
            basis += f", one of {g.devices} devices"
        rows.append([g.id, g.name, g.marketed or "", usable, basis, ", ".join(g.aliases)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if i == 3 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(f"usable = what one device's driver reports (nvidia-smi memory.total), in "
                 f"{UNIT_WORDS.get(memory_unit, memory_unit)}: the budget --gpu ID binds to gpu_memory.")
    lines.append("Sources: specs/catalog/gpus.toml (`source`, `reported_source`); `--format json` prints them.")
    return "\n".join(lines) + "\n"


def render_plan(plan, fmt: str = "table", memory_unit: str = "GiB") -> str:
    """``vram-eval serve-plan``: the launch line, then what each GPU needs and what the pool holds."""
    if fmt == "json":
        return render_json(plan.as_dict())
    lines = [plan.command, ""]
    where = f"{plan.gpus} x {plan.gpu}" if plan.gpu else f"{plan.gpus} GPU(s)"
    if plan.gpu_memory is not None:
        where += f" ({_mem(plan.gpu_memory, memory_unit)} each)"
    lines.append(f"  {plan.version} on {where}; chosen: {plan.chosen}")
    room = plan.headroom
    lines.append(f"  each GPU: the start needs {_mem(plan.need, memory_unit)} ({plan.job}'s total; "
                 + (f"{_mem(room, memory_unit)} to spare)" if room >= 0 else f"{_mem(-room, memory_unit)} short)"))
    lines.append("")
    rows = [(name, format_value(value, plan.docs.get(name, (None, ""))[0], memory_unit), plan.docs.get(name, (None, ""))[1])
            for name, value in plan.capacity.items()]
    lines += _section("what the pool holds", rows)
    lines += [f"  {note}" for note in plan.notes]
    lines.append("")
    lines.append(f"memory in {UNIT_WORDS.get(memory_unit, memory_unit)}; `--format json` for scripts")
    return "\n".join(lines) + "\n"
