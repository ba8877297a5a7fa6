"""Recurrent state and hybrid layer stacks: Mamba, Falcon-Mamba, Mamba-2, Jamba, Qwen3-Next.

* A Mamba or gated-DeltaNet layer keeps a fixed-size state per sequence, its conv state and its
  recurrent (SSM) state: `recurrent_conv_state` and `recurrent_ssm_state`, per GPU, in bytes,
  equal to what transformers 5.24's cache holds after a real prefill and two decode steps
  (tests/data/family_shapes.toml `state`, tests/data/measured/families.json `layer_groups`).
* Only attention layers have a KV cache; the counts of each layer kind come from the config's
  periods and offsets (Jamba) or its layer_types (Qwen3-Next).
* A config.json that contradicts itself is a located error, never a number.
"""

import json

import pytest

from conftest import DATA, ROOT, evaluate, load_toml, value
from vram_eval.lab.families import shrunken_config, state_bytes

SHAPES = load_toml(DATA / "family_shapes.toml")
WITH_STATE = {name: shape for name, shape in SHAPES.items() if "state" in shape}
MEASURED = json.loads((DATA / "measured" / "families.json").read_text())["cases"]


def _config(tmp_path, config, **changes):
    config = dict(config, **changes)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


PUBLISHED = {name: case for name, case in MEASURED.items()
             if case.get("kv", {}).get("decode") and any(state_bytes(case["kv"]))}


def test_the_published_recurrent_configs_were_measured():
    assert {"mamba-130m-hf", "falcon-mamba-7b", "ai21-jamba-1.5-mini"} <= set(PUBLISHED)


@pytest.mark.parametrize("name", sorted(WITH_STATE))
def test_a_constructed_configs_recurrent_state_is_what_the_cache_holds(name, tmp_path):
    shape = WITH_STATE[name]
    kv = shape["kv"]
    path = _config(tmp_path, shape["config"], **kv["changes"])
    result = evaluate(path, f"b={kv['b']}", f"s={kv['decode_tokens']}", "weight_dtype=bf16")
    assert value(result, "recurrent_conv_state") == shape["state"]["conv_bytes"]
    assert value(result, "recurrent_ssm_state") == shape["state"]["ssm_bytes"]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_a_published_configs_recurrent_state_is_what_the_cache_holds(name, tmp_path):
    case = PUBLISHED[name]
    kv = case["kv"]
    path = _config(tmp_path, shrunken_config(json.loads((ROOT / case["file"]).read_text()), kv))
    result = evaluate(path, f"b={kv['b']}", f"s={kv['s'] + kv['decode_steps']}", "weight_dtype=bf16")
    assert (value(result, "recurrent_conv_state"), value(result, "recurrent_ssm_state")) == state_bytes(kv)


@pytest.mark.parametrize("name", sorted(WITH_STATE))
def test_the_recurrent_state_does_not_grow_with_the_context(name, tmp_path):
    path = _config(tmp_path, WITH_STATE[name]["config"])
    short, long = (value(evaluate(path, f"s={s}"), "recurrent_state") for s in (16, 65536))
    assert short == long > 0


def test_a_transformer_has_no_recurrent_state():
    assert value(evaluate(DATA / "hf_configs" / "llama-3-8b.json"), "recurrent_state") == 0


# Falcon-Mamba-7B (64 Mamba layers, d = 8192, N = 16, conv_kernel 4), b = 1, one GPU.
FALCON_MAMBA = DATA / "hf_configs" / "falcon-mamba-7b.json"
FALCON_CONV = 64 * 8192 * 4 * 2            # bf16, as the model
FALCON_SSM_FP32 = 64 * 8192 * 16 * 4


def test_the_ssm_state_is_fp32_unless_state_dtype_says_otherwise():
    assert value(evaluate(FALCON_MAMBA), "recurrent_ssm_state") == FALCON_SSM_FP32
    assert value(evaluate(FALCON_MAMBA, "state_dtype=bf16"), "recurrent_ssm_state") == FALCON_SSM_FP32 // 2


def test_the_conv_state_follows_the_inference_dtype():
    assert value(evaluate(FALCON_MAMBA), "recurrent_conv_state") == FALCON_CONV
    assert value(evaluate(FALCON_MAMBA, "inference_dtype=fp32"), "recurrent_conv_state") == 2 * FALCON_CONV


@pytest.mark.parametrize("setting,divisor", [("tp=2", 2), ("tp=8", 8), ("pp=4", 4), ("b=3", 1 / 3)])
def test_the_state_is_split_across_ranks_and_grows_with_the_batch(setting, divisor):
    assert value(evaluate(FALCON_MAMBA, setting), "recurrent_state") * divisor == FALCON_CONV + FALCON_SSM_FP32


JAMBA = DATA / "hf_configs" / "ai21-jamba-1.5-mini.json"
JAMBA_SSM_FP32 = 28 * 8192 * 16 * 4       # 28 Mamba layers, d = 2 · 4096, N = 16


@pytest.mark.parametrize("spec,ssm,output", [
    (FALCON_MAMBA, FALCON_SSM_FP32, "allocated_inference"),
    (JAMBA, JAMBA_SSM_FP32, "allocated_inference"),
    (JAMBA, JAMBA_SSM_FP32, "inference_at_prefill"),
    (JAMBA, JAMBA_SSM_FP32, "inference_at_decode"),
], ids=["falcon-mamba total", "jamba total", "jamba prefill peak", "jamba decode peak"])
def test_the_recurrent_state_is_held_in_inference(spec, ssm, output):
    fp32, bf16 = (evaluate(spec, "b=4", f"state_dtype={d}") for d in ("fp32", "bf16"))
    assert value(fp32, output) - value(bf16, output) == 4 * ssm // 2


@pytest.mark.parametrize("spec,rows", [
    (FALCON_MAMBA, {"recurrent state"}),
    (JAMBA, {"recurrent state", "KV cache"}),
    (DATA / "hf_configs" / "llama-3-8b.json", {"KV cache"}),
], ids=["mamba", "jamba", "llama"])
def test_the_report_has_a_recurrent_state_row_only_where_there_is_one(cli, spec, rows):
    status, out, _ = cli(spec)
    shown = {line[2:].split("   ")[0].strip() for line in out.splitlines() if line.startswith("  ")}
    assert status == 0 and shown & {"recurrent state", "KV cache"} == rows


def test_a_pure_mamba_stack_does_not_guess_its_activations(cli):
    status, out, _ = cli(FALCON_MAMBA)
    assert status == 0
    assert "not measured for this block: Mamba mixers — parameters, KV cache and recurrent state are exact; " \
        "activations and peaks not computed" in out
    assert "needs a, f" in out


# --- layer kinds ---------------------------------------------------------------------------


@pytest.mark.parametrize("output,count", [
    ("attention_layers", 4),       # layers 4, 12, 20, 28: i % 8 == 4
    ("mamba_layers", 28),
    ("moe_layers", 16),            # the odd layers: i % 2 == 1
    ("dense_layers", 16),
    ("linear_attention_layers", 0),
])
def test_jamba_interleaves_attention_and_mamba_and_moe_by_period_and_offset(output, count):
    assert value(evaluate(JAMBA), output) == count


def test_only_the_attention_layers_have_a_kv_cache():
    """Jamba-1.5-Mini at 8k in bf16: 4 attention layers of 8 KV heads of 128."""
    assert value(evaluate(JAMBA, "s=8192"), "kv_cache") == 4 * 8192 * 2 * 8 * 128 * 2



def test_lora_adapts_only_the_layers_that_have_the_targeted_matrices():
    """PEFT's q_proj and v_proj exist in Jamba-1.5-Mini's 4 attention layers only (r = 8)."""
    assert value(evaluate(JAMBA), "lora_params") == 4 * 8 * ((4096 + 32 * 128) + (4096 + 8 * 128))


QWEN3_NEXT = SHAPES["qwen3-next"]["config"]


@pytest.mark.parametrize("layer_types,linear,full", [
    (["linear_attention"] * 3 + ["full_attention"], 3, 1),
    (["full_attention"] + ["linear_attention"] * 3, 3, 1),
    (["full_attention"] * 4, 0, 4),
])
def test_qwen3_next_counts_its_layer_types(tmp_path, layer_types, linear, full):
    result = evaluate(_config(tmp_path, QWEN3_NEXT, layer_types=layer_types))
    assert (value(result, "linear_attention_layers"), value(result, "attention_layers")) == (linear, full)


@pytest.mark.parametrize("indices,attention", [([1, 3], 2), ([0], 1), ([], 0)])
def test_bamba_attends_in_the_layers_its_attn_layer_indices_name(tmp_path, indices, attention):
    result = evaluate(_config(tmp_path, SHAPES["bamba"]["config"], attn_layer_indices=indices))
    assert (value(result, "attention_layers"), value(result, "mamba_layers")) == (attention, 4 - attention)


GRANITE = SHAPES["granite-hybrid"]["config"]


@pytest.mark.parametrize("layer_types,attention", [
    (["mamba", "attention", "mamba", "attention"], 2),            # the published configs' (legacy) names
    (["linear_attention", "full_attention", "linear_attention", "linear_attention"], 1),   # transformers 5.24's
    (None, 0),                                                    # none listed: every layer is Mamba-2
])
def test_granite_hybrid_layers_are_mamba_2_where_layer_types_says_so(tmp_path, layer_types, attention):
    result = evaluate(_config(tmp_path, GRANITE, layer_types=layer_types))
    assert (value(result, "attention_layers"), value(result, "mamba_layers"), value(result, "gdn_layers")) \
        == (attention, 4 - attention, 0)


def test_without_layer_types_qwen3_next_has_one_full_attention_layer_in_each_interval(tmp_path):
    """full_attention_interval 2 over 4 layers: layers 1 and 3 attend (Qwen3NextConfig.layer_types)."""
    result = evaluate(_config(tmp_path, SHAPES["qwen3-next-interval"]["config"]))
    assert (value(result, "attention_layers"), value(result, "linear_attention_layers")) == (2, 2)


def test_qwen3_next_80b_caches_keys_and_values_in_12_of_its_48_layers(tmp_path):
    result = evaluate(_config(tmp_path, SHAPES["qwen3-next-80b-shape"]["config"]), "s=4096", "kv_dtype=bf16")
    assert (value(result, "attention_layers"), value(result, "linear_attention_layers")) == (12, 36)
    assert value(result, "kv_cache") == 12 * 4096 * 2 * 2 * 256 * 2   # 2 KV heads of 256


# --- a config.json that contradicts itself ---------------------------------------------------
JAMBA_SHAPE = SHAPES["jamba"]["config"]
MAMBA2_SHAPE = SHAPES["mamba2"]["config"]
CONTRADICTIONS = [
    ("attention offset past its period", JAMBA_SHAPE, {"attn_layer_offset": 2},
     "attn_layer_offset must be a whole number below attn_layer_period"),
    ("expert offset past its period", JAMBA_SHAPE, {"expert_layer_offset": 3},
     "expert_layer_offset must be a whole number below expert_layer_period"),
    ("a layer kind no block has", QWEN3_NEXT, {"layer_types": ["rwkv"] * 4}, "does not model"),
    ("layer_types of the wrong length", QWEN3_NEXT, {"layer_types": ["linear_attention"] * 3},
     "layer_types list must have one entry per layer"),
    ("key heads not dividing value heads", QWEN3_NEXT, {"linear_num_key_heads": 3},
     "linear_num_key_heads must divide linear_num_value_heads"),
    ("Mamba-2 heads not matching the inner width", MAMBA2_SHAPE, {"num_heads": 6},
     "num_heads · head_dim must equal expand · hidden_size"),
    ("Mamba-2 groups not dividing the heads", MAMBA2_SHAPE, {"n_groups": 3},
     "n_groups divide num_heads"),
    ("a state size of zero", SHAPES["mamba"]["config"], {"state_size": 0}, "a Mamba mixer needs a positive"),
    ("a time_step_rank that is neither a number nor auto", SHAPES["mamba"]["config"], {"time_step_rank": "full"},
     "time_step_rank"),
    ("a Granite hybrid without routed experts", GRANITE, {"num_local_experts": 0},
     "a model without routed experts (GraniteMoeHybrid's num_local_experts = 0"),
    ("an attention layer index repeated", SHAPES["bamba"]["config"], {"attn_layer_indices": [1, 1]},
     "must list distinct layer indices"),
    ("an attention layer index past the last layer", SHAPES["bamba"]["config"], {"attn_layer_indices": [1, 4]},
     "must list distinct layer indices"),
]


@pytest.mark.parametrize("case,config,change,phrase", CONTRADICTIONS, ids=[c[0] for c in CONTRADICTIONS])
def test_a_contradicting_config_is_a_located_error(cli, tmp_path, case, config, change, phrase):
    path = _config(tmp_path, config, **change)
    status, _, err = cli(path)
    assert status == 2
    assert err.startswith(f"{path}:") and phrase in err
    assert "Traceback" not in err


TP_REFUSED = [
    ("Mamba-1: tp not dividing the inner width", FALCON_MAMBA, "tp=3", "tp must divide Mamba's inner width"),
    ("Mamba-2: tp not dividing the heads", "mamba2", "tp=3", "tp must divide Mamba's inner width"),
    ("gated DeltaNet: tp not dividing the key heads", "qwen3-next", "tp=4", "tp must divide linear_num_key_heads"),
]


@pytest.mark.parametrize("case,spec,setting,phrase", TP_REFUSED, ids=[c[0] for c in TP_REFUSED])
def test_a_tensor_parallel_split_that_does_not_divide_the_state_is_refused(cli, tmp_path, case, spec, setting, phrase):
    path = spec if not isinstance(spec, str) else _config(tmp_path, SHAPES[spec]["config"])
    status, _, err = cli(path, "--set", setting)
    assert status == 2 and phrase in err and "Traceback" not in err
