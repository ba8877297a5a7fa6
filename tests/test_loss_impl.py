"""loss_impl: how the loss is computed (formulas/activations.formula, peaks.formula).

transformers keeps the fp32 log-softmax (4·b·s·V) and, at the start of the backward, allocates two
more fp32 b·s·V gradients (measured, tests/data/measured/peaks.json). Liger-Kernel's fused linear
cross-entropy and Apple's Cut Cross-Entropy never hold b·s·V fp32 tensors (derived from
liger-kernel 0.8.5 ops/fused_linear_cross_entropy.py and cut-cross-entropy 25.1.1 cce.py, not
measured: both need a GPU)."""

import math

import pytest

from conftest import DATA, evaluate

GiB = 2**30
LLAMA2 = DATA.parent.parent / "specs" / "llama2-7b.toml"
# Llama-2-7B (specs/llama2-7b.toml) at b = 4, s = 4096 with full recomputation.
b, s, h, V = 4, 4096, 4096, 32000
bs = b * s


def run(*sets):
    return evaluate(LLAMA2, "b=4", "recompute=full", *sets)


def test_transformers_is_the_default():
    assert run()["peak_allocated_lora"] == run("loss_impl=transformers")["peak_allocated_lora"]


# What the loss keeps for backward: transformers' fp32 log-softmax, int64 targets and total_weight;
# liger's grad_weight (V·h in the head's fp16) when the head is trained, nothing when it is frozen
# (its grad_input replaces the head's input of the same size); cce's fp32 log-sum-exp and int64
# targets per token and its fp32 average logit per vocabulary entry.
LOSS_KEPT = [
    # loss_impl,     full training,         LoRA (frozen head)
    ("transformers", 4 * bs * V + 8 * bs + 4, 4 * bs * V + 8 * bs + 4),
    ("liger",        V * h * 2,              0),
    ("cce",          12 * bs + 4 * V,        12 * bs + 4 * V),
]


@pytest.mark.parametrize("impl,full,lora", LOSS_KEPT, ids=[r[0] for r in LOSS_KEPT])
def test_what_the_loss_keeps(impl, full, lora):
    r = run(f"loss_impl={impl}")
    assert (r["measured_loss"], r["measured_lora_loss"]) == (full, lora)


def test_liger_keeps_the_heads_gradient_only_when_the_head_trains():
    """Liger computes grad_weight (zeros_like(weight), fused_linear_cross_entropy.py:116) in the
    forward and keeps it for the backward: V·h in the head's dtype, full training only."""
    r = run("loss_impl=liger")
    assert r["measured_loss"] - r["measured_lora_loss"] == V * h * 2


def liger_chunk_rows():
    """Liger's chunk: b·s / ceil(V / h) rows, to the next power of two (lines 103-106); the formula
    takes twice the quotient, a bound."""
    return min(bs, 2 * math.ceil(bs / math.ceil(V / h)))


# The loss's largest workspace (the start of the backward for transformers and cce, inside the
# forward for liger), in bytes.
WORKSPACE = [
    ("transformers", 8 + 8 * bs * V - (8 * bs + 4)),
    ("liger", 8 + 2 * bs * h + 2 * liger_chunk_rows() * V + 5 * bs),
    ("cce", 8 + 2 * bs * h + 2 * V * h + 4 * V),
]


@pytest.mark.parametrize("impl,workspace", WORKSPACE, ids=[r[0] for r in WORKSPACE])
def test_the_losss_workspace(impl, workspace):
    assert run(f"loss_impl={impl}")["loss_backward_workspace"] == workspace


def test_cce_with_a_frozen_head_computes_no_head_gradient():
    r = run("loss_impl=cce")
    assert r["loss_backward_workspace"] - r["lora_loss_backward_workspace"] == 2 * V * h


@pytest.mark.parametrize("impl", ["liger", "cce"])
def test_the_fused_losses_remove_the_bsV_terms_from_the_start_of_the_backward(impl):
    """LoRA: transformers holds 4·bsV (kept) + 8·bsV (the two gradients) = 12·bsV fp32 bytes there."""
    t, f = run(), run(f"loss_impl={impl}")
    removed = (t["measured_lora_loss"] + t["lora_loss_backward_workspace"]
               - f["measured_lora_loss"] - f["lora_loss_backward_workspace"])
    assert t["lora_at_backward_start"] - f["lora_at_backward_start"] == removed
    assert removed > 12 * bs * V - 2 * bs * h - 2 * liger_chunk_rows() * V - 2 * V * h


def test_the_worked_example():
    """README: with liger the LoRA peak moves from the start of the backward to the top layer's
    backward: 22.73 → 20.26 GiB of tensors (peak_allocated_lora)."""
    t, f = run(), run("loss_impl=liger")
    assert t["peak_allocated_lora"] == t["lora_at_backward_start"] == 24_401_256_712
    assert f["peak_allocated_lora"] == f["lora_at_top_layer"] == 21_753_667_848
    assert t["peak_allocated_lora"] - f["peak_allocated_lora"] == 2_647_588_864
    assert (round(int(t["peak_allocated_lora"]) / GiB, 2), round(int(f["peak_allocated_lora"]) / GiB, 2)) == (22.73, 20.26)


def test_the_runtime_overhead_scales_with_the_peak_it_sits_on():
    """peak_lora = peak_allocated_lora + overhead + ceil(allocator_fragmentation · peak_allocated_lora)
    (formulas/overhead.formula): the fused loss's saving grows by the fragmentation share."""
    t, f = run(), run("loss_impl=liger")
    frag = t["allocator_fragmentation"]
    saved = t["peak_allocated_lora"] - f["peak_allocated_lora"]
    assert (t["peak_lora"] - f["peak_lora"]
            == saved + math.ceil(frag * t["peak_allocated_lora"]) - math.ceil(frag * f["peak_allocated_lora"]))


def test_the_top_layer_does_not_depend_on_the_loss():
    assert run()["lora_at_top_layer"] == run("loss_impl=liger")["lora_at_top_layer"] == run("loss_impl=cce")["lora_at_top_layer"]


def test_an_unknown_loss_impl_is_a_located_error(cli):
    status, out, err = cli("specs/llama2-7b.toml", "--set", "loss_impl=unsloth")
    assert status == 2 and "'unsloth' is not one of: cce, liger, transformers" in err


def test_solve_offers_the_fused_loss_where_it_makes_b_1_fit(cli):
    """Llama-2-7B LoRA at s = 8192 within 20 GiB: nothing fits as it is; liger is the first remedy."""
    status, out, _ = cli("solve", "specs/llama2-7b.toml", "--for", "b", "--budget", "20GiB", "--target", "peak_lora",
                         "--set", "recompute=full", "--set", "s=8192")
    tries = [line.strip() for line in out.splitlines() if line.strip().startswith("try:")]
    assert status == 0 and tries[0] == "try: --set loss_impl=liger: b = 1 fits"


def test_solve_does_not_offer_the_loss_that_is_already_set(cli):
    status, out, _ = cli("solve", "specs/llama2-7b.toml", "--for", "b", "--budget", "18GiB", "--target", "peak_lora",
                         "--set", "recompute=full", "--set", "s=8192", "--set", "loss_impl=liger")
    tries = [line.strip() for line in out.splitlines() if line.strip().startswith("try:")]
    assert status == 0 and "nothing fits" in out
    assert tries == ["try: --set regime=qlora: b = 3 fits", "try: --set activation_offloading=true: b = 1 fits",
                     "try: --set tp=2: b = 2 fits"]
