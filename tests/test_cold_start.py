"""A run whose formula files are all in the parse cache imports neither SymPy nor Lark where
no question needs them: the report, its JSON, a solve without a closed form, a sweep. (Their
speed is benchmarks/bench.py's; this is what makes it.) Where a question does need SymPy — a
closed form, a derivative, an expansion — it is imported, and the answer is the same."""

import hashlib
import json
import os
import shutil
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


# The built-in file whose entry the cold run below writes (a small one that every case reads).
PARSED = ROOT / "formulas" / "precision.formula"


@pytest.fixture(scope="module")
def cache(tmp_path_factory, parse_cache):
    """A parse cache holding every formula file the cases read, with an entry written by a real run.

    It starts as a copy of conftest.py's parse_cache (each built-in file's entry, written by a fresh
    parse through the library's own cache code) less PARSED's entry; a first run, in a new process,
    then misses it: it parses (and imports Lark, which the cases must not) and writes that entry
    again, byte for byte the one the copy had: the copy's entries are those a real run writes. (A
    first run that parses every file costs ~1.5 s of CPU; this one ~0.5 s.) Every case below is a
    new process reading the cache from disk: what is under test is what a process imports from its
    start, which this process (SymPy and Lark imported long ago) cannot show."""
    directory = tmp_path_factory.mktemp("cache")
    source = hashlib.sha256(PARSED.read_bytes()).hexdigest()
    removed = {}
    for entry in sorted(parse_cache.glob("*.json")):  # the entries (not another writer's temporary files)
        data = entry.read_bytes()
        if json.loads(data).get("source") == source:  # an entry of PARSED's bytes (engine/cache.py)
            removed[entry.name] = data
        else:
            shutil.copy2(entry, directory / entry.name)
    assert removed, f"parse_cache holds no entry of {PARSED.name}"
    first = run(directory, "specs/llama13b.toml")  # misses PARSED: this one parses it
    assert first["code"] == 0 and "lark" in first["imported"]
    written = [name for name in removed if (directory / name).exists()]
    assert len(written) == 1 and (directory / written[0]).read_bytes() == removed[written[0]], \
        "the first run did not write the entry a fresh parse writes"
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


def test_a_parse_without_lark_is_a_located_error_not_a_traceback():
    """A cached run needs neither Lark nor SymPy; a parse (here: the cache off) needs both. Where an
    install lacks one, the first formula file it must parse is named, with what to install."""
    blocked = "import sys; sys.modules['lark'] = None\nfrom vram_eval.cli import main\nsys.exit(main(sys.argv[1:]))"
    env = dict(os.environ, VRAM_EVAL_CACHE="off")
    done = subprocess.run([sys.executable, "-c", blocked, "specs/llama13b.toml"], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("formulas/") and ": error: parsing formula files needs Lark and SymPy (lark is not" \
        in done.stderr, done.stderr
    assert "pip install vram-eval" in done.stderr
