"""fp32 routers in training (issue 13): transformers keeps DeepSeek-V2/V3's and GLM-4.5's router
weights in fp32 (_keep_in_fp32_modules_strict "gate.weight"); in full training their gradients and
torch AdamW moments follow (fp32), under LoRA they are frozen weights. Measured:
tests/data/measured/router_training.json (engine/lab/router_training.py: bf16, from_pretrained,
one forward, backward and AdamW step on the CPU)."""

from __future__ import annotations

import json

import pytest

import vram_eval

from conftest import DATA

CASES = json.loads((DATA / "measured" / "router_training.json").read_text())["cases"]
# a plain torch.optim.AdamW loop on the model as from_pretrained loads it (the lab's loop)
PYTORCH = ["framework=pytorch", "weight_dtype=bf16", "optimizer=adamw_torch"]


def _evaluate(tmp_path, case, *sets):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(dict(case["model"], torch_dtype="bfloat16")))
    return vram_eval.evaluate(vram_eval.load(str(path), list(sets))).plain


def _total(case, row, parts=("router", "trained", "frozen")):
    return sum(case[p][row] for p in parts)


@pytest.mark.parametrize("name", [n for n in CASES if n.endswith("-full")])
def test_full_training_holds_the_router_its_gradient_and_moments_in_fp32(tmp_path, name):
    case = CASES[name]
    assert case["router_dtypes"] == [["torch.float32", "torch.float32"]]
    v = _evaluate(tmp_path, case, *PYTORCH)
    assert v["params"] == _total(case, "params") and v["trained_fp32_router_params"] == case["router"]["params"]
    # (the fp32 score-bias buffers of DeepSeek-V3 and GLM are model_buffers, not the weights row)
    assert v["weights"] == _total(case, "weights")
    assert v["gradients"] == _total(case, "gradients")
    assert v["optimizer_states"] == _total(case, "optimizer_states")


@pytest.mark.parametrize("name", [n for n in CASES if n.endswith("-lora")])
def test_lora_holds_the_frozen_router_in_fp32(tmp_path, name):
    case = CASES[name]
    assert case["router"]["gradients"] == 0 and case["router"]["optimizer_states"] == 0
    v = _evaluate(tmp_path, case, *PYTORCH)
    base = case["router"]["weights"] + case["frozen"]["weights"]
    # LoRA's base row is the full-training weights row; the adapters are lora_adapters
    assert v["weights"] == base


def test_deepspeeds_cast_holds_no_fp32_router(tmp_path):
    """framework = mixed_precision (the default: DeepSpeed, Megatron-LM) casts the module to 16 bits
    (deepspeed/runtime/engine.py _configure_distributed_model: self.module.bfloat16())."""
    case = CASES["deepseek-v3-full"]
    v = _evaluate(tmp_path, case, "weight_dtype=bf16")
    assert not v["router_fp32_trained"] and v["router_fp32_weight_bytes"] == 0
    assert v["weights"] == v["params"] * 2


def test_qlora_keeps_the_unconverted_router_in_fp32(tmp_path):
    """bitsandbytes leaves the routers unconverted (model.formula bnb_quantized_params) and transformers
    holds them in fp32 (measured for a bitsandbytes load: tests/data/measured/bnb_checkpoints.json)."""
    case = CASES["deepseek-v3-lora"]
    with_fp32 = _evaluate(tmp_path, case, *PYTORCH)
    without = _evaluate(tmp_path, case, "weight_dtype=bf16")
    n = case["router"]["params"]
    assert with_fp32["qlora_base_weights"] - without["qlora_base_weights"] == 2 * n


def test_ddps_buckets_hold_the_fp32_routers_gradients_in_fp32():
    """reducer.cpp buckets each gradient in its own dtype: an fp32 router's 4 bytes, not bf16's 2."""
    from conftest import DATA, evaluate

    config = DATA / "published" / "deepseek-v3.config.json"
    sets = ["distributed=ddp", "dp=2", "framework=hf_trainer", "weight_dtype=bf16"]
    on, off = (evaluate(config, *sets, f"router_fp32={v}") for v in ("true", "false"))
    routers = 58 * 256 * 7168  # 58 MoE layers, a 256 x 7168 gate each
    assert int(on["ddp_gradient_buckets"]) - int(off["ddp_gradient_buckets"]) == routers * (4 - 2)
