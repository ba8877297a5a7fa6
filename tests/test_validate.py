"""`vram-eval validate`: predicted vs measured on a real PyTorch model (needs the validate extra)."""

import os
import sys

import pytest

import vram_eval
from vram_eval.validate import scaled_shape, validate

from conftest import SPECS


def test_without_the_extra_the_message_says_what_to_install(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    status, _, err = cli("validate", "specs/llama2-7b.toml")
    assert status == 2 and "pip install 'vram-eval[validate]'" in err and "Traceback" not in err


def test_an_architecture_it_cannot_build_is_refused(cli):
    status, _, err = cli("validate", "specs/mixtral-8x7b.toml")
    assert status == 2 and "mixture of experts" in err


def test_the_scaled_model_keeps_the_specs_proportions():
    shape = scaled_shape(vram_eval.load(str(SPECS / "llama3-8b.toml")), "tiny")
    assert (shape["a"] // shape["kv_heads"], shape["h"] // shape["a"]) == (4, 64)  # GQA 32:8 kept
    assert shape["f"] == 896  # 14336/4096 × 256


@pytest.fixture
def one_thread_per_worker():
    """Under pytest-xdist every core already runs a worker: PyTorch's intra-op threads would only
    wait for each other (a tiny model's run took 3-6x as long). What is measured (bytes, counted
    op by op) does not depend on the thread count."""
    torch = pytest.importorskip("torch", reason="the validate extra is not installed")
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("spec", ["llama2-7b", "llama3-8b", "gpt2"])
def test_measured_equals_predicted_at_tiny_scale(spec, one_thread_per_worker):
    """Live: build the architecture, measure it, compare (CI installs the validate extra, so a
    formula that drifts from what PyTorch really does fails the build)."""
    pytest.importorskip("torch", reason="the validate extra is not installed")
    pytest.importorskip("transformers", reason="the validate extra is not installed")
    result = validate(vram_eval.load(str(SPECS / f"{spec}.toml")), "tiny")
    assert len(result.rows) >= 5
    assert any(what.startswith("peak of a training step") for what, _, _ in result.rows)
    for what, predicted, measured in result.rows:
        if what.startswith("peak of a training step"):  # the lowest layer's term is a bound
            assert -0.02 * measured <= predicted - measured <= 0.08 * measured, what
            continue
        target = 0 if what.startswith(("parameters", "KV cache", "peak of generation")) else 0.02 * measured
        assert abs(predicted - measured) <= target, what
