"""The questions that vary one input work on a pre-quantized config.json (a regression: the
layouts' switches, once written `x if c else false`, were conditions the residual tables and
SymPy could not hold, and `sweep` or `sensitivity` of an FP8 checkpoint ended in an internal
error). Each case sweeps an input its layout's switch depends on."""

from __future__ import annotations

import json

import pytest

from conftest import DATA

QWEN2 = json.loads((DATA / "hf_configs" / "qwen2-7b.json").read_text())
CASES = {
    "gptq": ({"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False, "sym": True},
             "quant_group_size=64:128:64"),
    "awq": ({"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemm", "zero_point": True},
            "quant_group_size=64:128:64"),
    "fp8-block": ({"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128]},
                  "fp8_block_out=64:128:64"),
    "compressed-tensors": ({"quant_method": "compressed-tensors", "format": "pack-quantized", "ignore": ["lm_head"],
                            "config_groups": {"group_0": {"targets": ["Linear"], "weights": {
                                "num_bits": 4, "type": "int", "symmetric": True, "strategy": "group", "group_size": 128}}}},
                           "quant_group_size=64:128:64"),
    "modelopt": ({"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16, "exclude_modules": ["lm_head"]},
                 "quant_group_size=16:32:16"),
}


@pytest.mark.parametrize("method", CASES)
def test_a_sweep_over_a_layouts_input_answers(tmp_path, cli, method):
    block, over = CASES[method]
    spec = tmp_path / "config.json"
    spec.write_text(json.dumps(dict(QWEN2, quantization_config=block)))
    status, out, err = cli("sweep", spec, over, "--set", "regime=inference", "--target", "inference_weights")
    assert status == 0 and "internal error" not in err
    assert len(out.strip().splitlines()) == 3  # the header and the two points
