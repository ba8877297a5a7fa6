"""grammar/, formulas/ and specs/ reach an installed wheel, not only an editable install."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    pytest.importorskip("hatchling", reason="the test extra installs hatchling to build the wheel offline")
    work = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(work / "dist"), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    (wheel,) = (work / "dist").glob("vram_eval-*.whl")
    site = work / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                              str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    return site


def run(site: Path, *args, cwd):
    code = "import sys; from engine.cli import main; sys.exit(main(sys.argv[1:]))"
    env = dict(os.environ, PYTHONPATH=str(site))
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_wheel_runs_from_another_directory(installed, tmp_path):
    proc = run(installed, "specs/llama13b.toml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "LLaMA-13B" in proc.stdout and "13,015,864,320" in proc.stdout


def test_the_wheel_carries_its_data(installed, tmp_path):
    code = "import engine.resources as r; print(r.formulas_dir()); print(r.grammar_path())"
    env = dict(os.environ, PYTHONPATH=str(installed))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    formulas, grammar = proc.stdout.split()
    assert Path(formulas).is_relative_to(installed) and Path(grammar).is_file()
    check = run(installed, "check", formulas, cwd=tmp_path)
    assert check.returncode == 0, check.stderr
