"""torch.optim's fp32 `step` counters (formulas/peaks.formula optimizer_step_counters): one 0-dim
tensor per trained parameter tensor, counted where they are on the device modelled — a GPU for a
fused torch AdamW only, the CPU measurements for every torch AdamW — and the parameter tensors
counted (model.formula param_tensors, peft.formula lora_param_tensors) as the measurements record
them (n_trainable_tensors: engine/lab/peaks.py, engine/lab/optimizers.py)."""

import json

import pytest

from conftest import DATA, SPECS, evaluate, evaluate_once
from vram_eval.lab.cases import family_activation_sets, peak_sets

PEAKS = json.loads((DATA / "measured" / "peaks.json").read_text())
OPTIMIZERS = json.loads((DATA / "measured" / "optimizers.json").read_text())
CPU = "device=cpu"  # as tests/test_measured_peaks.py and tests/test_family_activations.py bind the cases


def _trained(c):
    return "lora_param_tensors" if c["lora"] else "param_tensors"


# --- the count of parameter tensors against every recorded case -------------------------------
SHAPE_CASES = ([c for c in PEAKS["cases"] if c["mode"] != "inference"]
               + [dict(c, fused=False, foreach=True) for c in OPTIMIZERS["cases"]])


def _shape_id(c):
    return (f"{c['arch']}-{'lora' if c['lora'] else 'full'}-{c['mode']}-{c.get('optimizer', 'adamw')}-{c['dtype']}"
            f"-b{c['b']}s{c['s']}h{c['h']}a{c['a']}kv{c['kv_heads']}f{c['f']}L{c['L']}V{c['V']}")


@pytest.mark.parametrize("case", SHAPE_CASES, ids=[_shape_id(c) for c in SHAPE_CASES])
def test_the_trained_tensors_are_counted_as_measured(case):
    r = evaluate_once(None, *peak_sets(case), CPU)
    assert r[_trained(case)] == case["n_trainable_tensors"]


FAMILY_CASES = [c for c in PEAKS["family_cases"]]


@pytest.mark.parametrize("case", FAMILY_CASES,
                         ids=[f"{c['family']}-{c['attn']}-{c['mode']}{'-lora' if c['lora'] else ''}" for c in FAMILY_CASES])
def test_each_familys_trained_tensors_are_counted_as_measured(case):
    """Biases, q/k and latent norms, fused experts, shared experts, gated-DeltaNet mixers, tied heads."""
    r = evaluate_once(case["config"], *family_activation_sets(case), CPU)
    assert r[_trained(case)] == case["n_trainable_tensors"]


def test_every_recorded_family_is_in_the_table():
    """The table above is not vacuous: full training and LoRA, the Llama and GPT blocks and families."""
    assert {c["lora"] for c in SHAPE_CASES} == {False, True} == {c["lora"] for c in FAMILY_CASES}
    assert {c["arch"] for c in SHAPE_CASES} == {"llama", "gpt2"}
    assert len({c["family"] for c in FAMILY_CASES}) >= 12


# --- where the counters are ----------------------------------------------------------------------
LLAMA = SPECS / "llama2-7b.toml"


@pytest.mark.parametrize("sets, on_device", [
    (["framework=pytorch", "optimizer_impl=foreach"], False),          # torch.optim on a GPU: on the host
    (["framework=pytorch", "optimizer_impl=single"], False),
    (["framework=pytorch", "optimizer_impl=fused"], True),             # fused=True: on the GPU
    (["framework=hf_trainer"], True),                                  # the Trainer's adamw_torch_fused
    (["optimizer=adamw_torch_fused"], True),
    (["framework=mixed_precision"], False),                            # DeepSpeed's, Megatron's FusedAdam: a Python int
    (["framework=hf_trainer", "zero_stage=2", "dp=2", "offload_optimizer=cpu"], False),  # stepped on the host
    (["framework=pytorch", "optimizer_impl=foreach", CPU], True),      # the CPU holds them all
    (["framework=pytorch", "optimizer_impl=single", CPU], True),
    (["framework=mixed_precision", CPU], True),
])
def test_the_counters_count_where_they_are_on_the_device(sets, on_device):
    r = evaluate(LLAMA, *sets)
    assert r["optimizer_step_counters"] == (4 * r["param_tensors"] if on_device else 0)
    assert r["lora_step_counters"] == (4 * r["lora_param_tensors"] if on_device else 0)


@pytest.mark.parametrize("optimizer", ["adamw_bnb_8bit", "paged_adamw_32bit", "adafactor", "sgd", "lion"])
def test_an_optimizer_without_torch_adams_counters_keeps_none(optimizer):
    r = evaluate(LLAMA, "framework=pytorch", f"optimizer={optimizer}", CPU)
    assert r["optimizer_step_counters"] == 0 == r["lora_step_counters"]


TRAINING_POINTS = ["training_at_backward_start", "training_at_top_layer", "training_at_bottom_layer",
                   "training_at_backward_end", "training_at_optimizer_step"]
LORA_POINTS = ["lora_at_backward_start", "lora_at_top_layer", "lora_at_optimizer_step",
               "qlora_at_backward_start", "qlora_at_top_layer", "qlora_at_optimizer_step"]


@pytest.mark.parametrize("point", TRAINING_POINTS + LORA_POINTS)
def test_the_counters_live_through_every_phase_of_the_step(point):
    """Created by the first step and kept: the CPU's phase points are the GPU's plus the counters."""
    gpu = evaluate(LLAMA, "framework=pytorch", "optimizer_impl=foreach")
    cpu = evaluate(LLAMA, "framework=pytorch", "optimizer_impl=foreach", CPU)
    n = cpu["param_tensors"] if point.startswith("training") else cpu["lora_param_tensors"]
    assert cpu[point] - gpu[point] == 4 * n > 0


def test_a_llama_has_nine_tensors_a_layer_and_three_outside():
    r = evaluate(LLAMA)
    assert r["param_tensors"] == 9 * r["L"] + 3 and r["lora_param_tensors"] == 2 * 2 * r["L"]


def test_an_unknown_device_is_refused():
    from vram_eval.errors import EngineError

    with pytest.raises(EngineError, match="'tpu' is not one of: cpu, cuda"):
        evaluate(LLAMA, "device=tpu")
