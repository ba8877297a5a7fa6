"""A run whose formula files are all in the parse cache imports neither SymPy nor Lark where
no question needs them: the report, its JSON, a solve without a closed form, a sweep. (Their
speed is benchmarks/bench.py's; this is what makes it.) Where a question does need SymPy — a
closed form, a derivative, an expansion — it is imported, and the answer is the same."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

PROBE = """
import contextlib, io, json, sys
from vram_eval.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "imported": sorted(m for m in ("sympy", "lark") if m in sys.modules),
                  "out": out.getvalue()}))
"""


def run(cache, *args):
    env = dict(os.environ, VRAM_EVAL_CACHE=str(cache))
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cache")
    first = run(directory, "specs/llama13b.toml")  # fills the cache: this one parses
    assert first["code"] == 0 and "lark" in first["imported"]
    return directory


WITHOUT_SYMPY = {
    "the report": ["specs/llama13b.toml"],
    "the report of a config.json": ["tests/data/hf_configs/qwen3-8b.json"],
    "the report as JSON": ["specs/llama2-7b.toml", "--format", "json"],
    "every input and output": ["specs/llama13b.toml", "--all"],
    "a solve of a peak (no closed form)": ["solve", "specs/llama13b.toml", "--for", "s", "--budget", "80GiB",
                                           "--set", "regime=lora"],
    "a solve where nothing fits, with its remedies": ["solve", "specs/llama13b.toml", "--for", "s", "--budget", "80GiB"],
    "a solve for the fewest GPUs": ["solve", "specs/llama13b.toml", "--for", "dp", "--budget", "40GiB", "--set",
                                    "zero_stage=3"],
    "a sweep as CSV": ["sweep", "specs/llama2-7b.toml", "s=1:100000", "--set", "regime=inference", "--format", "csv"],
    "a sweep of two outputs, with requirements": ["sweep", "specs/llama13b.toml", "tp=1:8:x2", "--target",
                                                  "peak_training", "--target", "weights"],
}


@pytest.mark.parametrize("args", list(WITHOUT_SYMPY.values()), ids=list(WITHOUT_SYMPY))
def test_a_cached_run_imports_neither_sympy_nor_lark(cache, args):
    result = run(cache, *args)
    assert result["code"] == 0
    assert result["imported"] == [], result["imported"]


def test_a_closed_form_imports_sympy_and_gives_it(cache):
    result = run(cache, "solve", "specs/llama13b.toml", "--for", "s", "--budget", "40GiB", "--target", "kv_cache",
                 "--format", "json")
    assert result["imported"] == ["sympy"]
    assert json.loads(result["out"])["closed_form"].startswith("s = floor(")
