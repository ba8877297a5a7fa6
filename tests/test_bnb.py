"""What bitsandbytes converts (QLoRA, nf4 and int8 inference), against a real load_in_4bit of
small transformers 5.24 models (tests/data/measured/bnb.json, made by `python -m vram_eval.lab.bnb`):
every nn.Linear is 4-bit, transformers 5's fused routed experts and the routers stay 16-bit."""

import json

import pytest

from conftest import DATA, evaluate, value

MEASURED = json.loads((DATA / "measured" / "bnb.json").read_text())["cases"]


def _result(name, tmp_path, *sets):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(MEASURED[name]["config"], indent=2) + "\n")
    return evaluate(path, *sets)


@pytest.mark.parametrize("name", sorted(MEASURED))
def test_the_parameters_bitsandbytes_converts_are_the_4_bit_ones(name, tmp_path):
    four_bit = sum(n for kind, n in MEASURED[name]["elements"].items() if kind.startswith("4bit"))
    assert value(_result(name, tmp_path), "bnb_quantized_params") == four_bit


@pytest.mark.parametrize("name", sorted(MEASURED))
def test_the_rest_stays_in_16_bits(name, tmp_path):
    result = _result(name, tmp_path)
    sixteen = sum(n for kind, n in MEASURED[name]["elements"].items() if kind.startswith("16bit"))
    assert value(result, "params") - value(result, "bnb_quantized_params") == sixteen


def test_mixtral_s_routed_experts_are_not_quantised_by_bitsandbytes(tmp_path):
    elements = MEASURED["mixtral"]["elements"]
    assert elements["16bit_experts"] > 0 and "4bit_experts" not in elements


def test_qlora_weights_hold_the_experts_in_16_bits(tmp_path):
    result = _result("mixtral", tmp_path, "double_quant=false")
    quantised, rest = value(result, "bnb_quantized_params"), value(result, "params") - value(result, "bnb_quantized_params")
    assert value(result, "qlora_base_weights") == quantised * (0.5 + 0.5 / 8) + rest * 2


def test_a_gptq_style_int4_checkpoint_quantises_the_experts(tmp_path):
    result = _result("mixtral", tmp_path, "inference_dtype=int4")
    assert value(result, "inference_quantized_params") == value(result, "quantized_params")


def test_nf4_inference_is_bitsandbytes(tmp_path):
    result = _result("mixtral", tmp_path, "inference_dtype=nf4")
    assert value(result, "inference_quantized_params") == value(result, "bnb_quantized_params")


def test_transformers_4_s_linear_experts_can_be_stated(tmp_path):
    result = _result("mixtral", tmp_path, "bnb_quantizes_experts=true")
    routers = 2 * 4 * 256
    assert value(result, "bnb_quantized_params") == value(result, "quantized_params") - routers
