"""Peaks over phases, measured on the CPU (tests/data/measured/peaks.json, validation/PEAKS.md).

Not yet formulas of vram-eval: these tests pin the derivation the peak formulas will be built
from (validation/peaks_derived.py), so the data and the derivation cannot drift apart."""

import json

import pytest

from conftest import DATA
from validation import peaks_derived

DOC = json.loads((DATA / "measured" / "peaks.json").read_text())
ROWS = [r for r in peaks_derived.check(DOC) if not r[0].get("amp")]  # autocast activations: not modelled


def test_the_data_records_its_versions():
    assert DOC["versions"]["torch"].startswith("2.13.0")


@pytest.mark.parametrize("phase", sorted({k for _, k, _, _ in ROWS if k != "compact_peak"}))
def test_each_phase_point_is_derived(phase):
    """Training and prefill to the byte (but for ±4 B of b = 1 targets); decode steps leave out
    per-token tensors and come within 1% below."""
    for c, k, p, m in ROWS:
        if k != phase:
            continue
        if phase.startswith("decode"):
            assert -0.01 <= (p - m) / m <= 0, (phase, c["b"], c["s"])
        else:
            assert abs(p - m) <= 4, (phase, c["arch"], c["mode"], c["b"], c["s"])


def test_the_short_form_bounds_the_peak():
    """The compact expression vram-eval can adopt: within +8% / -2% of every measured peak."""
    for c, k, p, m in ROWS:
        if k == "compact_peak":
            assert -0.02 <= (p - m) / m <= 0.08, (c["arch"], c["mode"], c["b"], c["s"])


def test_the_peak_is_never_the_end_of_forward_in_training():
    for c in DOC["cases"]:
        if c["mode"].startswith("train"):
            assert c["peak_phase"] != "forward"
