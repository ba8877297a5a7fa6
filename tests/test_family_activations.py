"""The `measured` activation formulas for the families read from config.json, against bytes
PyTorch really saved for backward.

tests/data/measured/activations.json "family_cases" (engine/lab/family_activations.py; torch
2.13.0+cpu, transformers 5.24.0): small random-weight models of each family, built from
transformers' own config classes, one training forward pass under saved_tensors_hooks. Each case
keeps the config.json it ran; the tests read it through specs/catalog/huggingface.toml, as a user's
config.json is read, so the catalog's bindings (norm kinds, q/k norms, routers, soft-capping, the
parallel block, gated-DeltaNet layers...) are under test too. Every case is reproduced to the byte (Falcon with SDPA is
recorded but left out: validation.cases.family_activation_comparable). The training peaks of the
same families (peaks.json "family_cases") follow at the end.
"""

import json
from fractions import Fraction

import pytest

from conftest import DATA, evaluate, evaluate_once
from vram_eval.lab.cases import family_activation_comparable, family_activation_sets

DOC = json.loads((DATA / "measured" / "activations.json").read_text())
CASES = [c for c in DOC["family_cases"] if family_activation_comparable(c)]


def _id(c):
    extra = {k: c[k] for k in ("experts", "experts_per_token", "dense_layers", "q_lora_rank", "n_group",
                               "norm_topk_prob", "gdn_v_heads", "linear_only") if k in c}
    return (f"{c['family']}-{c['attn']}-{c['dtype']}-b{c['b']}s{c['s']}h{c['h']}a{c['a']}kv{c['kv_heads']}"
            f"d{c['head_dim']}f{c['f']}L{c['L']}{'-ckpt' if c['checkpointing'] else ''}{'-lora' if c['lora'] else ''}"
            + "".join(f"-{k}{v}" for k, v in extra.items()))


def bind(c):
    """The case's config.json read with its sets, worked out once for the session: many tests
    below and docs/ACCURACY.md's table (tests/test_accuracy.py) ask the same point."""
    return evaluate_once(c["config"], *family_activation_sets(c))


IDS = [_id(c) for c in CASES]


def test_the_data_records_its_versions():
    v = DOC["family_versions"]
    assert v["torch"].startswith("2.13.0") and v["transformers"] == "5.24.0" and v["date"]


def test_every_block_feature_is_measured():
    families = {c["family"] for c in DOC["family_cases"]}
    assert {"qwen3", "olmo2", "gemma2", "gemma3_text", "mistral", "qwen2_moe", "qwen3_moe", "deepseek_v3",
            "cohere", "falcon", "gpt_neox", "qwen3_next"} <= families


def _lora(case, name):
    """The LoRA output of that name (peft, r = 8 on q and v, fp32 adapters on the frozen model)."""
    return {"activations_per_layer": "lora_activations_per_layer", "activations": "lora_activations",
            "outside_layers": "measured_lora_outside"}[name] if case["lora"] else name


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_layer_is_what_pytorch_saved(case):
    """The last layer: a MoE layer after DeepSeek's dense ones, a full layer in Gemma's mix."""
    assert bind(case)[_lora(case, "activations_per_layer")] == case["per_layer_bytes"]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_outside_the_layers_is_what_pytorch_saved(case):
    assert bind(case)[_lora(case, "outside_layers")] == case["non_layer_bytes"]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_whole_model_is_what_pytorch_saved(case):
    assert bind(case)[_lora(case, "activations")] == case["total_bytes"]


LORA_FIRST = [c for c in CASES if c["lora"] and not c["checkpointing"]]


@pytest.mark.parametrize("case", LORA_FIRST, ids=[_id(c) for c in LORA_FIRST])
def test_with_lora_the_first_layer_saves_less(case):
    """Its input comes from the frozen embedding: no input norm, no k norm, eager Q·Kᵀ keeps only
    K, a parallel block's MLP nothing. (Layer 0 of Gemma-3's mix is a sliding layer.)"""
    r = bind(case)
    sliding_first = case["family"] == "gemma3_text"
    first = (r["lora_activations_per_layer"] - r["measured_lora_first_layer_saving"]
             + (r["sliding_layer_activation_extra"] if sliding_first else 0))
    assert r["measured_lora_first_layer_saving"] > 0
    assert first == case["first_layer_bytes"]


DENSE_FIRST = [c for c in CASES if c["family"] == "deepseek_v3" and not c["checkpointing"]]


@pytest.mark.parametrize("case", DENSE_FIRST, ids=[_id(c) for c in DENSE_FIRST])
def test_a_dense_layer_stores_less_than_a_moe_layer(case):
    r = bind(case)
    dense, moe = case["per_layer_bytes_list"][0], case["per_layer_bytes_list"][-1]
    assert dense < moe
    assert r["measured_dense_layer_saving"] == moe - dense


MIXED_SDPA = [c for c in CASES if c["family"] == "gemma3_text" and c["attn"] == "sdpa" and not c["checkpointing"]]


@pytest.mark.parametrize("case", MIXED_SDPA, ids=[_id(c) for c in MIXED_SDPA])
def test_a_sliding_layer_under_sdpa_stores_its_mask_and_expanded_kv(case):
    """Layers 0, 2 slide (a window shorter than s), layers 1, 3 attend to all (with LoRA and
    without: layer 0 saves less with LoRA, so layer 2 is the sliding one compared)."""
    sliding, full = case["per_layer_bytes_list"][2], case["per_layer_bytes_list"][1]
    assert bind(case)["measured_sliding_layer_extra"] == sliding - full > 0


GDN = [c for c in CASES if c["family"] == "qwen3_next"]


@pytest.mark.parametrize("case", GDN, ids=[_id(c) for c in GDN])
def test_a_gated_deltanet_layer_is_what_pytorch_saved(case):
    """Qwen3-Next's layers 0 and 2 are gated-DeltaNet (linear_attention) layers, 1 and 3 gated
    attention: the last layer is an attention layer, layer 0 a DeltaNet one (with checkpointing
    both keep only their input)."""
    r = bind(case)
    assert r["activations_per_layer"] + r["gdn_layer_activation_extra"] == case["per_layer_bytes_list"][0]


# s and the chunks of 64 tokens torch_chunk_gated_delta_rule pads it to (one row per measured s).
CHUNKS = [(64, 1), (100, 2), (160, 3)]
PADDED = [(c, n) for s, n in CHUNKS for c in GDN if c["s"] == s and not c["checkpointing"] and c["attn"] == "sdpa"
          and c["dtype"] == "bf16" and not c.get("linear_only")]


@pytest.mark.parametrize("case, chunks", PADDED, ids=[f"s{c['s']}-b{c['b']}-Hv{c['gdn_v_heads']}" for c, _ in PADDED])
def test_the_delta_rule_keeps_its_tensors_padded_to_whole_chunks(case, chunks):
    r = bind(case)
    assert r["gdn_chunks"] == chunks and r["gdn_padded_s"] == 64 * chunks >= case["s"]
    assert r["measured_gdn_layer_extra"] == case["per_layer_bytes_list"][0] - case["per_layer_bytes_list"][-1]


def _gdn_variant(case, tmp_path, *sets, **config):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(dict(case["config"], **config)))
    return evaluate(path, *family_activation_sets(case), *sets)


def test_selective_recomputation_drops_only_the_attention_layers_scores(tmp_path):
    """A DeltaNet layer has no attention scores: it keeps its whole mixer (not measured: the
    selective rule applied to the measured layers)."""
    case = next(c for c in GDN if not c["checkpointing"] and c["attn"] == "eager")
    none, selective = _gdn_variant(case, tmp_path), _gdn_variant(case, tmp_path, "recompute=selective")
    assert none["activations"] - selective["activations"] == none["attention_layers"] * none["measured_scores"] > 0


ONLY_DELTANET = [c for c in GDN if c.get("linear_only")]


@pytest.mark.parametrize("case", ONLY_DELTANET, ids=[_id(c) for c in ONLY_DELTANET])
def test_a_stack_of_deltanet_layers_only_keeps_no_rope_tables_or_mask(case):
    """Every layer linear_attention: each is the mixed model's DeltaNet layer (the tests above),
    and nothing outside keeps RoPE's cos and sin unless the checkpoint closures hold them; no
    closure holds the eager 4-D mask."""
    mixed = next(c for c in GDN if not c.get("linear_only") and all(
        c[k] == case[k] for k in ("b", "s", "attn", "dtype", "checkpointing", "gdn_v_heads")))
    r = bind(case)
    assert r["attention_layers"] == 0 and r["attention_masks"] == 0
    assert case["per_layer_bytes_list"][0] == mixed["per_layer_bytes_list"][0]
    held = case["checkpointing"]
    tables = 2 * case["s"] * r["rope_width"] * 2
    mask = 2 * case["b"] * case["s"] ** 2 if held and case["attn"] == "eager" else 0
    assert mixed["non_layer_bytes"] - case["non_layer_bytes"] == (0 if held else tables) + mask


def test_every_chunk_count_is_measured():
    assert {s for s, _ in CHUNKS} <= {c["s"] for c in GDN} and {n for c, n in PADDED} == {1, 2, 3}


# What the catalog must bind for each family's block (a missing binding changes the bytes above,
# and this says which one).
FEATURES = [
    ("qwen3", "qk_norm", "head"),
    ("olmo2", "qk_norm", "full"),
    ("olmo2", "norm_impl", "fp32_weight"),
    ("olmo2", "rope_table_bytes", 4),
    ("gemma2", "norm_impl", "one_plus_weight"),
    ("gemma2", "norms_per_layer", 4),
    ("gemma2", "attn_logit_softcapping", 50),
    ("gemma2", "final_logit_softcapping", 30),
    ("gemma3_text", "rope_per_layer_kind", True),
    ("gemma3_text", "qk_norm", "head"),
    ("qwen2_moe", "router", "qwen"),
    ("qwen2_moe", "shared_expert_gate", True),
    ("qwen3_moe", "router", "qwen"),
    ("deepseek_v3", "router", "deepseek_v3"),
    ("deepseek_v3", "dense_layers", 1),
    ("cohere", "parallel_attn", True),
    ("cohere", "norm_impl", "centred"),
    ("falcon", "activation_function", "gelu"),
    ("falcon", "dropout", False),
    ("gpt_neox", "parallel_attn", True),
    ("gpt_neox", "norms_per_layer", 2),
    ("gpt_neox", "softmax_fp32", True),
    ("gpt_neox", "fused_qkv_view", True),
    ("gpt_neox", "rotary_pct", Fraction(1, 4)),
    ("qwen3_next", "norm_impl", "one_plus_weight"),
    ("qwen3_next", "router", "qwen"),
    ("qwen3_next", "attention_output_gate", True),
    ("qwen3_next", "rotary_fraction", Fraction(1, 4)),
    ("qwen3_next", "rope_cat", True),
    ("qwen3_next", "gdn_layers", 2),
    ("qwen3_next", "attention_layers", 2),
]


@pytest.mark.parametrize("family, name, expected", FEATURES, ids=[f"{f}-{n}" for f, n, _ in FEATURES])
def test_the_catalog_binds_the_block_feature(family, name, expected):
    case = next(c for c in CASES if c["family"] == family)
    value = bind(case)[name]
    assert (value.value == expected) if isinstance(expected, str) else (value == expected)


# Features matched above, which the report must no longer list as unmeasured (for full training;
# with LoRA too for the families measured with LoRA).
LORA_MEASURED = sorted({c["family"] for c in CASES if c["lora"]})
MATCHED = [
    ("qwen3", "q/k norms"),
    ("olmo2", "q/k norms"),
    ("olmo2", "norms after the attention and MLP"),
    ("olmo2", "norms after the attention and MLP instead of before"),
    ("gemma2", "four norms per layer"),
    ("gemma2", "logit soft-capping"),
    ("gemma2", "sliding and full layers mixed"),
    ("gemma3_text", "four norms per layer"),
    ("gemma3_text", "q/k norms"),
    ("gemma3_text", "sliding and full layers mixed"),
    ("qwen2_moe", "the shared expert and its gate"),
    ("qwen3_moe", "q/k norms"),
    ("deepseek_v3", "multi-head latent attention"),
    ("deepseek_v3", "dense layers before the MoE layers"),
    ("deepseek_v3", "shared experts"),
    ("cohere", "parallel attention and MLP"),
    ("cohere", "LayerNorm (weight only)"),
    ("cohere", "logit scale"),
    ("falcon", "parallel attention and MLP"),
    ("falcon", "multi-query attention"),
    ("falcon", "rotary or ALiBi attention"),
    ("gpt_neox", "parallel attention and MLP"),
    ("gpt_neox", "partial rotary"),
    ("qwen3_next", "gated-DeltaNet layers (their activations counted as the Llama block's)"),
    ("qwen3_next", "gated attention"),
    ("qwen3_next", "q/k norms"),
    ("qwen3_next", "the shared expert and its gate"),
    ("qwen3_next", "linear and full attention layers mixed"),
]


WITH_LORA = [(f, x + " with LoRA") for f, x in MATCHED if f in LORA_MEASURED]


@pytest.mark.parametrize("family, feature", MATCHED + WITH_LORA, ids=[f"{f}-{x}" for f, x in MATCHED + WITH_LORA])
def test_a_matched_feature_is_no_longer_reported_unmeasured(family, feature):
    case = next(c for c in CASES if c["family"] == family)
    assert feature not in bind(case)["unmeasured"].values


# --- training peaks (tests/data/measured/peaks.json "family_cases") -------------------------
# engine/lab/peaks.py's instrument (live tensor bytes, op by op) over two steps of plain
# torch.optim.AdamW (foreach) of each family's base shape, bf16, with and without checkpointing.
PEAKS = json.loads((DATA / "measured" / "peaks.json").read_text())
PEAK_CASES = [c for c in PEAKS["family_cases"] if family_activation_comparable(c) and not c["lora"]]
PEAK_IDS = [f"{c['family']}-{c['attn']}-{c['mode']}" for c in PEAK_CASES]
LORA_PEAKS = [c for c in PEAKS["family_cases"] if c["lora"]]
LORA_PEAK_IDS = [f"{c['family']}-{c['attn']}-{c['mode']}-lora" for c in LORA_PEAKS]


def bind_cpu(c):
    """A training case as measured: on the CPU, which holds torch.optim's fp32 `step` counters (on
    a GPU they stay on the host unless the optimizer is fused): peaks.formula's device = cpu."""
    return evaluate_once(c["config"], *family_activation_sets(c), "device=cpu")


def fp32_router(c, phase):
    """DeepSeek-V3 keeps its router weights in fp32 (_keep_in_fp32_modules_strict): 2 bytes more
    each than bf16 in the weights, the two AdamW moments, the gradients and the foreach step's
    temporary. Now modelled (training.formula router_fp32_*, peaks.formula's step; measured:
    tests/data/measured/router_training.json): nothing is added here."""
    return 0


@pytest.mark.parametrize("case", PEAK_CASES, ids=PEAK_IDS)
def test_the_optimizer_step_to_the_byte(case):
    r = bind_cpu(case)
    predicted = r["training_at_optimizer_step"] + fp32_router(case, "step")
    assert predicted == case["phase_peaks"]["step_2"]


@pytest.mark.parametrize("case", PEAK_CASES, ids=PEAK_IDS)
def test_the_end_of_the_backward_to_the_byte(case):
    r = bind_cpu(case)
    predicted = r["training_at_backward_end"] + fp32_router(case, "end")
    assert predicted == case["segments"]["backward_2"]["embed"]["peak"]


@pytest.mark.parametrize("case", PEAK_CASES, ids=PEAK_IDS)
def test_the_start_of_the_backward_to_the_byte(case):
    """All stored activations and the loss's two fp32 b·s·V gradients (V ≥ 2h here: the
    loss's backward is the head's largest point)."""
    assert case["V"] >= 2 * case["h"]
    r = bind_cpu(case)
    predicted = r["training_at_backward_start"] + fp32_router(case, "start")
    assert predicted == case["segments"]["backward_2"]["head"]["peak"]


@pytest.mark.parametrize("case", PEAK_CASES, ids=PEAK_IDS)
def test_the_training_peak_within_its_bound(case):
    """The layers' backward points are bounds (tests/test_measured_peaks.py: +8 %), every other
    phase point exact: never under."""
    r = bind_cpu(case)
    predicted = r["peak_allocated_training"] + fp32_router(case, "step")
    assert 0 <= (predicted - case["peak_bytes"]) / case["peak_bytes"] <= 0.08


def test_a_measured_family_reports_nothing_unmeasured(cli):
    """Qwen3's q/k norms are measured (full training and LoRA): its report has no such line."""
    status, out, _ = cli(DATA / "hf_configs" / "qwen3-8b.json")
    assert status == 0 and "not measured for this block" not in out


# LoRA (peft, r = 8 on q and v, fp32 adapters, AdamW on the adapters) on the frozen bf16 models.
@pytest.mark.parametrize("case", LORA_PEAKS, ids=LORA_PEAK_IDS)
def test_with_lora_the_start_of_the_backward_to_the_byte(case):
    r = bind_cpu(case)
    assert r["lora_at_backward_start"] == case["segments"]["backward_2"]["head"]["peak"]


@pytest.mark.parametrize("case", LORA_PEAKS, ids=LORA_PEAK_IDS)
def test_with_lora_the_adapters_step_to_the_byte(case):
    r = bind_cpu(case)
    assert r["lora_at_optimizer_step"] == case["phase_peaks"]["step_2"]


def _bound_only(case):
    """Where the top layer's point is a bound: frozen experts (their input gradients are not
    the dense MLP's 3·b·s·f), a mix of sliding and full layers (it counts the larger kind)."""
    return case["family"] in ("qwen2_moe", "qwen3_moe") or case["family"] == "gemma3_text" and case["attn"] == "sdpa"


CKPT_LORA = [c for c in LORA_PEAKS if c["mode"] == "train_ckpt"]


@pytest.mark.parametrize("case", CKPT_LORA, ids=[f"{c['family']}-{c['attn']}" for c in CKPT_LORA])
def test_with_lora_and_checkpointing_the_top_layer(case):
    """Its recomputation and backward: to the byte — with a norm on the MLP's output (OLMo-2,
    Gemma) at that norm's backward — and a bound (within 2 %) where _bound_only says."""
    r = bind_cpu(case)
    predicted = r["lora_at_top_layer"]
    measured = case["segments"]["backward_2"][f"layer{case['L'] - 1}"]["peak"]
    if _bound_only(case):
        assert 0 <= (predicted - measured) / measured <= 0.02
    else:
        assert predicted == measured


@pytest.mark.parametrize("case", LORA_PEAKS, ids=LORA_PEAK_IDS)
def test_with_lora_the_peak(case):
    r = bind_cpu(case)
    predicted, measured = r["peak_allocated_lora"], case["peak_bytes"]
    if _bound_only(case) and case["mode"] == "train_ckpt":
        assert 0 <= (predicted - measured) / measured <= 0.02
    else:
        assert predicted == measured
