"""Peaks over phases, measured on the CPU (tests/data/measured/peaks.json, validation/PEAKS.md).

Two layers: formulas/peaks.formula against the measured live bytes (the phase points it names
to the byte, the overall peak within its stated bound), and validation/peaks_derived.py — the
fuller derivation with the in-layer terms — so that the data and the derivation cannot drift
apart."""

import json

import pytest

from conftest import DATA, evaluate, evaluate_once
from validation import peaks_derived
from vram_eval.lab.cases import peak_comparable, peak_sets

DOC = json.loads((DATA / "measured" / "peaks.json").read_text())
ROWS = [r for r in peaks_derived.check(DOC) if not r[0].get("amp")]  # derived.py does not model autocast


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


def test_the_peak_is_never_the_end_of_forward_in_training_without_autocast():
    phases = {c["peak_phase"] for c in DOC["cases"] if c["mode"].startswith("train") and not c["amp"]}
    assert phases and not phases & {"forward", "forward_2"}


# The measurements ran on the CPU, which holds torch.optim's fp32 `step` counters (4 bytes per
# trained tensor; a GPU keeps them on the host unless the optimizer is fused): peaks.formula counts
# them for device = cpu (tests/test_step_counters.py).
CPU = "device=cpu"


def at(c, t=0):
    """The values at a measured case (decode step t), worked out once for the session: several
    tests below and docs/ACCURACY.md's table (tests/test_accuracy.py) ask the same point."""
    return evaluate_once(None, *peak_sets(c, t), *(() if c["mode"] == "inference" else (CPU,)))


def test_under_autocast_the_end_of_forward_stays_within_the_formulas_peak():
    """Two autocast LoRA cases peak at the end of the forward (not a named point); the top layer's
    bound still covers them."""
    at_forward = [c for c in DOC["cases"] if c["peak_phase"] in ("forward", "forward_2")]
    assert at_forward and all(c["amp"] and c["lora"] for c in at_forward)
    for c in at_forward:
        r = at(c)
        assert r["lora_at_backward_start"] < c["peak_bytes"]
        assert r["peak_allocated_lora"] >= c["peak_bytes"]


# --- formulas/peaks.formula against the measurements ---------------------------------------
CASES = [c for c in DOC["cases"] if peak_comparable(c)]
TRAIN = [c for c in CASES if c["mode"].startswith("train") and not c["lora"]]
LORA = [c for c in CASES if c["lora"]]
INFER = [c for c in CASES if c["mode"] == "inference"]


def _id(c):
    extra = (("fused" if c["fused"] else "foreach" if c["foreach"] else "single") if c["mode"] != "inference"
             else f"ltk{c['logits_to_keep']}") + ("-lora" if c["lora"] else "")
    return (f"{c['arch']}-{c['dtype']}-{c['attn']}-{c['mode']}-{extra}-b{c['b']}s{c['s']}h{c['h']}a{c['a']}"
            f"kv{c['kv_heads']}f{c['f']}L{c['L']}V{c['V']}{'-amp' if c['amp'] else ''}")


@pytest.mark.parametrize("case", TRAIN, ids=[_id(c) for c in TRAIN])
def test_optimizer_step_to_the_byte(case):
    r = at(case)
    assert r["training_at_optimizer_step"] == case["phase_peaks"]["step_2"]


@pytest.mark.parametrize("case", TRAIN, ids=[_id(c) for c in TRAIN])
def test_end_of_backward_to_the_byte(case):
    r = at(case)
    assert r["training_at_backward_end"] == case["segments"]["backward_2"]["embed"]["peak"]


@pytest.mark.parametrize("case", TRAIN, ids=[_id(c) for c in TRAIN])
def test_start_of_backward_to_the_byte(case):
    """The loss's backward is the largest point of the head's backward wherever b·s·V outweighs
    the final norm's fp32 backward (V >= 2h); elsewhere it is still reached, not the maximum."""
    r = at(case)
    predicted = r["training_at_backward_start"]
    measured = case["segments"]["backward_2"]["head"]["peak"]
    assert predicted <= measured
    if case["V"] >= 2 * case["h"]:
        assert predicted == measured


@pytest.mark.parametrize("case", TRAIN, ids=[_id(c) for c in TRAIN])
def test_training_peak_within_its_bound(case):
    """The layers' backward terms are bounds (over by at most a layer's weight gradients: +8 % at
    these weight-heavy shapes); every other phase point is exact — so never under."""
    r = at(case)
    predicted = r["peak_allocated_training"]
    # under autocast the weight gradients are fp32, twice the slack
    assert 0 <= (predicted - case["peak_bytes"]) / case["peak_bytes"] <= (0.10 if case["amp"] else 0.08)


def test_training_peak_is_exact_where_the_bound_is_not_the_peak():
    """Where the measured peak is at the start of the backward or at the optimizer step — most
    cases without checkpointing — the formula gives it to the byte."""
    exact = [c for c in TRAIN
             if at(c)["peak_allocated_training"] == c["peak_bytes"]]
    assert len(exact) >= 80, len(exact)
    assert {c["peak_phase"] for c in exact} <= {"backward_2", "step", "step_2"}


@pytest.mark.parametrize("case", INFER, ids=[_id(c) for c in INFER])
def test_prefill_to_the_byte(case):
    r = at(case)
    assert r["inference_at_prefill"] == case["phase_peaks"]["prefill"]


@pytest.mark.parametrize("case", INFER, ids=[_id(c) for c in INFER])
@pytest.mark.parametrize("t", [1, 2, 3])
def test_decode_step_just_under(case, t):
    """Per-token tensors (b·h, scores of one query, b·V) are left out: within 1 % below."""
    r = at(case, t)
    measured = case["phase_peaks"][f"decode_{t}"]
    assert -0.01 <= (r["inference_at_decode"] - measured) / measured <= 0


@pytest.mark.parametrize("case", INFER, ids=[_id(c) for c in INFER])
def test_inference_peak_to_the_byte(case):
    r = at(case, 3)
    assert r["peak_allocated_inference"] == case["peak_bytes"]


@pytest.mark.parametrize("case", LORA, ids=[_id(c) for c in LORA])
def test_lora_phase_points_to_the_byte(case):
    """peft LoRA (r = 8 on q, v; fp32 adapters; frozen bf16 Llama): the start of the backward,
    the adapters' step, and — with checkpointing — the top layer's recomputation and backward."""
    r = at(case)
    backward = case["segments"]["backward_2"]
    top = backward[f"layer{case['L'] - 1}"]["peak"]
    assert r["lora_at_backward_start"] == backward["head"]["peak"]
    assert r["lora_at_optimizer_step"] == case["phase_peaks"]["step_2"]
    if case["mode"] == "train_ckpt" and not case["amp"]:
        assert r["lora_at_top_layer"] == top
    else:  # without checkpointing, or under autocast, a bound
        assert top <= r["lora_at_top_layer"]


@pytest.mark.parametrize("case", LORA, ids=[_id(c) for c in LORA])
def test_lora_peak_to_the_byte(case):
    """Exact on a bf16 base; under autocast the top layer's recomputation is a bound (up to +6 %)."""
    r = at(case)
    predicted, measured = r["peak_allocated_lora"], case["peak_bytes"]
    if case["amp"]:
        assert 0 <= (predicted - measured) / measured <= 0.06
    else:
        assert predicted == measured


# --- beyond the measured sizes: the formulas against the exact derivation ---------------------
REALISTIC = [  # (h, a, kv_heads, f, L, V): Llama-2-7B-, Llama-3-8B- and Llama-2-70B-like, and small
    (4096, 32, 32, 11008, 32, 32000), (4096, 32, 8, 14336, 32, 128256), (8192, 64, 8, 28672, 80, 32000),
    (512, 8, 2, 1376, 4, 2000)]


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("mode", ["train", "train_ckpt"])
@pytest.mark.parametrize("b, s", [(1, 4096), (8, 2048), (1, 512), (2, 8192)])
def test_training_peak_never_under_the_exact_derivation_at_real_sizes(attn, mode, b, s):
    """validation/peaks_derived.py's exact model (in-layer event forms fitted on small shapes, exact
    on every measured case) extrapolated to 7B-70B shapes: the formula may be above it (a bound),
    never below, and by at most 4 %."""
    for h, a, kv, f, L, V in REALISTIC:
        c = peaks_derived.synthetic(arch="llama", attn=attn, mode=mode, b=b, s=s, h=h, a=a, kv_heads=kv, f=f,
                                    L=L, V=V, fused=True)
        exact = max(peaks_derived.exact_train(c, peaks_derived.quantities(c), 2).values())
        predicted = evaluate(None, *peak_sets(dict(c, logits_to_keep=None)), CPU)["peak_allocated_training"]
        assert 0 <= (predicted - exact) / exact <= 0.04, (h, L)
