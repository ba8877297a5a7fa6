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

COMMANDS = ("eval", "check", "explain")

EPILOG = """\
examples:
  vram-eval specs/llama13b.toml
  vram-eval specs/llama13b.toml --set s=4096 --set b=8 --format json
  vram-eval path/to/config.json --units GB
  vram-eval explain weights
  vram-eval check formulas/ my.formula

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
    p.add_argument("spec", metavar="SPEC", help="a .toml / .yaml spec or a Hugging Face config.json")
    _common(p)
    p.add_argument("--units", choices=("GiB", "GB", "MiB", "MB", "TiB", "TB"), default="GiB",
                   help="memory unit for the table (GiB = 2^30 bytes, GB = 10^9); JSON is always bytes")
    p.add_argument("--output", dest="outputs", action="append", default=[], metavar="NAME",
                   help="show only this output (repeatable); an error if its inputs are not set")
    p.add_argument("--all", dest="listing", action="store_true",
                   help="list every input and output instead of the regime table")
    p.add_argument("--gpu", metavar="ID", help="a GPU of specs/catalog/gpus.toml (h100, rtx4090, ...); "
                   "overrides the spec's gpu")

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
    """`vram-eval SPEC ...` means `vram-eval eval SPEC ...`."""
    for i, arg in enumerate(argv):
        if arg.startswith("-"):
            if arg in ("-h", "--help", "--version"):
                return argv
            continue
        if arg not in COMMANDS:
            return argv[:i] + ["eval"] + argv[i:]
        return argv
    return argv


def main(argv: Optional[Sequence[str]] = None) -> int:
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


def _eval(args) -> int:
    from .evaluate import evaluate
    from .load import load
    from .report import render

    problem = load(args.spec, args.sets, args.formulas, gpu=args.gpu)
    result = evaluate(problem.ruleset, problem.bindings, wanted=args.outputs,
                      spec=problem.spec_path, title=problem.title)
    if args.outputs:
        result = result.only(args.outputs)
    listing = args.listing or bool(args.outputs)
    sys.stdout.write(render(result, args.format, args.units, listing=listing, gpu=problem.gpu))
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
    from .explain import explain, list_names
    from .load import load
    from .report import render_explanation, render_names

    problem = load(args.spec, args.sets, args.formulas)
    if args.list or not args.name:
        sys.stdout.write(render_names(list_names(problem.ruleset), args.format))
        return 0
    sys.stdout.write(render_explanation(explain(problem.ruleset, args.name, problem.bindings), args.format))
    return 0


_COMMANDS = {"eval": _eval, "check": _check, "explain": _explain}
