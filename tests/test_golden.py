"""Golden files: the report of every spec in specs/, as `vram-eval specs/NAME.toml` prints it.

After an intended change to the formulas or the report, rewrite them with
    UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py
and review the diff like any other change.
"""

import os

import pytest

from conftest import ROOT, SPECS

GOLDEN = ROOT / "tests" / "golden"
SPEC_NAMES = sorted(p.stem for p in SPECS.glob("*.toml"))


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_report_matches_golden_file(cli, name):
    status, out, err = cli(f"specs/{name}.toml")
    assert status == 0, err
    golden = GOLDEN / f"{name}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(out)
    assert out == golden.read_text()


def test_every_golden_file_has_a_spec():
    assert sorted(p.stem for p in GOLDEN.glob("*.txt")) == SPEC_NAMES


def test_there_are_at_least_twelve_real_models():
    assert len(SPEC_NAMES) >= 12
