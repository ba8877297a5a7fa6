"""activation_offloading: the layers' stored activations wait in pinned host memory (torchtune's
OffloadActivations and TRL's copy of it; formulas/activations.formula).

The GPU side is derived from the sources (not measured on a GPU). What the offloading policy selects
is measured on the CPU by replaying it (engine/lab/offload.py, tests/data/measured/
activation_offloading.json)."""

import json

import pytest

from conftest import DATA, evaluate
from vram_eval.lab.cases import activation_sets

GiB = 2**30
LLAMA2 = DATA.parent.parent / "specs" / "llama2-7b.toml"
B4_FULL = ("b=4", "recompute=full")
DOC = json.loads((DATA / "measured" / "activation_offloading.json").read_text())


def run(*sets):
    return evaluate(LLAMA2, *B4_FULL, *sets)


def test_off_by_default():
    r = run()
    for name in ("activations_offloaded", "lora_activations_offloaded", "host_activations", "lora_host_activations"):
        assert r[name] == 0, name


def test_full_recompute_offloads_every_checkpointed_input_but_one():
    """Llama-2-7B, b = 4, s = 4096: each layer keeps its input, b·s·h·2 = 128 MiB; the host holds all 32,
    and the GPU keeps one (the forward stash)."""
    r = run("activation_offloading=true")
    layer_input = 4 * 4096 * 4096 * 2
    assert r["host_activations"] == 32 * layer_input
    assert r["activations_offloaded"] == 31 * layer_input
    assert r["lora_host_activations"] == 32 * layer_input
    assert r["lora_activations_offloaded"] == 31 * layer_input


@pytest.mark.parametrize("point", ["training_at_backward_start", "lora_at_backward_start", "qlora_at_backward_start",
                                   "lora_at_top_layer", "qlora_at_top_layer", "allocated_training", "allocated_lora",
                                   "allocated_qlora"])
def test_the_gpu_points_drop_the_offloaded_bytes(point):
    off, on = run(), run("activation_offloading=true")
    offloaded = on["lora_activations_offloaded"] if "lora" in point else on["activations_offloaded"]
    assert off[point] - on[point] == offloaded


def test_the_top_layer_keeps_only_its_own_layer():
    """Full training: the lower layers' activations are on the host when the top layer's backward runs."""
    on = evaluate(LLAMA2, "b=4", "recompute=none", "activation_offloading=true")
    grads = on["gradients"] if on["persistent_gradients"] else on["head_gradients"] + on["layer_gradients"]
    expected = (on["training_resident"] + grads + on["sharding_in_backward"]
                + on["layer_no_recompute"] + on["recomputed_layer_extra"] + on["layer_backward_workspace"])
    assert on["activations_offloaded"] > 0
    assert on["training_at_top_layer"] == expected


@pytest.mark.parametrize("point", ["training_at_bottom_layer", "training_at_backward_end", "training_at_optimizer_step",
                                   "lora_at_optimizer_step"])
def test_points_without_stored_activations_do_not_move(point):
    assert run()[point] == run("activation_offloading=true")[point]


def test_the_worked_example():
    """README: Llama-2-7B LoRA, b = 4, full recompute: 22.73 → 18.85 GiB of tensors, 4 GiB pinned on the host."""
    off, on = run(), run("activation_offloading=true")
    assert round(int(off["peak_allocated_lora"]) / GiB, 2) == 22.73
    assert round(int(on["peak_allocated_lora"]) / GiB, 2) == 18.85
    assert on["peak_lora"] - on["peak_allocated_lora"] == on["peak_overhead_lora"]


def test_offloaded_activations_are_pinned_host_memory():
    r = run("activation_offloading=true")
    assert r["host_memory"] == r["host_gradients"] + r["host_activations"]
    assert r["pinned_host_memory"] == r["host_activations"]


def test_the_alias_is_torchtunes_name():
    assert run("enable_activation_offloading=true")["host_activations"] == run("activation_offloading=true")["host_activations"]


# --- the CPU replay of the policy ---------------------------------------------------------------
TRL = [c for c in DOC["cases"] if c["policy"] == "trl"]
TORCHTUNE = [c for c in DOC["cases"] if c["policy"] == "torchtune"]


def _sets(c):
    return activation_sets(dict(c, arch="llama", attn="sdpa", checkpointing=c["recompute"] == "full")) + [
        "activation_offloading=true"]


def _id(c):
    return f"{c['policy']}-{c['recompute']}-{'lora' if c['lora'] else 'full'}-b{c['b']}s{c['s']}L{c['L']}"


def rope_tables(c):
    """cos and sin, (1, s, head_dim) in bf16: saved first by layer 0, so the replay counts them in the
    layers, where the formulas keep them outside (measured_outside)."""
    return 2 * c["s"] * (c["h"] // c["a"]) * 2


@pytest.mark.parametrize("case", TRL, ids=[_id(c) for c in TRL])
def test_the_host_copy_is_the_layers_stored_activations(case):
    r = evaluate(None, *_sets(case))
    host = r["lora_host_activations"] if case["lora"] else r["host_activations"]
    extra = 0 if case["recompute"] == "full" else rope_tables(case)
    assert case["offloaded_in_layers"] == host + extra


@pytest.mark.parametrize("case", DOC["cases"], ids=[_id(c) for c in DOC["cases"]])
def test_the_stash_holds_at_most_one_layer(case):
    r = evaluate(None, *_sets(case))
    per_layer = r["lora_activations_per_layer"] if case["lora"] else r["activations_per_layer"]
    assert 0 <= case["stash_layer_bytes"] <= per_layer


@pytest.mark.parametrize("case", [c for c in TORCHTUNE if c["recompute"] == "none"],
                         ids=[_id(c) for c in TORCHTUNE if c["recompute"] == "none"])
def test_torchtune_also_copies_weight_views_and_repeated_storages(case):
    """torchtune skips nn.Parameter instances only: Linear saves weight.t(), a plain view, and a storage
    saved twice is copied twice. The host holds more than the formulas' count (a lower bound there)."""
    r = evaluate(None, *_sets(case))
    host = r["lora_host_activations"] if case["lora"] else r["host_activations"]
    assert case["offloaded_weight_views"] > 0
    assert case["offloaded_in_layers"] > host + rope_tables(case) + case["offloaded_weight_views"]


def test_the_lora_host_copy_is_in_lora_host_memory_and_on_the_report(cli):
    """With nothing else offloaded, LoRA's host memory is the offloaded activations alone."""
    r = evaluate(LLAMA2, "b=4", "recompute=full", "activation_offloading=true")
    assert r["lora_host_memory"] == r["lora_host_activations"] > 0
    _, out, _ = cli("specs/llama2-7b.toml", "--set", "b=4", "--set", "recompute=full",
                    "--set", "activation_offloading=true")
    assert "offloaded (LoRA, QLoRA): host memory 4.00 GiB per GPU process" in out
