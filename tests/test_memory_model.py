"""The built-in memory model against published and public numbers (tests/data/, each with its source)."""

import json
from fractions import Fraction

import pytest

from conftest import DATA, SPECS, evaluate, load_toml, value

GB, GiB = 10**9, 2**30

PARAM_COUNTS = load_toml(DATA / "param_counts.toml")


# --- parameter counts -----------------------------------------------------
@pytest.mark.parametrize("spec", sorted(PARAM_COUNTS), ids=sorted(PARAM_COUNTS))
def test_parameter_count_of_every_spec(spec):
    """Public counts (model cards, safetensors metadata, papers): tests/data/param_counts.toml."""
    assert value(evaluate(SPECS / f"{spec}.toml"), "params") == PARAM_COUNTS[spec]["params"]


def test_the_three_anchors_of_the_issue():
    assert value(evaluate(SPECS / "llama13b.toml"), "params") == 13_015_864_320
    assert value(evaluate(SPECS / "llama2-7b.toml"), "params") == 6_738_415_616
    assert value(evaluate(SPECS / "mistral-7b.toml"), "params") == 7_241_732_096


MEASURED_COUNTS = json.loads((DATA / "measured" / "param_counts.json").read_text())


def _measured_cases():
    models = MEASURED_COUNTS.get("models", MEASURED_COUNTS)
    return list(models.items()) if isinstance(models, dict) else [(m["name"], m) for m in models]


@pytest.mark.parametrize("name, case", _measured_cases(), ids=[n for n, _ in _measured_cases()])
def test_parameter_count_matches_pytorch_on_the_meta_device(name, case, tmp_path):
    """torch 2.13 + transformers built each config on the meta device and summed p.numel(); the
    config is read as a user's config.json is, by the engine's own reader."""
    config = dict(case["config"], model_type=case.get("model_type") or case["config"].get("model_type", "llama"))
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert value(evaluate(path), "params") == case["num_params"]


@pytest.mark.parametrize("config, spec", [
    ("gpt2.json", "gpt2"), ("llama-2-7b.json", "llama2-7b"), ("llama-3-8b.json", "llama3-8b"),
    ("mistral-7b-v0.1.json", "mistral-7b"), ("mixtral-8x7b-v0.1.json", "mixtral-8x7b"),
    ("qwen2-7b.json", "qwen2-7b"), ("opt-13b.json", "opt-13b"),
])
def test_a_hugging_face_config_json_is_a_spec(config, spec):
    assert value(evaluate(DATA / "hf_configs" / config), "params") == PARAM_COUNTS[spec]["params"]


def test_moe_active_parameters_mixtral():
    """Mixtral paper §1: 47B total, 13B active per token."""
    result = evaluate(SPECS / "mixtral-8x7b.toml")
    assert value(result, "active_params") == 12_879_925_248
    assert round(value(result, "active_params") / 1e9) == 13


# --- ZeRO (Rajbhandari et al. 2020) ---------------------------------------
ZERO = load_toml(DATA / "references" / "zero.toml")


@pytest.mark.parametrize("stage", ZERO["figure1"]["stages"], ids=[s["name"] for s in ZERO["figure1"]["stages"]])
def test_zero_figure_1(stage):
    fig = ZERO["figure1"]
    result = evaluate(None, f"params={fig['psi']}", f"dp={fig['nd']}", f"zero_stage={stage.get('zero_stage', 0)}",
                      "weight_dtype=fp16")
    assert value(result, "model_states") == stage["bytes"]
    assert round(value(result, "model_states") / GB, 1) == float(stage["printed"].split()[0])


def _table1_cells():
    for row in ZERO["table1"]["rows"]:
        for stage, key in ((1, "os"), (2, "os_g"), (3, "os_g_p")):
            if f"bytes_{key}" in row:
                yield row["model"], row["nd"], stage, row[f"bytes_{key}"]


@pytest.mark.parametrize("model, nd, stage, expected", list(_table1_cells()))
def test_zero_table_1(model, nd, stage, expected):
    psi = dict(zip(ZERO["table1"]["models"], ZERO["table1"]["psi"]))[model]
    result = evaluate(None, f"params={psi}", f"dp={nd}", f"zero_stage={stage}", "weight_dtype=fp16")
    assert Fraction(str(result["model_states"])) == Fraction(str(expected))


def test_zero_never_divides_activations():
    base = evaluate(SPECS / "llama13b.toml")
    sharded = evaluate(SPECS / "llama13b.toml", "dp=64", "zero_stage=3")
    assert base["activations"] == sharded["activations"]
    assert sharded["weights"] * 64 == base["weights"]


# --- Korthikanti et al. 2022 ----------------------------------------------
KORTHIKANTI = load_toml(DATA / "references" / "korthikanti2022.toml")
ROW_SETTINGS = {
    "no_parallelism": dict(tp=1, sp=False, recompute="none"),
    "tp": dict(tp=8, sp=False, recompute="none"),
    "tp_sp": dict(tp=8, sp=True, recompute="none"),
    "tp_selective": dict(tp=8, sp=False, recompute="selective"),
    "tp_sp_selective": dict(tp=8, sp=True, recompute="selective"),
    "full_recompute": dict(tp=8, sp=True, recompute="full"),
}
SHAPES = [dict(s=2048, b=1, h=6144, a=64), dict(s=2048, b=4, h=12288, a=96), dict(s=4096, b=2, h=20480, a=128)]


def gpt_korthikanti(shape, tp, sp, recompute, *more):
    return evaluate(None, "arch=gpt", "activation_model=korthikanti", "weight_dtype=fp16", "flash_attention=false",
                    f"s={shape['s']}", f"b={shape['b']}", f"h={shape['h']}", f"a={shape['a']}", "L=48", "V=51200",
                    "s_max=2048", f"tp={tp}", f"sequence_parallel={'true' if sp else 'false'}",
                    f"recompute={recompute}", *more)


@pytest.mark.parametrize("row", KORTHIKANTI["table2"], ids=[r["name"] for r in KORTHIKANTI["table2"]])
@pytest.mark.parametrize("shape", SHAPES, ids=["22B", "175B", "530B"])
def test_korthikanti_table_2_every_row(row, shape):
    settings = ROW_SETTINGS[row["name"]]
    t, s, b, h, a = settings["tp"], shape["s"], shape["b"], shape["h"], shape["a"]
    expected = (Fraction(s * b * h) * (row["linear_const"] + Fraction(row["linear_over_t"], t))
                + Fraction(a * s * s * b) * (row["quadratic_const"] + Fraction(row["quadratic_over_t"], t)))
    result = gpt_korthikanti(shape, **settings)
    assert Fraction(str(result["activations_per_layer"])) == expected


def test_korthikanti_equation_1_is_the_seeds_formula():
    """sbh(34 + 5as/h) per layer, times L: the seed's activation formula."""
    shape = dict(s=1024, b=1, h=5120, a=40)
    result = gpt_korthikanti(shape, 1, False, "none")
    assert result["activations_per_layer"] * 48 == 1024 * 1 * 5120 * (34 + Fraction(5 * 40 * 1024, 5120)) * 48


@pytest.mark.parametrize("model", KORTHIKANTI["table3"], ids=[m["model"] for m in KORTHIKANTI["table3"]])
def test_korthikanti_table_3_first_stage_totals(model):
    """Eq. (5) (TP + SP, 1F1B) plus the §4.3 terms, for the Table 3 configurations."""
    s, b, h, a, L = (model["sequence_length"], model["micro_batch_size"], model["hidden_size"],
                     model["attention_heads"], model["layers"])
    t, p, v = model["tensor_parallel_size"], model["pipeline_parallel_size"], KORTHIKANTI["evaluation_setup"]["vocab_size"]
    result = evaluate(None, "arch=gpt", "activation_model=korthikanti", "weight_dtype=fp16", "flash_attention=false",
                      f"s={s}", f"b={b}", f"h={h}", f"a={a}", f"L={L}", f"V={v}", "s_max=2048", f"tp={t}", f"pp={p}",
                      "sequence_parallel=true")
    eq5 = Fraction(s * b * h * L, t) * (34 + Fraction(5 * a * s, h))
    extra = Fraction(s * b * h * p, t) + (Fraction(4 * s * b * h, t) + Fraction(4 * s * b * v, t) if p == 1 else 0)
    assert Fraction(str(result["activations"])) == eq5 + extra


def test_flash_attention_drops_the_s_squared_term():
    shape = dict(s=2048, b=1, h=5120, a=40)
    eager = gpt_korthikanti(shape, 1, False, "none")
    fused = gpt_korthikanti(shape, 1, False, "none", "flash_attention=true")
    # 34·sbh plus the fp32 log-sum-exp of each attention row (4·b·a·s bytes)
    assert fused["activations_per_layer"] == 34 * 2048 * 5120 + 4 * 40 * 2048
    assert eager["activations_per_layer"] - fused["activations_per_layer"] == 5 * 40 * 2048**2 - 4 * 40 * 2048


def test_doubling_s_multiplies_gpt_activations_by_3_40_not_4():
    """Seed §6 says s×2 → ×4; for LLaMA-13B's shape at s = 2048 the GPT formula gives 3.40."""
    base = ("arch=gpt",)
    at = evaluate(SPECS / "llama13b.toml", *base, "s=2048")["activations_per_layer"]
    doubled = evaluate(SPECS / "llama13b.toml", *base, "s=4096")["activations_per_layer"]
    assert round(float(doubled / at), 2) == 3.40


# --- inference ------------------------------------------------------------
PAGED = load_toml(DATA / "references" / "pagedattention.toml")


@pytest.mark.parametrize("spec, expected", [
    ("opt-13b", PAGED["opt13b_kv_per_token"]["bytes"]),  # PagedAttention §3: 800 KB
    ("llama13b", 819_200),
    ("llama2-70b", 327_680),  # GQA: 8 KV heads
])
def test_kv_cache_per_token(spec, expected):
    assert value(evaluate(SPECS / f"{spec}.toml", "kv_dtype=fp16"), "kv_cache_per_token") == expected


def test_kv_cache_of_one_opt_request():
    result = evaluate(SPECS / "opt-13b.toml", "b=1", "s=2048")
    assert value(result, "kv_cache") == PAGED["opt13b_kv_per_request"]["bytes"]


def test_gqa_cache_is_4x_smaller_than_the_seeds_formula_for_llama3_8b():
    result = evaluate(SPECS / "llama3-8b.toml", "b=1", "s=8192")
    seed_formula = 2 * 1 * 8192 * 4096 * 2 * 32  # 2·b·s·h·bytes·L
    assert value(result, "kv_cache") * 4 == seed_formula


def test_io_buffers_seed_example():
    """Seed §3: 1 × 1024 × 5120 × 2 bytes = 10 MiB each, 20 MiB for input and output."""
    result = evaluate(SPECS / "llama13b.toml", "b=1", "s=1024", "weight_dtype=fp16")
    assert value(result, "io_buffers") == 20 * 2**20


# --- PEFT -----------------------------------------------------------------
LORA = load_toml(DATA / "references" / "lora.toml")


def test_lora_parameter_count_gpt3_r4_q_v():
    """LoRA §4.2: GPT-3 175B, r = 4 on W_q and W_v: 2 × 192 × 12288 × 4 parameters."""
    result = evaluate(SPECS / "gpt3-175b.toml", "lora_rank=4", "lora_targets=q,v")
    assert value(result, "lora_params") == LORA["gpt3_checkpoint"]["derived_lora_params"]


def test_lora_rank_times_d_in_plus_d_out_with_gqa():
    result = evaluate(SPECS / "llama3-8b.toml", "lora_rank=16", "lora_targets=q,k,v,o,gate,up,down")
    h, kv, f, L, r = 4096, 1024, 14336, 32, 16
    per_layer = r * ((h + h) + 2 * (h + kv) + (h + h) + 2 * (h + f) + (f + h))
    assert value(result, "lora_params") == L * per_layer


def test_lora_trains_only_the_adapters():
    """PEFT's default fp32 adapters (autocast_adapter_dtype): 4-byte gradients, fp32 moments, no master copy."""
    result = evaluate(SPECS / "llama13b.toml")
    assert value(result, "lora_gradients") == value(result, "lora_params") * 4
    assert value(result, "lora_optimizer_states") == value(result, "lora_params") * 8
    assert value(result, "lora_weights") == value(result, "weights") + value(result, "lora_params") * 4
    sixteen = evaluate(SPECS / "llama13b.toml", "autocast_adapter_dtype=false")  # 16-bit adapters: master + moments
    assert value(sixteen, "lora_optimizer_states") == value(sixteen, "lora_params") * 12


QLORA = load_toml(DATA / "references" / "qlora.toml")


def test_qlora_nf4_with_double_quantisation_costs_4_127_bits():
    result = evaluate(SPECS / "llama65b.toml")
    assert Fraction(str(result["qlora_param_bytes"])) == Fraction(QLORA["bits_per_param"]["bytes_per_param_with_dq"])
    without = evaluate(SPECS / "llama65b.toml", "double_quant=false")
    assert Fraction(str(without["qlora_param_bytes"])) == Fraction(QLORA["bits_per_param"]["bytes_per_param_without_dq"])


def test_qlora_65b_does_not_fit_a_24_gib_card_the_seed_is_wrong():
    """Seed §8 claims a 24 GB card QLoRA-trains 65B; the 4-bit weights alone are over 30 GiB."""
    result = evaluate(SPECS / "llama65b.toml", "recompute=full", "s=512", gpu="rtx4090")
    assert result["qlora_base_weights"] > 30 * GiB
    assert result["headroom_qlora"] < 0


def test_qlora_65b_fits_one_48_gb_gpu_with_checkpointing():
    """QLoRA abstract: 65B fine-tunes on a single 48 GB GPU (gradient checkpointing, b = 1)."""
    result = evaluate(SPECS / "llama65b.toml", "recompute=full", "s=512", "gpu_memory=48GiB")
    assert result["headroom_qlora"] > 0


# The paper's Guanaco setup (tests/data/references/qlora.toml [lora_hyperparameters]): r = 64 on
# every linear layer, paged AdamW with 32-bit states on 16-bit adapters (HF Trainer), gradient
# checkpointing, b = 1 of 512 tokens, accumulation over 16.
GUANACO_65B = ("regime=qlora", "recompute=full", "s=512", "lora_rank=64", "lora_targets=q,k,v,o,gate,up,down",
               "optimizer=paged_adamw_32bit", "autocast_adapter_dtype=false", "framework=hf_trainer",
               "grad_accumulation=16")


def test_qlora_65b_in_the_papers_setup_fits_a_48_gb_card_at_the_peak_with_the_runtime_overhead():
    """QLoRA abstract: '<48GB' for 65B. An RTX A6000 (ECC off as shipped: 49,140 MiB) holds the
    peak with its runtime overhead; an L40S, whose ECC takes 1/16, does not."""
    a6000 = evaluate(SPECS / "llama65b.toml", *GUANACO_65B, gpu="rtx-a6000")
    l40s = evaluate(SPECS / "llama65b.toml", *GUANACO_65B, gpu="l40s")
    assert 0 < a6000["peak_headroom_qlora"] < 1 * GiB
    assert l40s["peak_headroom_qlora"] < 0
    assert a6000["lora_optimizer_states"] == 8 * a6000["lora_params"]  # two fp32 moments, no master copy


# --- the seed's quick table (§11), in the seed's units (GB = 10^9 bytes) ----
@pytest.mark.parametrize("spec, training, inference", [
    ("llama2-7b", 120, 14), ("llama13b", 210, 26),
])
def test_seed_quick_table(spec, training, inference):
    """7B ~120 GB / ~14 GB, 13B ~210 / ~26: fp16 AdamW at the seed's s = 1024, b = 1, within 10%.
    The seed counts tensors: the sums of parts before the runtime overhead (allocated_*)."""
    result = evaluate(SPECS / f"{spec}.toml", "weight_dtype=fp16", "s=1024", "b=1")
    assert abs(result["allocated_training"] / GB - training) <= 0.10 * training
    assert abs(result["allocated_inference"] / GB - inference) <= 0.10 * inference


def test_seed_quick_table_70b():
    result = evaluate(SPECS / "llama2-70b.toml", "weight_dtype=fp16", "s=1024", "b=1")
    assert result["allocated_training"] > 1000 * GB  # "> 1 TB"
    assert abs(result["allocated_inference"] / GB - 140) <= 14


def test_seed_13b_weights_are_26_gb_which_is_24_24_gib():
    result = evaluate(SPECS / "llama13b.toml", "weight_dtype=fp16")
    assert value(result, "weights") == 26_031_728_640
    assert f"{result['weights'] / GiB:.2f}" == "24.24"
    assert round(result["model_states"] / GB) == 208 and f"{result['model_states'] / GiB:.1f}" == "194.0"
