"""Shared helpers: evaluate a spec (or bare --set values) and run the CLI in-process."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
SPECS = ROOT / "specs"

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def load_toml(path: Path) -> dict:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def evaluate(spec=None, *sets, formulas=(), gpu=None):
    """The Breakdown of a spec path (or None) with --set texts."""
    import vram_eval

    problem = vram_eval.load(None if spec is None else str(spec), list(sets), list(formulas), gpu=gpu)
    return vram_eval.evaluate(problem.ruleset, problem.bindings, spec=problem.spec_path, title=problem.title)


def value(result, name):
    """A value as a Python int where exact, else the SymPy number."""
    v = result[name]
    return int(v) if v.is_Integer else v


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `vram-eval ARGS` in-process from the repository root: (status, stdout, stderr)."""
    from vram_eval.cli import main

    monkeypatch.chdir(ROOT)

    def run(*args):
        status = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return status, out, err

    return run
