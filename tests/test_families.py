"""Every model family read from its published config.json, against measurement
(tests/data/measured/families.json, made by `python -m vram_eval.lab.families`):

* the parameter count of the transformers model built on the meta device, exactly;
* the KV cache after a real prefill, and after two decode steps, of a shrunken copy of the
  config that keeps everything the cache depends on (layers and their kinds, KV heads, head
  dims, the sliding window — shrunk below the sequence so that it matters), exactly.
"""

import json

import pytest

from conftest import DATA, ROOT, evaluate, evaluate_once, load_toml, value
from vram_eval.lab.families import apply_changes, shrunken_config

MEASURED = json.loads((DATA / "measured" / "families.json").read_text())
CASES = MEASURED["cases"]
WITH_KV = {name: case for name, case in CASES.items() if case.get("kv", {}).get("decode")}


def test_every_config_in_the_data_was_measured():
    configs = {p.stem for p in (DATA / "hf_configs").glob("*.json")}
    assert configs <= set(CASES), sorted(configs - set(CASES))


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_parameter_count_is_the_meta_device_models(name):
    case = CASES[name]
    result = evaluate_once(ROOT / case["file"])  # asked by three tests and docs/ACCURACY.md's table
    assert value(result, "params") == case["params"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_count_without_the_lm_head_is_the_meta_device_models(name):
    case = CASES[name]
    result = evaluate_once(ROOT / case["file"])
    assert value(result, "params") - value(result, "lm_head_params") == case["params_without_lm_head"]


def _shrunken(case):
    """The shrunken copy of the case's config.json (read as a config.json by evaluate_once: the
    same point as docs/ACCURACY.md's table, worked out once)."""
    return shrunken_config(json.loads((ROOT / case["file"]).read_text()), case["kv"])


@pytest.mark.parametrize("name", sorted(WITH_KV))
def test_the_kv_cache_after_decoding_is_what_the_cache_holds(name):
    kv = WITH_KV[name]["kv"]
    tokens = kv["s"] + kv["decode_steps"]
    result = evaluate_once(_shrunken(WITH_KV[name]), f"b={kv['b']}", f"s={tokens}", "kv_dtype=bf16")
    assert value(result, "kv_cache") == kv["decode"]["kv_bytes"]


@pytest.mark.parametrize("name", sorted(WITH_KV))
def test_the_kv_cache_after_the_prefill_is_what_the_cache_holds(name):
    kv = WITH_KV[name]["kv"]
    result = evaluate_once(_shrunken(WITH_KV[name]), f"b={kv['b']}", f"s={kv['s']}", "kv_dtype=bf16")
    assert value(result, "kv_cache_prompt") == kv["prefill"]["kv_bytes"]


def test_gemma2_slides_every_other_layer_not_every_layer():
    """Gemma-2-9B at 8k in bf16: 21 full layers of 8,192 tokens and 21 sliding ones of 4,096
    (read as `gemma` with every layer sliding it was 1,409,286,144: 33 % too small)."""
    result = evaluate(DATA / "hf_configs" / "gemma-2-9b.json", "s=8192", "inference_dtype=bf16")
    assert value(result, "kv_cache") == (21 * 8192 + 21 * 4096) * 2 * 8 * 256 * 2


def test_a_layer_types_list_is_counted(tmp_path):
    config = json.loads((DATA / "hf_configs" / "gemma-3-1b-it.json").read_text())
    config["layer_types"] = ["sliding_attention"] * 20 + ["full_attention"] * 6
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert value(evaluate(path), "sliding_layers") == 20


# A config.json that contradicts itself: a located error, never a number.
CONTRADICTIONS = [
    ("layer_types of the wrong length", {"layer_types": ["full_attention"] * 3},
     "layer_types list must have one entry per layer"),
    ("a layer kind not modelled", {"layer_types": ["linear_attention"] * 26}, "does not model"),
    ("heads not dividing", {"num_key_value_heads": 3}, "kv_heads must divide a"),
    ("more experts per token than experts", {"num_local_experts": 2, "num_experts_per_tok": 4},
     "experts_per_token <= experts"),
]


@pytest.mark.parametrize("case,change,phrase", CONTRADICTIONS, ids=[c[0] for c in CONTRADICTIONS])
def test_a_contradicting_config_is_a_located_error(cli, tmp_path, case, change, phrase):
    config = json.loads((DATA / "hf_configs" / "gemma-3-1b-it.json").read_text())
    config.update(change)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config, indent=2) + "\n")
    status, _, err = cli(path)
    assert status == 2
    assert err.startswith(f"{path}:") and phrase in err


def test_a_config_json_runs_at_the_default_context_and_says_so(cli):
    status, out, _ = cli(DATA / "hf_configs" / "qwen3-8b.json")
    assert status == 0
    assert "s 4,096 (a config.json's default; --set s=N for another)" in out


def test_a_family_not_measured_says_what_is_not(cli):
    status, out, _ = cli(DATA / "hf_configs" / "granite-3.3-8b-instruct.json")
    assert status == 0 and "not measured for this block: embedding, residual, attention and logit multipliers" in out


def test_the_kv_cache_follows_the_inference_dtype_of_an_fp32_checkpoint():
    result = evaluate(DATA / "hf_configs" / "olmo-2-1124-13b.json", "inference_dtype=bf16")
    assert str(result["kv_dtype"]) == '"bf16"'


SHAPES = load_toml(DATA / "family_shapes.toml")


def _shape(name, **changes):
    """A constructed config (its `nulls` as JSON null), for evaluate_once to read as a config.json
    (the same points as docs/ACCURACY.md's table, worked out once)."""
    config = apply_changes(SHAPES[name]["config"], changes)  # text_config.hidden_size: inside its sub-config
    config.update({key: None for key in SHAPES[name].get("nulls", [])})
    return config


def _shape_config(name, tmp_path, **changes):
    """A constructed config written as a config.json."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_shape(name, **changes), indent=2) + "\n")
    return path


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_a_constructed_config_counts_as_the_meta_device_model(name):
    assert value(evaluate_once(_shape(name)), "params") == SHAPES[name]["params"]


@pytest.mark.parametrize("change,phrase", [
    ({"mlp_only_layers": [0]}, "mlp_only_layers (dense MLP layers in a MoE model) is not modelled yet"),
    ({"decoder_sparse_step": 2}, "decoder_sparse_step > 1"),
], ids=["mlp_only_layers", "decoder_sparse_step"])
def test_a_moe_config_with_dense_layers_is_refused_not_miscounted(cli, tmp_path, change, phrase):
    path = _shape_config("qwen3-moe", tmp_path, **change)
    status, _, err = cli(path)
    assert status == 2 and err.startswith(f"{path}:") and phrase in err


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c.get("active_params")))
def test_active_parameters_per_token_are_the_measured_ones(name):
    assert value(evaluate_once(ROOT / CASES[name]["file"]), "active_params") == CASES[name]["active_params"]


@pytest.mark.parametrize("name", sorted(n for n, c in SHAPES.items() if "kv" in c))
def test_a_constructed_configs_kv_cache_is_what_the_cache_holds(name):
    kv = SHAPES[name]["kv"]
    config = _shape(name, **kv["changes"])
    prefill = evaluate_once(config, f"b={kv['b']}", f"s={kv['prefill_tokens']}", "kv_dtype=bf16")
    decode = evaluate_once(config, f"b={kv['b']}", f"s={kv['decode_tokens']}", "kv_dtype=bf16")
    assert value(prefill, "kv_cache_prompt") == kv["prefill_bytes"]
    assert value(decode, "kv_cache") == kv["decode_bytes"]


@pytest.mark.parametrize("name", sorted(n for n, c in SHAPES.items() if "active_params" in c))
def test_a_constructed_configs_active_parameters(name):
    assert value(evaluate_once(_shape(name)), "active_params") == SHAPES[name]["active_params"]


def test_latent_attention_caches_its_latent_or_on_request_every_head(tmp_path):
    """transformers 5.24, vLLM and SGLang cache kv_lora_rank + qk_rope_head_dim per token and
    layer; mla_cache=expanded counts keys (qk_nope + qk_rope) and values (v_head_dim) per head."""
    path = _shape_config("deepseek-v3", tmp_path)
    latent = evaluate(path, "b=1", "s=10", "kv_dtype=bf16")
    expanded = evaluate(path, "b=1", "s=10", "kv_dtype=bf16", "mla_cache=expanded")
    assert value(latent, "kv_cache") == 4 * 10 * (32 + 16) * 2
    assert value(expanded, "kv_cache") == 4 * 10 * 8 * ((24 + 16) + 40) * 2
