"""The command line: argv → library calls → stdout/stderr and an exit status.

0 success, 2 bad input (one located paragraph on stderr), 1 a bug in
vram-eval. No arithmetic happens here.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Sequence

from .errors import EngineError

__all__ = ["main"]

COMMANDS = ("eval", "check", "explain", "solve", "sensitivity", "sweep", "validate", "gpus", "web", "serve-plan")

EPILOG = """\
examples:
  vram-eval specs/llama13b.toml
  vram-eval specs/llama13b.toml --set s=4096 --set b=8 --format json
  vram-eval path/to/config.json --units GB
  vram-eval solve specs/llama2-7b.toml --for s --budget 24GiB --set regime=inference
  vram-eval sensitivity specs/llama13b.toml --target activations
  vram-eval sweep specs/llama13b.toml s=512:32768:x2 --plot mem.png
  vram-eval explain weights
  vram-eval check formulas/ my.formula
  vram-eval gpus
  vram-eval specs/llama3-70b.toml --set engine=vllm --set tp=4 --gpu h100
  vram-eval serve-plan meta-llama/Llama-3.1-8B --gpu rtx4090 --fetch
  vram-eval web --open

`vram-eval SPEC` is short for `vram-eval eval SPEC`. Exit status: 0 success,
2 bad input (a located message on stderr), 1 a bug in vram-eval.
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit 2 with one paragraph (as argparse does)."""


def _common(p: argparse.ArgumentParser, formats=("table", "json", "yaml")) -> None:
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
                   help="bind an input (overrides the spec); values may carry units: 24GiB, 80GB, 13B")
    p.add_argument("--formulas", action="append", default=[], metavar="PATH",
                   help="your own .formula file or directory; may override built-in definitions")
    p.add_argument("--train-config", dest="train_configs", action="append", default=[], metavar="FILE",
                   help="a DeepSpeed JSON, TrainingArguments/TRL, axolotl or LLaMA-Factory config (repeatable; "
                   "applied before --set; its base model is the spec when none is given)")
    p.add_argument("--fetch", action="store_true",
                   help="read a Hub id the local cache does not hold from the Hub: its config.json and safetensors "
                   "headers only, by HTTP range reads (HF_ENDPOINT, HF_TOKEN); never the weights")
    p.add_argument("--format", choices=formats, default=formats[0], help=f"output format (default {formats[0]})")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vram-eval",
        description="How much GPU memory a model needs for training, LoRA, QLoRA and inference — "
        "from formulas you can read and change.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"vram-eval {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("eval", help="memory breakdown of a spec (the default command)",
                       description="Evaluate every formula at the spec's values.")
    p.add_argument("spec", metavar="SPEC", nargs="?", default=None,
                   help="a .toml / .yaml spec, a config.json, a model folder, a Hub id or a .gguf file "
                   "(may be left out when a --train-config names the base model)")
    _common(p)
    p.add_argument("--units", choices=("GiB", "GB", "MiB", "MB", "TiB", "TB"), default="GiB",
                   help="memory unit for the table (GiB = 2^30 bytes, GB = 10^9); JSON is always bytes")
    p.add_argument("--output", dest="outputs", action="append", default=[], metavar="NAME",
                   help="show only this output (repeatable); an error if its inputs are not set")
    p.add_argument("--all", dest="listing", action="store_true",
                   help="list every input and output instead of the regime table")
    p.add_argument("--gpu", metavar="ID", help="a GPU of specs/catalog/gpus.toml (h100, rtx4090, ...): its usable "
                   "memory (what the driver reports) becomes gpu_memory; overrides the spec's gpu")

    p = sub.add_parser("solve", help="the largest (or smallest) value of an input that fits a budget",
                       description="Solve for one input: the largest value that keeps the target within the budget "
                       "if the target grows with it, the smallest if it shrinks (dp, tp, zero_stage).")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--for", dest="name", required=True, metavar="NAME", help="the input to solve for (s, b, dp, ...)")
    p.add_argument("--budget", action="append", default=[], metavar="MEMORY",
                   help="memory per GPU, with a unit: 24GiB, 80GB (repeatable: one answer each)")
    p.add_argument("--gpu", action="append", default=[], metavar="ID",
                   help="use this catalog GPU's usable memory (what its driver reports) as a budget (repeatable)")
    p.add_argument("--target", metavar="OUTPUT", help="the output to keep in budget (default: peak_<regime>)")
    p.add_argument("--peak", action="store_true",
                   help="answer against peak_<regime>, the peak over phases (the default; kept for scripts)")
    p.add_argument("--total", action="store_true",
                   help="answer against total_<regime>, the sum of parts, instead of the peak")
    _common(p)

    p = sub.add_parser("sensitivity", help="derivatives, elasticities and doubling ratios of a target",
                       description="For each input the target depends on: ∂target/∂x, its value here, the "
                       "elasticity ∂ln M/∂ln x and M(2x)/M(x); ranked by elasticity.")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--target", metavar="OUTPUT", help="the output to differentiate (default: peak_<regime>)")
    p.add_argument("--peak", action="store_true",
                   help="peak_<regime>, the peak over phases (the default; kept for scripts)")
    p.add_argument("--total", action="store_true",
                   help="total_<regime>, the sum of parts, instead of the peak")
    _common(p)

    p = sub.add_parser("sweep", help="tabulate or plot outputs over a range of an input",
                       description="Evaluate outputs over NAME=START:STOP[:STEP] (STOP inclusive; STEP may be "
                       "x2 for a geometric series), vectorised.")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("range", metavar="NAME=START:STOP[:STEP]")
    p.add_argument("--target", dest="targets", action="append", default=[], metavar="OUTPUT",
                   help="an output to tabulate (repeatable; default: peak_<regime>)")
    p.add_argument("--peak", action="store_true",
                   help="answer against peak_<regime>, the peak over phases (the default; kept for scripts)")
    p.add_argument("--total", action="store_true",
                   help="answer against total_<regime>, the sum of parts, instead of the peak")
    p.add_argument("--plot", metavar="FILE", help="draw the sweep to FILE.png or FILE.svg (needs vram-eval[plot])")
    p.add_argument("--gpu", action="append", default=[], metavar="ID",
                   help="draw this GPU's usable memory (repeatable)")
    _common(p, formats=("csv", "json", "table"))

    p = sub.add_parser("validate", help="predicted vs measured on a real PyTorch model (needs vram-eval[validate])",
                       description="Build the spec's architecture at a small size with random weights and compare "
                       "the formulas with what PyTorch counts and saves for backward.")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--scale", choices=("tiny", "small"), default="tiny", help="model size to build (default tiny)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--format", choices=("table", "json"), default="table")

    p = sub.add_parser("gpus", help="list the GPU catalog: marketed size, usable memory, sources",
                       description="List specs/catalog/gpus.toml: each GPU's id (and aliases), its marketed size and "
                       "the usable memory --gpu ID budgets (what its driver reports), with the sources in JSON.")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--units", choices=("GiB", "GB", "MiB", "MB"), default="GiB",
                   help="memory unit for the table (GiB = 2^30 bytes, GB = 10^9); JSON is always bytes")

    p = sub.add_parser("serve-plan", help="the vllm serve / sglang launch line for a model and a GPU, and what it holds",
                       description="Choose the fewest GPUs (tensor parallel, powers of two up to --gpus) on which a "
                       "server holds the model's context (or the max_model_len / context_len you --set), else the "
                       "longest that fits; print the launch line with those flags and the KV capacity it gives.")
    p.add_argument("spec", metavar="MODEL", help="a config.json, a model folder, a Hub id, a .gguf file or a spec; "
                   "the launch line names it as given")
    p.add_argument("--engine", choices=("vllm", "sglang"), default="vllm", help="the server (default vllm)")
    p.add_argument("--gpu", metavar="ID", help="the GPU of each rank (a catalog id: h100, a100-80gb, rtx4090, ...); "
                   "overrides the spec's gpu")
    p.add_argument("--gpus", type=int, default=8, metavar="N",
                   help="the most GPUs to split the model over (tensor parallel; default 8); --set tp=N fixes it")
    p.add_argument("--margin", default="1GiB", metavar="MEMORY",
                   help="memory of each GPU to keep spare beyond the engine's need: the estimates' uncertainty "
                   "(default 1GiB; 0GiB plans to the byte)")
    _common(p, formats=("table", "json"))
    p.add_argument("--units", choices=("GiB", "GB", "MiB", "MB", "TiB", "TB"), default="GiB",
                   help="memory unit for the table (GiB = 2^30 bytes, GB = 10^9); JSON is always bytes")

    p = sub.add_parser("web", help="a local web page: breakdown, peak, formulas, solve and sweep",
                       description="Serve a page and a JSON API over the same library on HOST:PORT (localhost "
                       "by default); Ctrl-C stops it.")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="the port (default 8765; 0 picks a free one)")
    p.add_argument("--open", dest="open_browser", action="store_true", help="open the page in a browser")

    p = sub.add_parser("check", help="parse and lint formula files",
                       description="Check formula files: syntax, duplicate names, cycles, unknown functions, "
                       "and (as warnings) names no spec in specs/ sets.")
    p.add_argument("paths", nargs="*", metavar="PATH", help="formula files or directories (default: formulas/)")

    p = sub.add_parser("explain", help="show a formula, its expansion, doc, unit and dependencies",
                       description="Explain a name: its formula as written, the expanded SymPy form, "
                       "its doc, unit, file:line and what it depends on.")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("--spec", metavar="SPEC", help="fix string and boolean choices (arch, dtypes, ...) from a spec")
    p.add_argument("--list", action="store_true", help="list every input and output name")
    _common(p, formats=("table", "json"))
    return parser


def _normalise(argv: List[str]) -> List[str]:
    """`vram-eval SPEC ...` means `vram-eval eval SPEC ...`, and so does `vram-eval --OPTION ...`
    (`vram-eval --train-config axolotl.yml`)."""
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        return ["eval"] + argv
    for i, arg in enumerate(argv):
        if arg.startswith("-"):
            if arg in ("-h", "--help", "--version"):
                return argv
            continue
        if arg not in COMMANDS:
            return argv[:i] + ["eval"] + argv[i:]
        return argv
    return argv


# What a terminal that cannot show a character gets instead (LC_ALL=C, PYTHONIOENCODING=ascii).
_PLAIN = {"\u2014": "-", "\u2013": "-", "\u2212": "-", "\u00b7": "*", "\u00d7": "x", "\u2192": "->",
          "\u2264": "<=", "\u2265": ">=", "\u2248": "~", "\u2202": "d", "\u00b2": "^2", "\u00b3": "^3",
          "\u2026": "...", "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " ",
          "\u2009": " ", "\u202f": " ", "\u2713": "ok", "\u2717": "x"}


def _plain_streams() -> None:
    """Make stdout and stderr print what their encoding cannot show as plain ASCII
    look-alikes (then '?'), instead of failing with UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        encoding = getattr(stream, "encoding", None) or "ascii"
        try:
            "\u2014\u00b7\u2264".encode(encoding)
            continue  # UTF-8 or another encoding that shows them
        except (UnicodeEncodeError, LookupError):
            pass
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
        write = stream.write

        def plain(text, write=write):
            return write(text.translate(_TRANSLATE))

        try:
            stream.write = plain
        except (AttributeError, TypeError):  # pragma: no cover - a stream we cannot wrap
            pass


_TRANSLATE = str.maketrans(_PLAIN)


def main(argv: Optional[Sequence[str]] = None) -> int:
    _plain_streams()
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(_normalise(args_list))
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return _COMMANDS[args.command](args)
    except EngineError as exc:
        sys.stderr.write(exc.render())
        return 2
    except BrokenPipeError:  # `vram-eval ... | head`
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception:  # a bug: say so plainly, keep the traceback for the report
        import traceback

        sys.stderr.write("vram-eval: internal error (this is a bug in vram-eval, please report it):\n")
        traceback.print_exc()
        return 1


def _load(*args, **kwargs):
    """engine.load, its warnings said on stderr."""
    from .problem import load

    problem = load(*args, **kwargs)
    for warning in problem.warnings:
        sys.stderr.write(f"vram-eval: warning: {warning}\n")
    return problem


def _eval(args) -> int:
    from .forward import evaluate
    from .report import render

    if args.spec is None and not args.train_configs:
        from .errors import ArgumentSyntaxError, Location

        raise ArgumentSyntaxError("give a SPEC (a spec file, a model folder, a Hub id, a .gguf file), or a "
                                  "--train-config that names the base model", Location("SPEC"))
    problem = _load(args.spec, args.sets, args.formulas, gpu=args.gpu, train_configs=args.train_configs,
                    fetch=args.fetch)
    result = evaluate(problem.ruleset, problem.bindings, wanted=args.outputs,
                      spec=problem.spec_path, title=problem.title)
    if args.outputs:
        result = result.only(args.outputs)
    listing = args.listing or bool(args.outputs)
    sys.stdout.write(render(result, args.format, args.units, listing=listing, gpu=problem.gpu,
                            checkpoint=problem.spec.checkpoint if problem.spec else None,
                            train_configs=problem.train_configs))
    return 0


def _check(args) -> int:
    from .check import check_paths
    from .report import render_check

    report = check_paths(args.paths)
    out, err = render_check(report)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return 2 if report.errors else 0


def _explain(args) -> int:
    from .explanation import explain, list_names
    from .report import render_explanation, render_names

    problem = _load(args.spec, args.sets, args.formulas, train_configs=args.train_configs, fetch=args.fetch)
    if args.list or not args.name:
        sys.stdout.write(render_names(list_names(problem.ruleset), args.format))
        return 0
    sys.stdout.write(render_explanation(explain(problem.ruleset, args.name, problem.bindings), args.format))
    return 0


def _solve(args) -> int:
    from .focus import chosen_target
    from .inverse import budgets, solve
    from .report import render_solutions

    problem = _load(args.spec, args.sets, args.formulas, train_configs=args.train_configs, fetch=args.fetch)
    solutions = [solve(problem, args.name, value, chosen_target(problem, args.target, args.total), budget_text=label)
                 for label, value in budgets(problem, args.budget, args.gpu)]
    sys.stdout.write(render_solutions(solutions, args.format))
    return 0


def _sensitivity(args) -> int:
    from .derivatives import sensitivity
    from .focus import chosen_target
    from .report import render_sensitivity

    problem = _load(args.spec, args.sets, args.formulas, train_configs=args.train_configs, fetch=args.fetch)
    sys.stdout.write(render_sensitivity(sensitivity(problem, chosen_target(problem, args.target, args.total)), args.format))
    return 0


def _sweep(args) -> int:
    from .focus import chosen_target
    from .grid import parse_range, sweep
    from .report import render_sweep

    rng = parse_range(args.range)
    problem = _load(args.spec, args.sets, args.formulas, train_configs=args.train_configs, fetch=args.fetch)
    result = sweep(problem, rng, args.targets or [chosen_target(problem, None, args.total)])
    if args.plot:
        _plot(args, problem, result)
    sys.stdout.write(render_sweep(result, args.format))
    return 0


def _plot(args, problem, result) -> None:
    from .errors import EngineError
    from .hardware import GPU_MEMORY, find_gpu
    from .plot import plot_sweep
    from .inverse import solve

    lines = []
    gpus = [find_gpu(g) for g in args.gpu] or ([problem.gpu] if problem.gpu else [])
    for gpu in gpus:
        lines.append((gpu.name, gpu.usable_bytes))
    if not gpus and GPU_MEMORY in problem.bindings:
        lines.append((GPU_MEMORY, int(problem.bindings[GPU_MEMORY].value)))
    crossings = []
    for target in result.columns:
        if result.units.get(target) != "bytes":
            continue
        for label, memory in lines:
            try:
                sol = solve(problem, result.name, memory, target, remedies=False)
            except EngineError:
                continue
            if sol.value is not None and _in_range(result, sol.value):
                crossings.append((target, label, sol.value, sol.target_at_value))
    plot_sweep(result, args.plot, lines, crossings)


def _in_range(result, value) -> bool:
    return float(result.xs[0]) <= float(value) <= float(result.xs[-1])


def _serve_plan(args) -> int:
    from .errors import ArgumentSyntaxError, Location
    from .plan import plan
    from .report import render_plan

    if args.gpus < 1:
        raise ArgumentSyntaxError("--gpus must be at least 1", Location("--gpus"), option="--gpus", text=str(args.gpus))
    from .inverse import parse_budget

    margin = 0 if args.margin.strip() in ("0", "0GiB", "0GB", "0B") else parse_budget(args.margin, "--margin")
    problem = _load(args.spec, args.sets, args.formulas, gpu=args.gpu, train_configs=args.train_configs,
                    fetch=args.fetch)
    sys.stdout.write(render_plan(plan(problem, args.engine, args.spec, args.gpus, margin), args.format, args.units))
    return 0


def _validate(args) -> int:
    from .report import render_validation
    from .validate import validate

    problem = _load(args.spec, args.sets)
    sys.stdout.write(render_validation(validate(problem, args.scale), args.format))
    return 0


def _gpus(args) -> int:
    from .hardware import gpu_catalog
    from .report import render_gpus

    unique = list({id(g): g for g in gpu_catalog().values()}.values())
    sys.stdout.write(render_gpus(unique, args.format, args.units))
    return 0


def _web(args) -> int:
    from .web import serve

    return serve(args.host, args.port, args.open_browser)


_COMMANDS = {"gpus": _gpus, "validate": _validate, "eval": _eval, "check": _check, "explain": _explain, "solve": _solve,
             "sensitivity": _sensitivity, "sweep": _sweep, "web": _web, "serve-plan": _serve_plan}

