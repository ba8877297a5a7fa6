"""The package as users get it: a wheel carries grammar/, formulas/, specs/ and the instruments
under the import name vram_eval, and the sdist is the whole project — a wheel built from it is
the same wheel."""

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT


def _build(target: str, source: Path, out: Path) -> Path:
    proc = subprocess.run([sys.executable, "-m", "hatchling", "build", "-t", target, "-d", str(out)], cwd=source,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (artifact,) = out.glob("vram_eval-*.whl" if target == "wheel" else "vram_eval-*.tar.gz")
    return artifact


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(wheel, sdist, the wheel built from the unpacked sdist, where that wheel is installed)."""
    pytest.importorskip("hatchling", reason="the test extra installs hatchling to build offline")
    work = tmp_path_factory.mktemp("build")
    wheel = _build("wheel", ROOT, work / "wheel")
    sdist = _build("sdist", ROOT, work / "sdist")
    with tarfile.open(sdist) as tar:
        tar.extractall(work / "unpacked", filter="data")
    (unpacked,) = (work / "unpacked").iterdir()
    again = _build("wheel", unpacked, work / "again")
    site = work / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                              str(again)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    return wheel, sdist, again, site


def run(site: Path, *args, cwd):
    code = "import sys; from vram_eval.cli import main; sys.exit(main(sys.argv[1:]))"
    env = dict(os.environ, PYTHONPATH=str(site))
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def _tracked(*folders):
    proc = subprocess.run(["git", "ls-files", *folders], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip("not a git checkout (an unpacked sdist): nothing to compare with")
    return set(proc.stdout.split())


def test_the_wheel_runs_from_another_directory(built, tmp_path):
    proc = run(built[3], "specs/llama13b.toml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "LLaMA-13B" in proc.stdout and "13,015,864,320" in proc.stdout


def test_the_wheel_carries_its_data(built, tmp_path):
    code = "import vram_eval.resources as r; print(r.formulas_dir()); print(r.grammar_path())"
    env = dict(os.environ, PYTHONPATH=str(built[3]))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    formulas, grammar = proc.stdout.split()
    assert Path(formulas).is_relative_to(built[3]) and Path(grammar).is_file()
    check = run(built[3], "check", formulas, cwd=tmp_path)
    assert check.returncode == 0, check.stderr


def test_the_import_name_is_vram_eval_and_the_instruments_are_inside(built):
    names = set(zipfile.ZipFile(built[0]).namelist())
    assert "vram_eval/cli.py" in names and "vram_eval/lab/saved_bytes.py" in names and "vram_eval/lab/gpu.py" in names
    assert not any(n.startswith(("engine/", "validation/", "tests/")) for n in names)


def test_the_sdist_holds_every_tracked_file_of_the_project(built):
    with tarfile.open(built[1]) as tar:
        inside = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    wanted = _tracked("engine", "grammar", "formulas", "specs", "tests", "validation", "benchmarks", "docs", "tools")
    assert wanted - inside == set()


def test_a_wheel_built_from_the_sdist_is_the_same_wheel(built):
    def contents(wheel):
        with zipfile.ZipFile(wheel) as z:
            return {n: z.read(n) for n in z.namelist() if ".dist-info/" not in n}

    assert contents(built[2]) == contents(built[0])
