"""The README's worked example of adding a job ("scoring") is data and formulas only: applied to
a copy of the tree, check passes, the report grows a column and solve answers against its peak."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _example(path: str) -> str:
    """The fenced block the README marks ``<!-- example: PATH -->``."""
    match = re.search(r"<!-- example: " + re.escape(path) + r" -->\n```[a-z]*\n(.*?)```", README, re.S)
    assert match, f"the README has no example block for {path}"
    return match.group(1)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A copy of the checkout's engine and data with the README's example applied."""
    root = tmp_path_factory.mktemp("job-example")
    for folder in ("engine", "grammar", "formulas", "specs"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "formulas" / "scoring.formula").write_text(_example("formulas/scoring.formula"))
    jobs = root / "formulas" / "jobs.toml"
    jobs.write_text(jobs.read_text() + "\n" + _example("formulas/jobs.toml"))
    workload = root / "formulas" / "workload.formula"
    text = workload.read_text()
    assert 'or regime == "inference"' in text
    workload.write_text(text.replace('or regime == "inference"', 'or regime == "inference" or regime == "scoring"', 1))
    return root


# The three commands of the example, run on the copy.
COMMANDS = {
    "check": ("check", "formulas"),
    "report": ("specs/llama2-7b.toml",),
    "solve": ("solve", "specs/llama2-7b.toml", "--for", "b", "--budget", "24GiB", "--set", "regime=scoring",
              "--format", "json"),
}


@pytest.fixture(scope="module")
def run(tree, parse_cache):
    """run(NAME): the CompletedProcess of COMMANDS[NAME] on the copy, each in a new process: the
    copy's own engine/ (python -m engine from its root) finds its data beside it, as a user's tree
    does, and the installed package this process has imported (the checkout's) is not used.

    Check first, alone, then the report and solve together (independent
    processes: they share the machine's cores). The parse cache holds the checkout's built-in files
    (conftest.py's parse_cache), so the copy's unchanged files are read from it; check parses the
    files the example adds or edits and writes their entries, which the report and solve then read,
    as a user's next commands do (three parses of the same two files were two thirds of the
    processes' time)."""
    env = dict(os.environ, VRAM_EVAL_CACHE=str(parse_cache))
    started = {}
    done = {}

    def start(*names):
        for name in names:
            started[name] = subprocess.Popen([sys.executable, "-m", "engine", *COMMANDS[name]], cwd=tree, env=env,
                                             text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def result(name):
        if name not in done:
            proc = started[name]
            out, err = proc.communicate(timeout=120)
            done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        return done[name]

    try:
        start("check")
        result("check")
        start("report", "solve")
        yield result
    finally:
        for proc in started.values():  # what a deselected or failed test left running
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def test_check_accepts_the_new_job(run):
    proc = run("check")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_report_grows_a_column(run):
    proc = run("report")
    assert proc.returncode == 0, proc.stderr
    header = next(line for line in proc.stdout.splitlines() if "full training" in line)
    assert header.split()[-1] == "scoring"


def test_solve_answers_against_the_new_jobs_peak(run):
    proc = run("solve")
    assert proc.returncode == 0, proc.stderr
    assert '"target": "peak_scoring"' in proc.stdout
