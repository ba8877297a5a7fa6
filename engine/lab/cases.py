"""Measured cases → vram-eval bindings: one place that says how a measurement maps to inputs.

Used by the tests (tests/test_measured*.py) and by the accuracy report
(validation/accuracy.py). Needs only the engine, not torch.
"""

from __future__ import annotations

import math
from typing import List

N_POSITIONS_GPT2 = 1024
DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}


def activation_sets(c: dict) -> List[str]:
    """--set values that reproduce a case of tests/data/measured/activations.json."""
    e = DTYPE_BYTES[c["dtype"]]
    sets = [f"arch={'gpt' if c['arch'] == 'gpt2' else 'llama'}", "activation_model=measured",
            f"weight_dtype={c['dtype']}", f"b={c['b']}", f"s={c['s']}", f"h={c['h']}", f"a={c['a']}",
            f"kv_heads={c['kv_heads']}", f"f={c['f']}", f"L={c['L']}", f"V={c['V']}", "s_max=4096",
            f"flash_attention={'true' if c['attn'] == 'sdpa' else 'false'}",
            f"recompute={'full' if c['checkpointing'] else 'none'}"]
    if c["arch"] == "gpt2":
        # On the CPU, F.dropout keeps its mask in the activation dtype and LayerNorm its
        # statistics too; CUDA's native_dropout keeps a bool mask (1 byte).
        sets += ["dropout=true", f"activation_function={c['activation_function']}", f"ln_stat_bytes={e}",
                 f"mask_bytes={1 if c.get('dropout_impl') == 'native_dropout' else e}"]
    if c["lora"]:
        sets += ["lora_rank=8", "lora_targets=q,v", "lora_dtype=fp32"]  # PEFT's default: fp32 adapters
    if c.get("amp"):
        sets += ["autocast=true", "autocast_dtype=bf16"]  # an fp32 model (weight_dtype above) under bf16 autocast
    if c.get("experts", 1) > 1:
        sets += [f"experts={c['experts']}", f"experts_per_token={c['experts_per_token']}"]
    return sets


def activation_comparable(c: dict) -> bool:
    """GPT-2 with SDPA and dropout takes the fp32 math kernel on the CPU; CUDA fuses it."""
    return not (c["arch"] == "gpt2" and c["attn"] == "sdpa")


def kv_sets(c: dict, s=None) -> List[str]:
    """--set values that reproduce a case of tests/data/measured/kv_cache.json (s: tokens in the cache)."""
    arch = "gpt" if c["arch"] == "gpt2" else "llama"
    s = c["tokens_in_cache"] if s is None else s
    sets = [f"arch={arch}", f"h={c['h']}", f"a={c['a']}", f"kv_heads={c['kv_heads']}", f"L={c['L']}",
            f"V={c['V']}", f"s_max={c.get('s_max', 4096)}", f"b={c['b']}", f"s={s}", f"kv_dtype={c['dtype']}",
            f"weight_dtype={c['dtype']}"]
    if arch == "llama":
        sets += [f"head_dim={c['head_dim']}", f"f={c.get('f', 4 * c['h'])}"]
    return sets


def kv_comparable(c: dict) -> bool:
    """A sliding window shorter than the cached tokens is not what `kv_cache` describes."""
    return not (c.get("sliding_window") and c["sliding_window"] < c["tokens_in_cache"])


def peak_sets(c: dict, t: int = 0) -> List[str]:
    """--set values that reproduce a case of tests/data/measured/peaks.json.

    Training ran plain torch.optim.AdamW on the model's own dtype: no fp32 master weights,
    moments in the parameters' dtype. Inference: t is the decode step (0: the prefill), the
    prompt is the case's s and the cache holds s + t tokens."""
    base = dict(c, checkpointing=c["mode"] == "train_ckpt", lora=bool(c.get("lora")))
    base.setdefault("activation_function", "gelu_new")
    sets = activation_sets(base)
    if c["arch"] == "gpt2":  # GPT2Config's n_positions: the wpe rows are parameters
        sets = [x for x in sets if not x.startswith("s_max=")] + [f"s_max={N_POSITIONS_GPT2}"]
    if c["mode"] == "inference":
        n = c["logits_to_keep"] or c["s"]
        sets += [f"s={c['s'] + t}", f"prompt_len={c['s']}", f"prefill_logits={n}", f"kv_dtype={c['dtype']}"]
    else:
        impl = "fused" if c.get("fused") else ("foreach" if c["foreach"] else "single")
        # plain torch.optim AdamW: no master copy, moments in each parameter's dtype (the model's,
        # or the fp32 adapters') — framework = pytorch
        sets += ["framework=pytorch", f"optimizer_impl={impl}"]
    return sets


def peak_comparable(c: dict) -> bool:
    """Every recorded peak case is comparable (autocast too, since its activations are modelled)."""
    return True


def gpu_sets(c: dict, versions=None) -> List[str]:
    """--set values for a case of engine/lab/gpu.py (bf16 Llama with SDPA on a GPU); versions (the
    file's "versions") give the GPU's architecture for the cuBLAS workspace."""
    sets = ["arch=llama", "activation_model=measured", "weight_dtype=bf16", "flash_attention=true",
            "tie_embeddings=false", f"h={c['h']}", f"a={c['a']}", f"kv_heads={c['kv_heads']}", f"f={c['f']}",
            f"L={c['L']}", f"V={c['V']}", f"b={c['b']}", "s_max=131072",
            f"recompute={'full' if c['mode'] == 'train_ckpt' else 'none'}",
            f"expandable_segments={'true' if c.get('allocator') == 'expandable' else 'false'}"]
    if versions and versions.get("compute_capability"):
        from .gpu import gpu_arch

        sets.append(f"gpu_arch={gpu_arch(versions['compute_capability'])}")
    if c["mode"] == "inference":
        return sets + [f"s={c['s'] + c['decode_steps']}", f"prompt_len={c['s']}", "prefill_logits=1",
                       "kv_dtype=bf16"]
    # plain torch.optim.AdamW: moments in each parameter's dtype (bf16 model, fp32 adapters)
    sets += [f"s={c['s']}", "framework=pytorch", f"optimizer_impl={c['optimizer_impl']}"]
    if c.get("lora"):
        sets += ["lora_rank=8", "lora_targets=q,v", "lora_dtype=fp32"]
    return sets


GPU_LEVELS = ("allocated", "reserved", "device")


def gpu_prediction(c: dict, values) -> dict:
    """What vram-eval predicts for a engine/lab/gpu.py case, at the three levels it measures:
    torch.cuda.max_memory_allocated (the tensors' peak + the cuBLAS workspace), max_memory_reserved
    (+ the allocator's reserve) and the process's device memory at the peak (+ the CUDA context and
    NCCL: peak_<job>), in whole bytes. (The fused AdamW's fp32 `step` counters, which it keeps on the
    GPU, are in the formulas: peaks.formula optimizer_step_counters.)"""
    job = "inference" if c["mode"] == "inference" else ("lora" if c.get("lora") else "training")
    at = lambda name: int(math.ceil(values[name]))  # noqa: E731
    return {"allocated": int(math.ceil(values[f"peak_allocated_{job}"] + values["cublas_workspace"])),
            "reserved": at(f"peak_reserved_{job}"), "device": at(f"peak_{job}")}


def family_activation_sets(c: dict) -> List[str]:
    """--set values, besides the case's own config.json, that reproduce a family case of
    tests/data/measured/activations.json (engine/lab/family_activations.py)."""
    e = DTYPE_BYTES[c["dtype"]]
    # from_config(dtype=...) keeps RoPE's inv_freq buffers in fp32, as from_pretrained does
    sets = ["activation_model=measured", f"weight_dtype={c['dtype']}", f"b={c['b']}", f"s={c['s']}",
            f"flash_attention={'true' if c['attn'] == 'sdpa' else 'false'}",
            f"recompute={'full' if c['checkpointing'] else 'none'}", "rope_buffer_bytes=4"]
    if c["family"] in ("falcon", "gpt_neox"):
        sets += [f"ln_stat_bytes={e}"]  # the CPU's LayerNorm keeps its statistics in the activation dtype
    if c.get("mode", "").startswith("train"):
        sets += ["framework=pytorch", "optimizer_impl=foreach"]  # plain torch.optim.AdamW, as measured
    if c["lora"]:
        sets += ["lora_rank=8", "lora_targets=q,v", "lora_dtype=fp32"]  # PEFT's default: fp32 adapters
    return sets


def family_activation_comparable(c: dict) -> bool:
    """Falcon with SDPA on the CPU: its causal mask and MQA's broadcast K and V send SDPA to the math
    kernel, which computes 16-bit inputs in fp32 — not what a GPU's fused kernels keep."""
    return not (c["family"] == "falcon" and c["attn"] == "sdpa")
