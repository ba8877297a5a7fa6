"""`vram-eval validate`: predicted vs measured on a real PyTorch model (needs the validate extra)."""

import sys

import pytest

import engine
from engine.validate import scaled_shape, validate

from conftest import SPECS


def test_without_the_extra_the_message_says_what_to_install(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    status, _, err = cli("validate", "specs/llama2-7b.toml")
    assert status == 2 and "pip install 'vram-eval[validate]'" in err and "Traceback" not in err


def test_an_architecture_it_cannot_build_is_refused(cli):
    status, _, err = cli("validate", "specs/mixtral-8x7b.toml")
    assert status == 2 and "mixture of experts" in err


def test_the_scaled_model_keeps_the_specs_proportions():
    shape = scaled_shape(engine.load(str(SPECS / "llama3-8b.toml")), "tiny")
    assert (shape["a"] // shape["kv_heads"], shape["h"] // shape["a"]) == (4, 64)  # GQA 32:8 kept
    assert shape["f"] == 896  # 14336/4096 × 256


def test_measured_equals_predicted_on_a_tiny_llama():
    pytest.importorskip("torch", reason="the validate extra is not installed")
    pytest.importorskip("transformers", reason="the validate extra is not installed")
    result = validate(engine.load(str(SPECS / "llama2-7b.toml")), "tiny")
    for what, predicted, measured in result.rows:
        assert abs(predicted - measured) <= 0.02 * measured, what
