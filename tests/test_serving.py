"""Serving with vLLM (formulas/serving.formula): the KV-cache pool as vLLM 0.33 builds it.

The logged starts (tests/data/serving/vllm_cases.toml): the blocks lie between those of the
logged available memory ± its rounding, and the tokens and concurrency vLLM printed follow from
the logged blocks exactly."""

from fractions import Fraction

import pytest

from conftest import DATA, ROOT, evaluate, load_toml

CASES = load_toml(DATA / "serving" / "vllm_cases.toml")["case"]
GiB = 2**30


def at(case, *more):
    return evaluate(DATA / "hf_configs" / case["config"], *case["sets"], *more)


def plain(point, name):
    return Fraction(str(point[name]))


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_the_logged_blocks_follow_from_the_logged_available_memory(case):
    """num_blocks = available // bytes_per_block, at the printed GiB ± 0.005 (format_gib)."""
    low, high = (int((Fraction(str(case["available_gib"])) + d) * GiB) for d in (Fraction(-5, 1000), Fraction(5, 1000)))
    blocks = [int(at(case, f"available_kv_cache_memory={m}")["serve_kv_blocks"]) for m in (low, high)]
    assert blocks[0] <= case["blocks"] <= blocks[1]


@pytest.mark.parametrize("case", [c for c in CASES if "tokens" in c or "concurrency" in c],
                         ids=[c["id"] for c in CASES if "tokens" in c or "concurrency" in c])
def test_the_logged_tokens_and_concurrency_follow_from_the_blocks(case):
    """'GPU KV cache size: N tokens, Maximum concurrency for L tokens per request: X.XXx'."""
    block = int(at(case)["serve_block_bytes"])
    point = at(case, f"available_kv_cache_memory={case['blocks'] * block}")
    assert int(point["serve_kv_blocks"]) == case["blocks"]
    if "tokens" in case:
        assert int(point["serve_kv_tokens"]) == case["tokens"]
    if "concurrency" in case:
        if "concurrency_blocks" in case:  # a version that printed it without the null block
            point = at(case, f"available_kv_cache_memory={case['concurrency_blocks'] * block}")
        assert f"{float(plain(point, 'serve_max_concurrency')):.2f}" == f"{case['concurrency']:.2f}"


def test_the_requested_memory_is_the_total_times_the_utilisation_rounded_up():
    """vllm/v1/worker/utils.py: math.ceil(total_memory * gpu_memory_utilization) — 72.91 GiB on the H100."""
    case = next(c for c in CASES if c["id"] == "h100-llama-3.1-8b")
    point = at(case)
    requested = int(point["serve_requested_memory"])
    assert requested == -(-int(Fraction(str(79.25)) * GiB * 92) // 100)
    assert round(requested / GiB, 2) == case["requested_gib"]


def test_the_available_memory_follows_the_profile_within_its_uncertainty():
    """From the weights (the formulas' count), the logged profile peak and the graph memory that
    version subtracted, the available memory comes within 0.05 GiB of the logged 56.21 GiB (the
    non-torch memory, 0.27 GiB, is a default: vLLM measures it)."""
    case = next(c for c in CASES if c["id"] == "h100-llama-3.1-8b")
    point = at(case, f"serve_activation_peak={case['peak_activation_gib']}GiB",
               f"serve_cudagraph_memory={case['cudagraph_subtracted_gib']}")
    assert abs(float(plain(point, "available_kv_cache_memory")) / GiB - case["available_gib"]) < 0.05


@pytest.mark.parametrize("case_id,output,logged,digits", [
    ("h100-llama-3.1-8b", "consumed", "consumed_gib", 2),      # weights + non-torch, 2 decimals
    ("qwen3-next-80b-tp2-h200", "weights", "model_loading_gib", 3),  # 4 decimals logged; 3 asked
], ids=["llama-3.1-8b", "qwen3-next-tp2"])
def test_vllms_weights_are_transformers_share_with_the_routers_and_the_rope_cache(case_id, output, logged, digits):
    """serve_weights: the routers whole on each rank (ReplicatedLinear) and the RoPE's cos_sin_cache
    [positions, rotary_dim] in the model dtype, beside transformers' share of the weights."""
    case = next(c for c in CASES if c["id"] == case_id)
    point = at(case)
    value = plain(point, "serve_weights") + (plain(point, "serve_non_torch") if output == "consumed" else 0)
    assert round(float(value) / GiB, digits) == round(case[logged], digits)


def test_one_request_of_max_model_len_needs_its_blocks_and_the_longest_context_is_what_the_pool_holds():
    """vllm#25350: '(10.12 GiB KV cache is needed, which is larger than the available KV cache
    memory (5.59 GiB). Based on the available memory, the estimated maximum model length is 122080.'"""
    sets = ["L=48", "kv_heads=4", "s_max=262144", "max_model_len=221000", "kv_cache_dtype=fp8"]
    config = DATA / "hf_configs" / "qwen3-8b.json"
    point = evaluate(config, *sets, "available_kv_cache_memory=5.59GiB")
    assert round(float(plain(point, "serve_kv_needed")) / GiB, 2) == 10.12
    assert plain(point, "serve_kv_spare") < 0  # vLLM refuses to start
    lengths = [int(evaluate(config, *sets, f"available_kv_cache_memory={m}GiB")["serve_max_model_len"])
               for m in ("5.585", "5.595")]
    assert lengths[0] <= 122080 <= lengths[1]


def test_a_latent_caches_need_at_full_length_is_vllms_refusal_figure():
    """vllm#15871 (0.8.3, DeepSeek-V2-Lite-Chat over two 22 GB cards): 'To serve at least one
    request with the models's max seq len (32768), (0.95 GiB KV cache is needed, which is larger
    than the available KV cache memory (0.93 GiB).' — 27 layers x 576 x 2 bytes x 32,768 tokens."""
    point = evaluate(DATA / "published" / "deepseek-v3.config.json", "L=27", "gpu=rtx3090", "tp=2",
                     "max_model_len=32768", "available_kv_cache_memory=0.93GiB")
    assert round(float(plain(point, "serve_kv_needed")) / GiB, 2) == 0.95
    assert plain(point, "serve_kv_spare") < 0 and point.plain["vllm_refuses"] is True


@pytest.mark.parametrize("sets,page", [
    ([], 16 * 8 * 256 * 2),                                  # Llama-3-8B: 16 tokens x 8 heads x (128 + 128) x bf16
    (["kv_cache_dtype=fp8"], 16 * 8 * 256),                  # fp8: 1 byte
    (["tp=4"], 16 * 2 * 256 * 2),                            # 8 heads over 4 ranks
    (["tp=16", "allow_long_max_model_len=true"], 16 * 1 * 256 * 2),  # more ranks than heads: one each
    (["block_size=32"], 32 * 8 * 256 * 2),
], ids=["bf16", "fp8", "tp4", "tp16-replicated", "block32"])
def test_a_page_is_a_block_of_one_layer(sets, page):
    point = evaluate(DATA / "hf_configs" / "llama-3-8b.json", *sets)
    assert int(point["serve_page_bytes"]) == page
    assert int(point["serve_block_bytes"]) == 32 * page


@pytest.mark.parametrize("config,groups,group_size,page", [
    ("hf_configs/gemma-3-27b-it.json", (1, 6, 0), 10, 16 * 16 * 256 * 2),   # 62 layers: 10 full, 52 sliding -> 1 + 6 groups of 10 (8 padding layers)
    ("hf_configs/llama-3-8b.json", (1, 0, 0), 32, 16 * 8 * 256 * 2),        # one group of every layer
    ("hf_configs/mistral-7b-v0.1.json", (0, 1, 0), 32, 16 * 8 * 256 * 2),   # every layer slides
    ("published/gpt-oss-20b.config.json", (1, 1, 0), 12, 16 * 8 * 128 * 2),   # 12 sliding (128) + 12 full
    ("published/gpt-oss-120b.config.json", (1, 1, 0), 18, 16 * 8 * 128 * 2),  # 18 + 18
    ("published/deepseek-v3.config.json", (1, 0, 0), 61, 16 * 576 * 2),       # latent attention: 576 a token, FlashAttention MLA's 16-token blocks (Hopper)
    ("hf_configs/qwen3-next-80b-a3b-instruct.json", (1, 0, 3), 12, 576 * 2 * 512 * 2),  # 12 full + 36 gated DeltaNet; the block raised to 576
    ("hf_configs/ai21-jamba-1.5-mini.json", (1, 0, 7), 4, 80 * 8 * 256 * 2),  # 4 attention + 28 Mamba: 1 + 7 groups of 4; (8192 x 3 + 8192 x 16) x 2 per state page
], ids=["gemma-3-27b", "llama-3-8b", "mistral-7b", "gpt-oss-20b", "gpt-oss-120b", "deepseek-v3", "qwen3-next-80b", "jamba-1.5-mini"])
def test_layers_group_as_vllm_groups_them(config, groups, group_size, page):
    """kv_cache_planning.py: layers of one kind form a bucket (full attention, sliding window,
    Mamba state); the smallest bucket's count sets the group size (or the largest's, when under
    1.5 times it); each bucket splits into cdiv(count, size) groups. On an H100."""
    point = evaluate(DATA / config, "gpu=h100")
    kinds = ("serve_full_groups", "serve_sliding_groups", "serve_state_groups")
    assert tuple(int(point[k]) for k in kinds) == groups
    assert int(point["serve_group_size"]) == group_size
    assert int(point["serve_page_bytes"]) == page


def test_a_sliding_group_holds_the_window_and_the_tokens_in_flight():
    """SlidingWindowSpec: cdiv(min(W - 1 + 2 x max_num_batched_tokens, L), block_size) + 1."""
    point = evaluate(DATA / "hf_configs" / "gemma-3-27b-it.json", "max_model_len=32768", "max_num_batched_tokens=2048")
    assert int(point["serve_sliding_blocks"]) == -(-(1024 - 1 + 2 * 2048) // 16) + 1
    assert int(point["serve_request_blocks"]) == 32768 // 16 + 6 * int(point["serve_sliding_blocks"])


def test_a_chunked_layer_holds_one_chunk_and_the_tokens_in_flight():
    """Llama-4 Scout's 36 chunked layers (attention_chunk_size 8192): ChunkedLocalAttentionSpec,
    cdiv(min(chunk + 2 x max_num_batched_tokens, L), block_size) blocks, without the sliding
    window's straddling block; 12 full layers: groups of 12, 1 full + 3 chunked."""
    point = evaluate(DATA / "hf_configs" / "llama-4-scout-17b-16e.json", "gpu=h100", "tp=4", "max_model_len=65536")
    assert int(point["serve_sliding_blocks"]) == -(-(8192 + 2 * 8192) // 16)
    assert (int(point["serve_full_groups"]), int(point["serve_sliding_groups"]), int(point["serve_group_size"])) == (1, 3, 12)
    assert int(point["serve_request_blocks"]) == 65536 // 16 + 3 * int(point["serve_sliding_blocks"])


def test_without_the_hybrid_manager_every_layer_caches_the_whole_context(cli):
    """--disable-hybrid-kv-cache-manager: Gemma-3-27B's 52 sliding layers become full ones (one
    group of 62); a hybrid Mamba model cannot start so, as vLLM says."""
    point = evaluate(DATA / "hf_configs" / "gemma-3-27b-it.json", "disable_hybrid_kv_cache_manager=true", "max_model_len=32768",
                     "gpu=h100")
    assert (int(point["serve_full_groups"]), int(point["serve_sliding_groups"]), int(point["serve_group_size"])) == (1, 0, 62)
    assert int(point["serve_request_blocks"]) == 32768 // 16
    code, _, err = cli(str(QWEN3_NEXT), "--set", "disable_hybrid_kv_cache_manager=true")
    assert code == 2 and "require the hybrid KV cache manager" in err


MLA_SETS = ["arch=llama", "h=7168", "L=61", "a=128", "kv_heads=128", "V=129280", "f=18432", "s_max=163840",
            "kv_lora_rank=512", "qk_rope_head_dim=64"]


def test_latent_attention_caches_one_latent_per_rank():
    """MLAAttentionSpec: num_kv_heads 1, head_size kv_lora_rank + qk_rope_head_dim (576), not
    divided by tensor parallelism."""
    for tp in (1, 8):
        point = evaluate(None, *MLA_SETS, "gpu=h100", f"tp={tp}")
        assert int(point["serve_page_bytes"]) == int(point["block_size"]) * 576 * 2
    assert int(evaluate(None, *MLA_SETS, "gpu=h100", "kv_cache_dtype=fp8_ds_mla")["serve_page_bytes"]) == 64 * 656


@pytest.mark.parametrize("sets,block_size", [
    (["gpu=h100"], 16),                              # 9.0: FlashAttention MLA, MultipleOf(16)
    (["gpu=h100", "kv_cache_dtype=fp8"], 64),        # FlashAttention MLA takes no fp8 cache: FlashMLA, 64
    (["gpu=b200"], 32),                              # 10.0: FlashInfer MLA, 32 or 64
    (["gpu=rtx5090"], 16),                           # 12.0: Triton MLA
    (["gpu=a100-80gb"], 16),                         # 8.0: Triton MLA
    (["gpu=h100", "block_size=128"], 128),           # --block-size
], ids=["hopper", "hopper-fp8", "b200", "rtx5090", "a100", "asked"])
def test_latent_attentions_block_size_is_its_backends(sets, block_size):
    """vllm/platforms/cuda.py _get_backend_priorities and each MLA backend's kernel block sizes (0.33)."""
    assert int(evaluate(None, *MLA_SETS, *sets)["block_size"]) == block_size


# --- hybrid models: Mamba / gated-DeltaNet state pages (vllm/platforms/interface.py) ----------
QWEN3_NEXT = DATA / "hf_configs" / "qwen3-next-80b-a3b-instruct.json"
HYBRID = next(c for c in CASES if c["id"] == "qwen3-next-80b-tp2-h200")


def test_a_hybrid_models_attention_block_grows_to_hold_a_state_page_as_logged():
    """'Setting attention block size to 544 tokens ...', 'Padding mamba page size by 1.49% ...'
    (vLLM 0.10.2, Qwen3-Next-80B-A3B over 2 H200s): one layer's state on a rank is a conv state
    of 8,192 / 2 channels x 3 columns and 32 / 2 value heads x 128 x 128, in bf16."""
    point = at(HYBRID)
    state = int(point["serve_state_page_bytes"])
    assert state == (8192 // 2 * 3 + 32 // 2 * 128 * 128) * 2
    assert int(point["serve_block_size"]) == HYBRID["block_size"]
    page = int(point["serve_page_bytes"])
    assert page == HYBRID["block_size"] * 1 * (256 + 256) * 2  # one KV head per rank
    assert f"{100 * (page - state) / state:.2f}" == f"{HYBRID['mamba_padding_pct']:.2f}"


def test_a_hybrid_models_layers_group_into_state_and_attention_groups():
    """36 state + 12 attention layers: groups of 12, 3 of state and 1 of attention; a request
    holds one state block per state group (no prefix caching) and a block per 544 tokens. That
    version logged num_blocks // groups x block_size as its tokens."""
    point = at(HYBRID)
    groups = (int(point["serve_full_groups"]), int(point["serve_state_groups"]), int(point["serve_group_size"]))
    assert groups == (1, 3, 12)
    assert int(point["serve_request_blocks"]) == -(-262144 // 544) + 3
    assert HYBRID["blocks"] // 4 * HYBRID["block_size"] == HYBRID["group_tokens"]


@pytest.mark.parametrize("sets,block_size,state_blocks", [
    (["gpu=h200"], 576, 3),        # prefix caching (0.33's default): align mode, FlashInfer's 64-token checkpoint grid, a checkpoint block
    (["gpu=a100-80gb"], 544, 2),   # align mode, Triton prefill: no checkpoint
    (["gpu=h200", "enable_prefix_caching=false"], 544, 1),
    (["gpu=h200", "block_size=32"], 576, 3),   # the alignment starts from the block size asked for: lcm(32, 64) x 9
], ids=["hopper-prefix-caching", "ampere-prefix-caching", "no-prefix-caching", "block-32"])
def test_prefix_caching_aligns_the_state_blocks(sets, block_size, state_blocks):
    """MambaSpec.max_memory_usage_bytes: 2 (+1 checkpoint) blocks in align mode, 1 otherwise;
    the attention block a multiple of lcm(max(16, block_size), 64) under FlashInfer's prefill."""
    point = evaluate(QWEN3_NEXT, "tp=2", *sets)
    assert int(point["serve_block_size"]) == block_size
    assert int(point["serve_state_blocks"]) == state_blocks


def test_an_attention_free_model_holds_one_state_page_per_request():
    """Mamba-130m: no attention, no prefix caching, one group of every layer; the longest
    context is the model's, whatever the pool (the state does not grow with it)."""
    point = evaluate(DATA / "hf_configs" / "mamba-130m-hf.json", "available_kv_cache_memory=1GiB")
    state = (1536 * 3 + 1536 * 16) * 2  # d = 1536: conv (d, 3) and SSM (d, 16), in bf16 (vLLM's auto for an fp32 config)
    assert int(point["serve_page_bytes"]) == int(point["serve_state_page_bytes"]) == state
    assert int(point["serve_request_blocks"]) == 1
    assert int(point["serve_kv_blocks"]) == GiB // (24 * state)
    assert int(point["serve_max_model_len"]) == int(point["s_max"])


@pytest.mark.parametrize("gpu,seqs,tokens", [
    ("h100", 1024, 8192), ("a100-80gb", 256, 2048), ("rtx4090", 256, 2048), ("b200", 1024, 16384),
], ids=["h100", "a100-80gb", "rtx4090", "b200"])
def test_the_scheduler_defaults_follow_the_gpu(gpu, seqs, tokens):
    """vllm/engine/arg_utils.py get_batch_defaults (the API server's)."""
    point = evaluate(DATA / "hf_configs" / "llama-3-8b.json", f"gpu={gpu}")
    assert (int(point["max_num_seqs"]), int(point["max_num_batched_tokens"])) == (seqs, tokens)


@pytest.mark.parametrize("sets,message", [
    (["gpu_memory_utilization=0"], "gpu_memory_utilization must be greater than 0 and at most 1"),
    (["gpu_memory_utilization=1.2"], "gpu_memory_utilization must be greater than 0 and at most 1"),
    (["max_model_len=16384"], "greater than the derived max_model_len"),
    (["block_size=24"], "block_size must be a multiple of 16"),
    (["kv_cache_dtype=fp4"], "'fp4' is not one of: auto, bf16, fp16, fp8"),
], ids=["utilisation-0", "utilisation-above-1", "long-max-model-len", "block-24", "kv-dtype"])
def test_a_launch_vllm_would_refuse_is_a_located_error(cli, sets, message):
    code, out, err = cli(str(DATA / "hf_configs" / "llama-3-8b.json"), *[a for s in sets for a in ("--set", s)])
    assert code == 2 and message in err and ("serving.formula:" in err or "--set" in err)


def test_solve_answers_the_longest_max_model_len_up_to_the_models_own(cli):
    """A requirement that bounds the input from above (max_model_len <= s_max) is the answer when
    everything below it fits; the next value is named invalid, with vLLM's rule."""
    import json

    code, out, _ = cli("solve", str(DATA / "hf_configs" / "llama-3-8b.json"), "--for", "max_model_len",
                       "--target", "vllm_gpu_memory", "--set", "gpu=h100", "--gpu", "h100", "--format", "json")
    answer = json.loads(out)
    assert code == 0 and answer["value"] == 8192
    assert "greater than the derived max_model_len" in answer["next_invalid"]


def test_solve_answers_the_requests_a_launch_holds(cli):
    """Llama-3-70B in bf16 over 4 H100s at 32k: what the pool holds (the concurrency vLLM would
    log), as solve's largest serve_requests."""
    import json

    sets = ["--set", "gpu=h100", "--set", "tp=4", "--set", "s_max=131072", "--set", "max_model_len=32768"]
    code, out, _ = cli("solve", "specs/llama3-70b.toml", "--for", "serve_requests", "--target", "vllm_gpu_memory",
                       "--gpu", "h100", "--format", "json", *sets)
    point = evaluate(ROOT / "specs" / "llama3-70b.toml", *[s for s in sets if s != "--set"])
    assert code == 0 and json.loads(out)["value"] == int(plain(point, "serve_max_concurrency"))


# --- SGLang (0.5.23) ---------------------------------------------------------------------------

@pytest.mark.parametrize("gpu,reserved,fraction", [
    ("h100", 13904, "0.83"),      # 512 + 12,288 + 128 + 512 + 58 x 8 MiB, then round(., 3)
    ("rtx4090", 7280, "0.704"),   # 512 + 6,144 + 128 + 96 + 50 x 8
], ids=["h100", "rtx4090"])
def test_sglangs_default_static_fraction_follows_its_rule(gpu, reserved, fraction):
    """sglang/srt/arg_groups/memory_hook.py handle_gpu_memory_settings (validation/SERVING_RESEARCH.md §2.1)."""
    point = evaluate(DATA / "hf_configs" / "llama-3-8b.json", f"gpu={gpu}")
    assert int(point["sglang_reserved_mib"]) == reserved
    assert plain(point, "mem_fraction_static") == Fraction(fraction)


def test_sglangs_cell_size_gives_the_logged_k_and_v_sizes():
    """vllm#21348: Qwen3-235B-A22B-FP8 over 4 H100s, SGLang: "KV Cache is allocated. #tokens: 367404,
    K size: 8.23 GB, V size: 8.23 GB" (GB = 2^30 bytes): 94 layers x 1 KV head per rank x 128 x bf16."""
    point = evaluate(DATA / "hf_configs" / "qwen3-8b.json", "L=94", "kv_heads=4", "tp=4", "gpu=h100",
                     "mem_fraction_static=0.93")
    cell = int(point["sglang_cell_size"])
    assert cell == 94 * 1 * 256 * 2
    assert round(367404 * cell / 2 / GiB, 2) == 8.23


# --- the engines' jobs (formulas/jobs.toml [job.vllm], [job.sglang], [job.llamacpp]) -------------
ENGINE_SWEEPS = [  # the job, the input its questions sweep, points within the model's context
    ("vllm", "max_model_len", [1, 2, 15, 16, 17, 100, 511, 1024]),
    ("vllm", "serve_requests", [1, 2, 3, 7, 64, 999]),
    ("sglang", "context_len", [1, 2, 100, 1024]),
    ("sglang", "serve_requests", [1, 2, 3, 7, 64, 999]),
    ("llamacpp", "ctx_size", [1, 255, 256, 257, 1024, 100000]),
    ("llamacpp", "n_gpu_layers", [0, 1, 2, 3, 5, 8, 12]),
]


@pytest.mark.parametrize("job,name,points", ENGINE_SWEEPS, ids=[f"{j}-{n}" for j, n, _ in ENGINE_SWEEPS])
def test_an_engine_jobs_sweep_is_its_exact_value_at_every_point(job, name, points):
    """What `sweep` computes for a job's target (vectorised) is the exact value at each point."""
    import numpy as np
    from sympy import Integer

    import vram_eval
    from vram_eval.focus import focus
    from vram_eval.regimes import JOBS
    from vram_eval.vectorise import evaluate_array

    problem = vram_eval.load(str(ROOT / "specs" / "gpt2.toml"), ["gpu=h100"])
    fx = focus(problem, name, JOBS[job].total)
    values = evaluate_array(fx.expr, fx.symbol, np.array(points, dtype=float))
    assert [int(v) for v in values] == [int(fx.at_value(Integer(p))) for p in points]


# --- the longest context vLLM derives (vllm/config/model.py _get_and_verify_max_len) -------------
@pytest.mark.parametrize("rope,derived,default", [
    (None, 8192, 8192),
    ({"rope_type": "linear", "factor": 4.0}, 32768, 32768),                    # scaled
    ({"type": "dynamic", "factor": 2.0}, 16384, 16384),                        # transformers 4.3x's key
    ({"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 8192}, 8192, 8192),  # already scaled
    ({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 2048}, 8192, 8192),
    ({"rope_type": "longrope", "factor": 4.0, "original_max_position_embeddings": 4096}, 8192, 4096),  # defaults to the original
], ids=["none", "linear", "dynamic-type-key", "llama3", "yarn", "longrope"])
def test_the_derived_max_model_len_follows_the_rope_scaling(tmp_path, rope, derived, default):
    import json

    config = json.loads((DATA / "hf_configs" / "llama-3-8b.json").read_text())
    config["rope_scaling"] = rope
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    point = evaluate(path)
    assert (int(point["serve_derived_max_len"]), int(point["max_model_len"])) == (derived, default)


def test_gemma3s_context_is_not_scaled_again():
    """'Gemma3's max_model_len (128K) is already scaled by RoPE scaling': its linear factor 8 is not applied."""
    point = evaluate(DATA / "hf_configs" / "gemma-3-27b-it.json")
    assert int(point["serve_derived_max_len"]) == int(point["s_max"]) == 131072


def test_a_max_model_len_beyond_the_derived_one_is_vllms_error_located_at_the_set(cli, tmp_path):
    import json

    config = json.loads((DATA / "hf_configs" / "llama-3-8b.json").read_text())
    config["rope_scaling"] = {"rope_type": "linear", "factor": 2.0}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert cli(str(path), "--set", "max_model_len=16384")[0] == 0
    code, _, err = cli(str(path), "--set", "max_model_len=16385")
    assert code == 2 and "greater than the derived max_model_len" in err and "rope_scaling factor" in err


def test_a_rope_factor_that_is_not_a_number_is_a_located_error(cli, tmp_path):
    import json

    config = json.loads((DATA / "hf_configs" / "llama-3-8b.json").read_text())
    config["rope_scaling"] = {"rope_type": "linear", "factor": "four"}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config, indent=2))
    code, _, err = cli(str(path))
    assert code == 2 and "Traceback" not in err and "config.json:" in err and "factor" in err


# --- SGLang's state pool for hybrid models (sglang 0.5.23 kv_cache_configurator.py) -----------------
def test_sglang_partitions_a_hybrid_models_pool_into_states_and_tokens():
    """_handle_max_mamba_cache: budget = pool x 0.9 / 1.9; max_mamba_cache_size = (budget - per
    request) // per request; the states take (slots + 1) x per request, the tokens the rest; a
    request's states: 36 layers x (8,192 / 2 x 3 conv elements in bf16 + 32 / 2 x 128 x 128 fp32)."""
    point = evaluate(QWEN3_NEXT, "gpu=h200", "tp=2")
    per_request = 36 * (8192 // 2 * 3 * 2 + 32 // 2 * 128 * 128 * 4)
    assert int(point["sglang_state_per_request"]) == per_request
    pool = Fraction(str(point["sglang_kv_pool"]))
    slots = int((pool * Fraction(9, 10) / Fraction(19, 10) - per_request) // per_request)
    assert int(point["sglang_max_mamba_cache_size"]) == slots
    assert int(point["sglang_max_total_tokens"]) == int((pool - (slots + 1) * per_request) // (12 * 1 * 512 * 2))
    assert int(point["sglang_max_running_requests"]) == slots // 5  # the state slots bind first here


@pytest.mark.parametrize("sets,ssm_bytes", [([], 4), (["mamba_ssm_dtype=bfloat16"], 2)], ids=["float32", "bfloat16"])
def test_sglangs_recurrent_state_dtype_is_its_flag(sets, ssm_bytes):
    point = evaluate(QWEN3_NEXT, "gpu=h200", "tp=2", *sets)
    assert int(point["sglang_state_per_request"]) == 36 * (4096 * 3 * 2 + 16 * 128 * 128 * ssm_bytes)


def test_a_configs_mamba_ssm_dtype_is_sglangs_default(tmp_path):
    import json

    config = json.loads(QWEN3_NEXT.read_text())
    config["mamba_ssm_dtype"] = "bfloat16"
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert evaluate(path, "gpu=h200").plain["mamba_ssm_dtype"] == "bf16"


def test_an_sglang_launch_needs_the_tokens_and_the_states_of_its_requests():
    """sglang_gpu_memory's pool: the larger of the tokens over their share (1 / 1.9) and the states
    (5 slots a request and the padding slot) over theirs (0.9 / 1.9)."""
    point = evaluate(QWEN3_NEXT, "gpu=h200", "tp=2", "serve_requests=4", "context_len=32768")
    tokens = 4 * 32768 * 12 * 512 * 2
    states = (5 * 4 + 1) * int(point["sglang_state_per_request"])
    need = max(Fraction(tokens) * Fraction(19, 10), Fraction(states) * Fraction(19, 9))
    assert Fraction(str(point["sglang_pool_needed"])) == need
    assert Fraction(str(point["sglang_kv_row"])) + Fraction(str(point["sglang_state_row"])) == need


@pytest.mark.parametrize("asked,expected", [(0, 4096), (64, 64), (10**9, None)], ids=["default", "asked", "beyond-the-pool"])
def test_sglangs_max_running_requests_is_the_one_asked_within_the_pool(asked, expected):
    """resolve_max_num_reqs: the flag (or the default rule: tokens / context_len x 512 within
    [2048, 4096]), at most tokens // 2."""
    point = evaluate(DATA / "hf_configs" / "llama-3-8b.json", "gpu=h100", f"max_running_requests={asked}")
    tokens = int(point["sglang_max_total_tokens"])
    assert int(point["sglang_max_running_requests"]) == (expected if expected is not None else tokens // 2)


def test_solve_answers_the_utilisation_n_requests_need(cli):
    """The smallest gpu_memory_utilization at which the pool holds 32 requests of max_model_len: the
    concurrency vLLM would log there is at least 32, and below it less."""
    import json

    sets = ["gpu=h100", "serve_requests=32"]
    code, out, _ = cli("solve", "specs/llama3-8b.toml", "--for", "gpu_memory_utilization", "--target", "vllm_gpu_memory",
                       "--gpu", "h100", "--format", "json", *[a for s in sets for a in ("--set", s)])
    assert code == 0
    value = Fraction(str(json.loads(out)["value"]))
    at = evaluate(ROOT / "specs" / "llama3-8b.toml", *sets, f"gpu_memory_utilization={float(value)}")
    below = evaluate(ROOT / "specs" / "llama3-8b.toml", *sets, f"gpu_memory_utilization={float(value) - 0.001}")
    assert plain(at, "serve_max_concurrency") >= 32 > plain(below, "serve_max_concurrency")


def test_sglangs_weights_keep_the_rope_cache_in_fp32():
    """sglang/srt/layers/rotary_embedding/base.py: 'cache needs to be in FP32' on CUDA — 131,072
    positions x 128 x 4 bytes beside Llama-3.1-8B's weights (vLLM's: x 2)."""
    point = evaluate(DATA / "hf_configs" / "llama-3-8b.json", "s_max=131072", "gpu=h100")
    assert int(point["sglang_weights"]) - int(point["inference_weights"]) == 131072 * 128 * 4
    assert int(point["serve_weights"]) - int(point["inference_weights"]) == 131072 * 128 * 2


def _routers_beyond_transformers(point):
    """What vLLM's weights on a GPU hold beyond transformers' share but its RoPE cache: the routers'."""
    return int(point["serve_weights"]) - int(point["inference_weights"]) - int(point["serve_rope_cache"])


def test_vllm_holds_deepseeks_routers_whole_in_the_model_dtype():
    """vllm 0.33.0 deepseek_v2.py: GateLinear without params_dtype, so bf16 whole on every rank;
    transformers keeps them in fp32 (router_fp32), its share 1/tp of that. DeepSeek-V3 over 8 GPUs."""
    point = evaluate(DATA / "published" / "deepseek-v3.config.json", "tp=8")
    routers = int(point["moe_layers"]) * int(point["router_params"])
    assert int(point["fp32_router_params"]) == routers  # transformers' fp32 routers
    assert _routers_beyond_transformers(point) == routers * (2 * 8 - 4) // 8


@pytest.mark.parametrize("model_type", ["glm4_moe", "minimax_m2"])
def test_vllm_holds_glm_and_minimax_routers_in_fp32(tmp_path, model_type):
    """vllm 0.33.0 glm4_moe.py and minimax_m2.py: GateLinear(..., params_dtype=torch.float32), so a
    bf16 model's routers are 4 bytes a weight, whole on every rank. (The sizes are GLM-4.5-Air's; the
    dtype is the model type's.)"""
    import json

    config = {"model_type": model_type, "hidden_size": 4096, "num_hidden_layers": 46, "num_attention_heads": 96,
              "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 10944, "moe_intermediate_size": 1408,
              "vocab_size": 151552, "max_position_embeddings": 131072, "torch_dtype": "bfloat16",
              "tie_word_embeddings": False, "num_experts_per_tok": 8}
    config.update({"n_routed_experts": 128, "n_shared_experts": 1, "first_k_dense_replace": 1} if model_type == "glm4_moe"
                  else {"num_local_experts": 128})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    point = evaluate(path, "tp=4")
    routers = int(point["moe_layers"]) * int(point["router_params"])
    assert routers == (45 if model_type == "glm4_moe" else 46) * 4096 * 128
    transformers_share = 4 if model_type == "glm4_moe" else 2  # transformers: GLM's fp32, MiniMax's bf16
    assert _routers_beyond_transformers(point) == routers * (4 * 4 - transformers_share) // 4
