"""docs/ACCURACY.md is regenerated from the measurements on record and stays in date.

If a formula change moves a prediction, this test fails until the table is regenerated
(python -m validation.accuracy), so the change shows in review — and tests/test_measured*.py
fail outright when a prediction leaves its target."""

import pytest

from conftest import evaluate_once
from validation import accuracy


@pytest.fixture(scope="module")
def table():
    """docs/ACCURACY.md as the measurements on record make it (built once: it evaluates every case,
    each point once for the session: tests/test_measured*.py ask the same points)."""
    return accuracy.build(lambda spec, sets: evaluate_once(spec, *sets))


def test_accuracy_table_is_up_to_date(table):
    assert accuracy.OUT.read_text() == table, "run: python -m validation.accuracy"


def test_every_row_is_within_its_target(table):
    summary = table.split("## Every case")[0]
    assert "| NO |" not in summary


def test_gpu_measurements_become_rows_when_there_are_some(tmp_path, monkeypatch):
    """No session has had a GPU yet; when engine/lab/gpu.py writes gpu_peaks.json, its cases are
    compared with the peak formulas like every other measurement."""
    import json

    import vram_eval
    from vram_eval.lab import gpu
    from vram_eval.lab.cases import gpu_prediction, gpu_sets

    case = gpu.CASES[0]
    problem = vram_eval.load(None, gpu_sets(case))
    predicted = gpu_prediction(case, vram_eval.evaluate(problem.ruleset, problem.bindings))["allocated"]
    measured = gpu.make_record(case, "default", dict(
        peak_allocated=predicted * 102 // 100, peak_reserved=predicted * 110 // 100, device_used=predicted * 110 // 100,
        device_used_basis="nvml process", memory_reserved=predicted * 110 // 100, context_at_start=0,
        cublas_workspace=0, n_trainable_tensors=75))
    versions = dict.fromkeys(gpu.VERSION_FIELDS, "?") | {"device": "H100", "compute_capability": "9.0"}
    (tmp_path / "gpu_peaks.json").write_text(json.dumps({"description": "", "versions": versions, "cases": [measured]}))
    monkeypatch.setattr(accuracy, "DATA", tmp_path)
    row = next(iter(accuracy.gpu_rows()))
    assert row[0] == "GPU: peak of a training step, max_memory_allocated"
    assert row[3] == predicted and row[4] == measured["peak_allocated"]


def test_the_gpu_script_lists_its_cases_without_a_gpu(capsys):
    from vram_eval.lab import gpu

    assert gpu.main(["--list"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(gpu.CASES)
