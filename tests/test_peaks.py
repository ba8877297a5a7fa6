"""formulas/peaks.formula: the peak over phases, as behaviours (the measured cases are in
tests/test_measured_peaks.py)."""

import pytest
from sympy import Rational

from conftest import DATA, SPECS, evaluate, value

LLAMA2_7B = SPECS / "llama2-7b.toml"


def test_plain_torch_adamw_on_bf16_is_8_bytes_per_parameter():
    """No master copy, moments in the parameters' dtype: 2 + 2 + 2·2 bytes (what torch.optim does)."""
    r = evaluate(LLAMA2_7B, "weight_dtype=bf16", "master_weights=false", "optimizer_state_dtype=bf16")
    assert value(r, "optimizer_states") == 4 * value(r, "params")
    assert value(r, "model_states") == 8 * value(r, "params")


def test_mixed_precision_defaults_are_unchanged():
    r = evaluate(LLAMA2_7B)
    assert value(r, "optimizer_states") == 12 * value(r, "params")  # ZeRO's K = 12


def test_adam8bit_moments_keep_their_block_constants():
    r = evaluate(LLAMA2_7B, "optimizer=adam8bit")
    # bitsandbytes 0.50.2 optim/optimizer.py:524: an fp32 absmax per block of 256 (the paper's 2048 is older)
    assert r["optimizer_state_bytes"] == Rational(2) + Rational(2 * 4, 256)


@pytest.mark.parametrize("impl, copies", [("fused", 0), ("foreach", 1)])
def test_the_optimizer_step_adds_a_parameter_sized_copy_only_with_foreach(impl, copies):
    r = evaluate(LLAMA2_7B, f"optimizer_impl={impl}")
    assert value(r, "optimizer_step_workspace") == copies * 4 * value(r, "params")  # fp32 moments


def test_the_for_loop_step_needs_three_of_the_largest_tensor():
    """Llama-2-7B's largest tensors are the 32000 × 4096 embedding and LM head."""
    r = evaluate(LLAMA2_7B, "optimizer_impl=single")
    assert value(r, "optimizer_step_workspace") == 4 * (2 * 32000 * 4096 + 4096)


def test_offloaded_states_step_on_the_host():
    r = evaluate(LLAMA2_7B, "optimizer_impl=foreach", "offload=cpu")
    assert value(r, "optimizer_step_workspace") == 0


def test_the_loss_backward_needs_two_fp32_vocabulary_tensors():
    """8·b·s·V bytes at the first backward op (measured), Llama-3-8B's 128,256-token vocabulary."""
    r = evaluate(SPECS / "llama3-8b.toml", "b=4", "s=4096")
    targets = 8 * 4 * 4096 + 4
    assert value(r, "loss_backward_workspace") == 8 + 8 * 4 * 4096 * 128256 - targets


def test_peak_is_the_largest_phase():
    r = evaluate(LLAMA2_7B)
    phases = ["training_at_backward_start", "training_at_bottom_layer", "training_at_backward_end",
              "training_at_optimizer_step"]
    assert value(r, "peak_allocated_training") == max(value(r, p) for p in phases)
    assert value(r, "peak_training") == value(r, "peak_allocated_training") + value(r, "peak_overhead_training")


def test_without_checkpointing_the_start_of_backward_is_the_peak_at_long_context():
    r = evaluate(LLAMA2_7B, "b=4")
    assert value(r, "peak_allocated_training") == value(r, "training_at_backward_start")


def test_persistent_gradients_are_alive_in_the_forward():
    kept = evaluate(LLAMA2_7B, "persistent_gradients=true")
    freed = evaluate(LLAMA2_7B, "persistent_gradients=false")
    assert (value(kept, "training_at_backward_start") - value(freed, "training_at_backward_start")
            == value(freed, "gradients"))


def test_prefill_keeps_the_prompts_kv_and_decode_the_whole_cache():
    r = evaluate(LLAMA2_7B, "s=4096", "prompt_len=1024", "regime=inference")
    assert value(r, "kv_cache_prompt") * 4 == value(r, "kv_cache")
    assert value(r, "inference_at_decode") > value(r, "inference_weights") + value(r, "kv_cache")


def test_prefill_logits_of_every_position_cost_b_s_v():
    last = evaluate(LLAMA2_7B, "s=4096", "b=8", "regime=inference")
    every = evaluate(LLAMA2_7B, "s=4096", "b=8", "regime=inference", "prefill_logits=4096")
    assert value(every, "prefill_head") - value(last, "prefill_head") == 2 * 8 * 4095 * 32000


def test_a_prompt_longer_than_the_sequence_is_refused(cli):
    status, _, err = cli("specs/llama2-7b.toml", "--set", "s=1024", "--set", "prompt_len=2048")
    assert status == 2 and "prompt_len must be a whole number from 1 to s" in err and "Traceback" not in err


def test_qlora_peak_is_the_lora_peak_with_the_4_bit_base():
    r = evaluate(LLAMA2_7B)
    shift = value(r, "qlora_weights") - value(r, "lora_weights")
    assert shift < 0
    assert value(r, "qlora_at_backward_start") == value(r, "lora_at_backward_start") + shift


def test_the_report_shows_the_peak_and_where_it_is(cli):
    status, out, _ = cli("specs/llama2-7b.toml")
    assert status == 0
    assert "sum of parts" in out and "peak over phases" in out and "reached at" in out


def _verdicts(out):
    return next(line for line in out.splitlines() if line.startswith("  fits the GPU?"))


def test_the_verdict_is_the_peak_s(cli):
    """Llama-2-7B's QLoRA at s = 4,500 on a 24 GiB card: the sum of parts is 23.04 GiB, the peak
    over phases 24.04 GiB — the GPU sees the peak, so it does not fit (without the runtime overhead,
    which would add to both)."""
    _, out, _ = cli("specs/llama2-7b.toml", "--set", "gpu_memory=24GiB", "--set", "s=4500",
                    "--set", "autocast_adapter_dtype=false",
                    "--set", "overhead=0", "--set", "allocator_fragmentation=0")
    assert "23.04 GiB" in out and "24.04 GiB" in out
    qlora = [cell.strip() for cell in _verdicts(out)[len("  fits the GPU?"):].split("   ") if cell.strip()][2]
    assert qlora == "NO, 0.0421 GiB over"


def test_a_verdict_without_a_peak_says_it_is_the_sum_of_parts(cli):
    _, out, _ = cli(DATA / "hf_configs" / "falcon-mamba-7b.json", "--gpu", "h100")
    assert _verdicts(out).endswith("free (sum of parts)")


def test_json_carries_the_peaks(cli):
    import json

    status, out, _ = cli("specs/llama2-7b.toml", "--format", "json")
    outputs = json.loads(out)["outputs"]
    assert {"peak_training", "peak_lora", "peak_qlora", "peak_inference"} <= set(outputs)


@pytest.mark.parametrize("setting", ["grad_accumulation=4", "dp=8", "tp=2", "pp=2"])
def test_gradients_outlive_the_step_with_accumulation_or_parallelism(setting):
    assert evaluate(LLAMA2_7B, setting)["persistent_gradients"]


@pytest.mark.parametrize("framework", ["hf_trainer", "pytorch"])
def test_single_gpu_pytorch_frees_gradients_between_steps(framework):
    assert not evaluate(LLAMA2_7B, f"framework={framework}")["persistent_gradients"]


def test_megatron_and_deepspeed_keep_a_gradient_buffer():
    assert evaluate(LLAMA2_7B)["persistent_gradients"]  # framework = mixed_precision


def test_zero_3_shards_the_4_bit_base_too():
    one = evaluate(LLAMA2_7B, "zero_stage=3")
    eight = evaluate(LLAMA2_7B, "zero_stage=3", "dp=8")
    assert value(eight, "qlora_base_weights") * 8 == value(one, "qlora_base_weights")


def test_autocast_keeps_fp32_state_and_16_bit_activations():
    """HF Trainer's bf16=True on an fp32 model: 4 + 4 + 8 bytes per parameter, bf16 activations."""
    r = evaluate(LLAMA2_7B, "weight_dtype=fp32", "autocast=true")
    assert r["act_dtype"].value == "bf16" and not r["master_weights"]
    assert value(r, "model_states") == 16 * value(r, "params")


def test_autocast_adds_the_16_bit_weight_copies_the_matmuls_keep():
    plain = evaluate(LLAMA2_7B, "weight_dtype=fp32", "act_dtype=bf16")
    amp = evaluate(LLAMA2_7B, "weight_dtype=fp32", "autocast=true")
    assert value(amp, "autocast_weight_copies") == 2 * value(amp, "linear_params_per_layer")
    assert value(amp, "activations") > value(plain, "activations") + 32 * value(amp, "autocast_weight_copies")


@pytest.mark.parametrize("framework, bytes_per_param, impl", [
    ("mixed_precision", 16, "fused"),  # ZeRO §3.1: 2 + 2 + 12
    ("hf_trainer", 8, "fused"),        # bf16 weights, gradients and moments; fused AdamW
    ("pytorch", 8, "foreach"),
])
def test_framework_presets(framework, bytes_per_param, impl):
    r = evaluate(LLAMA2_7B, "weight_dtype=bf16", f"framework={framework}")
    assert value(r, "model_states") == bytes_per_param * value(r, "params")
    assert r["optimizer_impl"].value == impl


def test_a_preset_yields_to_an_explicit_setting():
    r = evaluate(LLAMA2_7B, "weight_dtype=bf16", "framework=hf_trainer", "optimizer_state_dtype=fp32")
    assert value(r, "optimizer_states") == 8 * value(r, "params")


def test_the_adapters_step_temporaries_take_the_adapters_moment_dtype():
    """fp32 adapters under plain torch.optim: fp32 moments, so an fp32 foreach temporary."""
    r = evaluate(LLAMA2_7B, "framework=pytorch", "lora_dtype=fp32")
    assert value(r, "lora_step_workspace") == 4 * value(r, "lora_params")


@pytest.mark.parametrize("output,counted_in", [("inference_resident", "inference_weights"),
                                               ("training_at_backward_start", "model_buffers")])
def test_a_routers_score_bias_buffers_are_counted_once(output, counted_in):
    """DeepSeek-V3's e_score_correction_bias (fp32, E per MoE layer): in the inference weights, and
    in training among the buffers — once each: turning it off takes off what that one part holds."""
    from conftest import DATA, evaluate

    config = DATA / "published" / "deepseek-v3.config.json"
    on, off = (evaluate(config, "gpu=h100", "tp=8", "s=1024", f"router_score_bias={v}") for v in ("true", "false"))
    assert int(on[output]) - int(off[output]) == int(on[counted_in]) - int(off[counted_in]) > 0
    assert int(on["model_buffers"]) - int(off["model_buffers"]) == 4 * 256 * 58
