"""TensorRT Model Optimizer checkpoints (issue 13.3): quant_algo, group_size, the KV-cache recipe and
exclude_modules give the weights to the byte (formulas/modelopt.formula), checked against the tensor
tables modelopt's own export writes (tests/data/measured/modelopt.json, engine/lab/modelopt.py)."""

from __future__ import annotations

import json

import pytest

import vram_eval

from conftest import DATA
from test_checkpoint import data_bytes, write_safetensors

MEASURED = json.loads((DATA / "measured" / "modelopt.json").read_text())["cases"]


def _evaluate(tmp_path, model: dict, quantization: dict, *sets):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(dict(model, torch_dtype="bfloat16", quantization_config=quantization)))
    return vram_eval.evaluate(vram_eval.load(str(path), list(sets)))


def _stored(tmp_path, case: dict) -> int:
    path = tmp_path / "model.safetensors"
    write_safetensors(path, [(n, shape, dt) for n, dt, shape in case["tensors"]])
    return data_bytes(path)


# the two ways modelopt writes the block: config.json's quantization_config (modelopt 0.47), and
# hf_quant_config.json's "quantization" (what older exports, and nvidia's Hub checkpoints, carry)
def _blocks(case: dict) -> dict:
    return {"config.json": case["quantization_config"],
            "hf_quant_config": dict(case["hf_quant_config"]["quantization"], quant_method="modelopt")}


@pytest.mark.parametrize("case", sorted(MEASURED))
@pytest.mark.parametrize("written", ["config.json", "hf_quant_config"])
def test_the_config_alone_gives_the_bytes_modelopt_writes(tmp_path, case, written):
    result = _evaluate(tmp_path, MEASURED[case]["model"], _blocks(MEASURED[case])[written])
    assert result.plain["uses_modelopt_weights"] and result.warnings == []
    assert result.plain["inference_weights"] == _stored(tmp_path, MEASURED[case])


def test_an_fp8_kv_cache_adds_a_k_and_a_v_scale_per_layer(tmp_path):
    plain = {name: _evaluate(tmp_path, MEASURED[name]["model"], MEASURED[name]["quantization_config"]).plain
             for name in ("llama-FP8", "llama-FP8-kv_fp8")}
    layers = MEASURED["llama-FP8"]["model"]["num_hidden_layers"]
    assert plain["llama-FP8-kv_fp8"]["inference_weights"] - plain["llama-FP8"]["inference_weights"] == 2 * 4 * layers


UNREAD = {
    "no quant_algo": {"quant_method": "modelopt"},
    "an MLP-only recipe": {"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16,
                           "exclude_modules": ["lm_head", "*self_attn*"]},
    "a recipe without a rule": {"quant_method": "modelopt", "quant_algo": "NVFP4_SVDQUANT", "exclude_modules": ["lm_head"]},
    "an NVFP4 KV cache": {"quant_method": "modelopt", "quant_algo": "FP8", "kv_cache_quant_algo": "NVFP4",
                          "exclude_modules": ["lm_head"]},
    "the head quantised": {"quant_method": "modelopt", "quant_algo": "FP8", "exclude_modules": []},
}


@pytest.mark.parametrize("quantization", UNREAD.values(), ids=UNREAD)
def test_a_layout_it_cannot_read_is_estimated_and_said_so(tmp_path, quantization):
    result = _evaluate(tmp_path, MEASURED["llama-FP8"]["model"], quantization)
    assert not result.plain["uses_modelopt_weights"]
    assert any("modelopt layout of this checkpoint is not modelled" in w for w in result.warnings)


def test_a_moe_checkpoint_is_estimated_and_said_so(tmp_path):
    mixtral = json.loads((DATA / "hf_configs" / "mixtral-8x7b-v0.1.json").read_text())
    quantization = {"quant_method": "modelopt", "quant_algo": "FP8", "exclude_modules": ["lm_head", "*block_sparse_moe.gate*"]}
    result = _evaluate(tmp_path, mixtral, quantization)
    assert not result.plain["uses_modelopt_weights"] and result.warnings


def test_an_unknown_quant_algo_is_a_located_error(tmp_path):
    from vram_eval.errors import SpecError

    with pytest.raises(SpecError) as caught:
        _evaluate(tmp_path, MEASURED["llama-FP8"]["model"], {"quant_method": "modelopt", "quant_algo": "FP3"})
    assert "quant_algo" in str(caught.value) and caught.value.location.line == 1
