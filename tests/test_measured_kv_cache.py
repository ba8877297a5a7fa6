"""The `kv_cache` formula against the KV-cache bytes Hugging Face models really hold.

tests/data/measured/kv_cache.json: Llama, Mistral, Qwen2 and GPT-2 models built from configs with
random weights (fp16 and bf16, eval mode, CPU), one forward pass of input_ids (b, s) with
use_cache=True, then 3 single-token decode steps feeding the cache back (or model.generate), and
the bytes of the distinct storages behind every layer's keys/values tensors of the returned
DynamicCache (engine/lab/kv_cache.py, validation/KV_CACHE.md; torch 2.13.0+cpu,
transformers 5.24.0). MHA, GQA (kv_heads = a/2, a/4), MQA, head_dim != h/a, L in {2, 4}.
Every full-attention case is reproduced to the byte with s = tokens in the cache.

Sliding-window layers (Mistral with sliding_window shorter than the sequence): after prefill the
kept window is a view of the full-length storage (all s tokens stay allocated: kv_cache_prompt),
after a decode step the storage holds exactly `sliding_window` tokens (the tensors show
window - 1: kv_cache with sliding_window set).
"""

import json

import pytest

from conftest import DATA, evaluate_once
from vram_eval.lab.cases import kv_sets

MEASURED = json.loads((DATA / "measured" / "kv_cache.json").read_text())
CASES = MEASURED["cases"] + MEASURED["generate_cases"]
SLIDING = MEASURED["sliding_window_cases"]


def _id(c):
    return (f"{c['arch']}-{c['dtype']}-{c['method']}-b{c['b']}s{c['s']}h{c['h']}a{c['a']}kv{c['kv_heads']}"
            f"d{c['head_dim']}L{c['L']}V{c['V']}-dec{c['decode_steps']}"
            f"{'-sw' + str(c['sliding_window']) if c['sliding_window'] else ''}")


def predict(c, s=None):
    return evaluate_once(None, *kv_sets(c, s))  # asked by two tests and docs/ACCURACY.md's table


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_kv_cache_matches_measured_bytes(case):
    assert case["tokens_in_cache"] == case["s"] + case["decode_steps"]
    result = predict(case)
    assert int(result["kv_cache"]) == case["kv_bytes"]
    # the whole model, one sequence, one token
    per_token = case["kv_bytes"] // (case["b"] * case["tokens_in_cache"])
    assert int(result["kv_cache_per_token"]) == per_token
    assert per_token * case["b"] * case["tokens_in_cache"] == case["kv_bytes"]


@pytest.mark.parametrize("case", [c for c in CASES if "growth_per_step_bytes" in c],
                         ids=[_id(c) for c in CASES if "growth_per_step_bytes" in c])
def test_each_decode_step_adds_exactly_one_token(case):
    per_token = int(predict(case)["kv_cache_per_token"])
    assert case["growth_per_step_bytes"] == [case["b"] * per_token] * case["decode_steps"]


def test_full_attention_caches_hold_only_keys_and_values():
    """No preallocation: tensors are contiguous and own their whole storage; the only extra
    tensors are the 8-byte int64 sliding-window sizes of Mistral's (never full) window layers."""
    for c in CASES:
        assert c["kv_tensor_nbytes"] == c["kv_bytes"], _id(c)
        assert c["kv_contiguous"] and c["kv_storage_offsets"] == [0], _id(c)
        extra = c["cache_all_tensor_bytes"] - c["kv_bytes"]
        if c["arch"] == "mistral":
            assert c["layer_classes"] == ["DynamicSlidingWindowLayer"]
            assert extra == 8 * c["L"]
            assert {(o["dtype"], o["nbytes"]) for o in c["other_tensors"]} == {("torch.int64", 8)}
        else:
            assert c["layer_classes"] == ["DynamicLayer"]
            assert extra == 0 and c["other_tensors"] == []


@pytest.mark.parametrize("case", SLIDING, ids=[_id(c) for c in SLIDING])
def test_sliding_window_storage(case):
    """After prefill the whole prompt (kv_cache_prompt); after decoding min(tokens, window) (kv_cache)."""
    w, tokens = case["sliding_window"], case["tokens_in_cache"]
    assert case["tokens_kept"] == min(tokens, w - 1)
    s_stored = tokens if case["decode_steps"] == 0 else min(tokens, w)
    assert case["kv_storage_tokens"] == s_stored
    result = evaluate_once(None, *kv_sets(case), f"sliding_window={w}", f"prompt_len={case['s']}")
    held = result["kv_cache_prompt"] if case["decode_steps"] == 0 else result["kv_cache"]
    assert int(held) == case["kv_bytes"]
    if tokens > w and case["decode_steps"] > 0:  # without the window the formula would overcount
        assert int(predict(case)["kv_cache"]) > case["kv_bytes"]


def test_the_measured_data_records_its_versions():
    assert MEASURED["versions"]["torch"].startswith("2.13.0")
    assert MEASURED["versions"]["transformers"].startswith("5.")
    assert MEASURED["versions"]["device"] == "cpu"


def test_the_grid_covers_mha_gqa_mqa_and_explicit_head_dim():
    kinds = {(c["kv_heads"] == c["a"], c["kv_heads"] == 1, c["head_dim"] == c["h"] // c["a"]) for c in CASES}
    assert (True, False, True) in kinds      # MHA
    assert (False, False, True) in kinds     # GQA
    assert (False, True, True) in kinds      # MQA
    assert any(not hd for _, _, hd in kinds)  # head_dim != h / a
    assert {c["dtype"] for c in CASES} == {"fp16", "bf16"}
    assert {c["L"] for c in CASES} >= {2, 4}
    assert {"llama", "gpt2", "mistral", "qwen2"} <= {c["arch"] for c in CASES}
