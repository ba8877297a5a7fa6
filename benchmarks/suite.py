"""Speed of the test suite, measured (not asserted): `python3 benchmarks/suite.py [--runs N]`.

Each run is the README's test command, `python -m pytest` from the checkout root (every core, as
pyproject.toml's addopts say), with a fresh empty parse cache (as `.ci/run` starts). It reports the
median wall time and the median CPU time (user + system of pytest, its workers and every process
they start: subprocesses, forks, the browser) of:

  * the whole suite;
  * the tests that existed when issue 12 was filed (commit 93f3592), by the node ids they have now
    (benchmarks/tests_at_93f3592.txt): the same work, to compare like with like;
  * with ``--then DIR --then-python PY``: that older checkout's own suite, ``PY -m pytest`` in DIR
    (PY: an interpreter with that version installed, e.g. a virtual environment made there with
    `pip install torch==2.13.0 '.[test,validate]'`). The runs take turns — then, now, subset —
    so a machine whose speed drifts moves them alike.

Bar (issue 12): the suite under half of the filed tree's time on the same machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILED_AT = Path(__file__).with_name("tests_at_93f3592.txt")
PYTEST = ["-m", "pytest", "-q", "-p", "no:cacheprovider"]


def _ids() -> list:
    lines = FILED_AT.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def _run(python: str, args: list, cwd: Path) -> tuple:
    """(wall, CPU) seconds of one pytest run, with an empty parse cache of its own, and pytest's
    summary line."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, VRAM_EVAL_CACHE=cache)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run([python, *PYTEST, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"pytest failed in {cwd} (exit {done.returncode}):\n{done.stdout[-3000:]}")
    summary = done.stdout.strip().splitlines()[-1]
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--then", type=Path, help="a checkout of an older version (e.g. 93f3592)")
    parser.add_argument("--then-python", default=None, help="the interpreter that has --then installed")
    parser.add_argument("--only-filed", action="store_true", help="only the tests that existed at 93f3592")
    args = parser.parse_args()
    if args.then and not args.then_python:
        parser.error("--then needs --then-python (an interpreter with that version installed)")
    runs = {}
    for _ in range(args.runs):
        if args.then:
            runs.setdefault("then: the filed tree's suite", []).append(_run(args.then_python, [], args.then))
        if not args.only_filed:
            runs.setdefault("now: the whole suite", []).append(_run(sys.executable, [], ROOT))
        runs.setdefault("now: the tests of the filed tree", []).append(_run(sys.executable, _ids(), ROOT))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"median of {args.runs}")
    medians = {}
    for label, results in runs.items():
        wall = statistics.median(r[0] for r in results)
        cpu = statistics.median(r[1] for r in results)
        medians[label] = wall
        print(f"  {label:<36} {wall:7.1f} s wall {cpu:7.1f} s CPU   ({results[-1][2]})")
    then = medians.get("then: the filed tree's suite")
    if then:
        for label, wall in medians.items():
            if not label.startswith("then"):
                print(f"  {label:<36} {wall / then:7.2f}x the filed tree's wall time (goal: under 0.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
