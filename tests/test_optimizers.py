"""Optimizers by their Hugging Face Trainer names (formulas/workload.formula, peft.formula,
peaks.formula): what each keeps per trained parameter, and what its step allocates.

Reference numbers: tests/data/measured/optimizers.json (engine/lab/optimizers.py: a random-weight
Llama on the CPU, live tensor bytes op by op — Adafactor, torch.optim.Muon with AdamW on the rest,
bitsandbytes 0.50.2's AdamW8bit and PagedAdamW32bit on its CPU backend)."""

import json
import math

import pytest
from sympy import Rational

from conftest import DATA, SPECS, evaluate, value
from vram_eval.lab.cases import peak_sets

LLAMA2_7B = SPECS / "llama2-7b.toml"
DOC = json.loads((DATA / "measured" / "optimizers.json").read_text())
CASES = DOC["cases"]


def _sets(c):
    return [x for x in peak_sets(dict(c, fused=False)) if not x.startswith("optimizer_impl=")] + [
        f"optimizer={c['optimizer']}", "optimizer_impl=single"]


def _id(c):
    return f"{c['optimizer']}-{c['dtype']}-{'lora' if c['lora'] else 'full'}-V{c['V']}-h{c['h']}"


# --- per parameter, from the libraries' sources ---------------------------------------------
@pytest.mark.parametrize("optimizer, weight_dtype, bytes_per_param", [
    ("adamw_torch", "bf16", 4),              # torch.optim: moments in the parameters' dtype
    ("adamw_torch_fused", "bf16", 4),
    ("adamw_torch", "fp32", 8),
    ("paged_adamw_32bit", "bf16", 8),        # bitsandbytes' 32-bit states are fp32 whatever the weights
    ("adamw_bnb_8bit", "bf16", Rational(2) + Rational(8, 256)),  # 8 bits + an fp32 absmax per 256
    ("paged_adamw_8bit", "bf16", Rational(2) + Rational(8, 256)),
    ("adamw_8bit", "bf16", Rational(2) + Rational(8, 256)),
    ("adam8bit", "bf16", Rational(2) + Rational(8, 256)),   # the older name, bitsandbytes' format
    ("sgd", "bf16", 0),
    ("lion", "bf16", 2),
])
def test_state_bytes_per_parameter_under_torch_optim(optimizer, weight_dtype, bytes_per_param):
    r = evaluate(LLAMA2_7B, f"weight_dtype={weight_dtype}", "framework=hf_trainer", f"optimizer={optimizer}")
    assert r["optimizer_state_bytes"] == bytes_per_param


@pytest.mark.parametrize("optimizer, impl", [("adamw_torch", "foreach"), ("adamw_torch_fused", "fused")])
def test_the_trainer_names_choose_the_step_implementation(optimizer, impl):
    assert evaluate(LLAMA2_7B, f"optimizer={optimizer}")["optimizer_impl"].value == impl


@pytest.mark.parametrize("sets, adapter_bytes", [(["optimizer_state_dtype=fp32"], 8),
                                                 (["optimizer_state_dtype=bf16"], 4), ([], 8)])
def test_optimizer_state_dtype_is_honoured_for_lora(sets, adapter_bytes):
    """fp32 adapters (PEFT's default) under the Trainer: the default (auto) keeps their dtype; bf16 halves them."""
    r = evaluate(LLAMA2_7B, "weight_dtype=bf16", "framework=hf_trainer", *sets)
    assert value(r, "lora_optimizer_states") == adapter_bytes * value(r, "lora_params")


def test_qlora_paged_adamw_keeps_fp32_moments_on_bf16_adapters():
    """QLoRA's optimizer (paged_adamw_32bit) on 16-bit adapters: 8 bytes per adapter parameter."""
    r = evaluate(LLAMA2_7B, "weight_dtype=bf16", "framework=hf_trainer", "autocast_adapter_dtype=false",
                 "optimizer=paged_adamw_32bit")
    assert r["lora_dtype"].value == "bf16"
    assert value(r, "lora_optimizer_states") == 8 * value(r, "lora_params")
    assert value(r, "lora_adapters") == 2 * value(r, "lora_params")


@pytest.mark.parametrize("autocast_adapter_dtype, dtype", [("true", "fp32"), ("false", "bf16")])
def test_peft_upcasts_16_bit_adapters_by_default(autocast_adapter_dtype, dtype):
    r = evaluate(LLAMA2_7B, "weight_dtype=bf16", f"autocast_adapter_dtype={autocast_adapter_dtype}")
    assert r["lora_dtype"].value == dtype


def test_muon_keeps_one_moment_on_the_layer_matrices_and_two_elsewhere():
    r = evaluate(LLAMA2_7B, "weight_dtype=bf16", "framework=hf_trainer", "optimizer=muon")
    p, m = value(r, "params"), value(r, "quantized_params")
    assert value(r, "optimizer_states") == 2 * (m + 2 * (p - m))


def test_a_bnb_optimizer_ignores_optimizer_state_dtype():
    r = evaluate(LLAMA2_7B, "framework=hf_trainer", "optimizer=paged_adamw_32bit", "optimizer_state_dtype=bf16")
    assert r["optimizer_state_bytes"] == 8


# --- measured on the CPU ---------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_state_bytes_as_measured(case):
    """To the byte, less the 0-dim step/RMS scalars (left out, as the AdamW step counters are) and, for
    bitsandbytes, its tensors under 4096 elements, which it keeps in fp32 (optimizer.py:502)."""
    r = evaluate(None, *_sets(case))
    name = "lora_optimizer_states" if case["lora"] else "optimizer_states"
    measured = case["optimizer_state_bytes"] - case["step_counter_bytes"]
    if case["optimizer"] in ("adamw_bnb_8bit", "paged_adamw_8bit"):
        numels = [math.prod(shape) for shape in case["trainable_shapes"]]
        small = [n for n in numels if n < 4096]
        predicted = value(r, name) + sum(8 * n - (2 * n + Rational(8 * n, 256)) for n in small)
        # the formula counts fractional blocks; bitsandbytes whole ones: ceil(n / 256) per tensor
        assert 0 <= measured - predicted < 8 * len(numels)
    else:
        assert value(r, name) == measured


STEPPED = [c for c in CASES if c["optimizer"] in ("adafactor", "muon")]


@pytest.mark.parametrize("case", STEPPED, ids=[_id(c) for c in STEPPED])
def test_the_step_peak_within_one_copy_of_the_largest_tensor(case):
    """Adafactor and Muon step tensor by tensor; the formula's temporaries come to the measured step
    peak, or under it by at most one more copy of the largest tensor (a CPU reduction's or a transposed
    matmul's copy, which CUDA's kernels do not make) and the factored means. Muon's AdamW on the other
    parameters takes the arch's for-loop bound, which counts the layer matrices too: over by less
    than one largest tensor."""
    r = evaluate(None, *_sets(case))
    point = "lora_at_optimizer_step" if case["lora"] else "training_at_optimizer_step"
    predicted = value(r, point) + case["step_counter_bytes"]
    measured = case["phase_peaks"]["step_2"]
    if case["lora"]:
        largest = value(r, "lora_largest_adapter") * 4
    else:
        largest = value(r, "largest_param_elems") * 4
    slack = largest + 4 * (case["V"] + case["h"])
    if case["optimizer"] == "muon" and case["dtype"] == "fp32":
        assert abs(measured - predicted) <= slack
    else:
        assert 0 <= measured - predicted <= slack
