"""Measure activation (saved-for-backward) bytes of small HF models on the CPU.

    python -m vram_eval.lab.measure --out tests/data/measured/activations.json

Run with the validation venv (torch 2.13.0 CPU, transformers, peft); see validation/ACTIVATIONS.md.
Every case builds a random-weight model from a config (nothing is downloaded).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings

from . import write_json

LLAMA_BASE = dict(b=2, s=128, h=256, a=4, kv_heads=4, f=688, L=2, V=1000)
GPT2_BASE = dict(b=2, s=128, h=256, a=4, kv_heads=4, f=1024, L=2, V=1000)

# One-factor-at-a-time variations around the base shape, plus one combined larger shape.
LLAMA_SHAPES = [
    {},
    {"b": 1},
    {"b": 4},
    {"s": 256},
    {"s": 512},
    {"h": 512, "f": 1376},
    {"a": 8, "kv_heads": 8},
    {"kv_heads": 1},             # MQA (kv = 1)
    {"b": 1, "kv_heads": 1},     # MQA at b = 1: repeat_kv's expansion stays a view in matmul
    {"a": 8, "kv_heads": 2},     # GQA, kv = a/4
    {"L": 4},
    {"V": 3000},
    {"f": 1024},
    {"b": 4, "s": 512, "h": 512, "a": 8, "kv_heads": 2, "f": 1376, "L": 4, "V": 2000},
]
GPT2_SHAPES = [
    {},
    {"b": 1},
    {"b": 4},
    {"s": 256},
    {"s": 512},
    {"h": 512, "f": 2048},
    {"a": 8},
    {"L": 4},
    {"V": 3000},
    {"b": 4, "s": 512, "h": 512, "a": 8, "kv_heads": 8, "f": 2048, "L": 4, "V": 2000},
]


def case_list():
    cases = []
    for attn in ("eager", "sdpa"):
        for ckpt in (False, True):
            for lora in (False, True):
                for sh in LLAMA_SHAPES:
                    cases.append(dict(arch="llama", dtype="bf16", attn=attn, checkpointing=ckpt,
                                      lora=lora, **{**LLAMA_BASE, **sh}))
    for attn in ("eager", "sdpa"):
        for ckpt in (False, True):
            for sh in LLAMA_SHAPES[:1] + [{"a": 8, "kv_heads": 2}, {"s": 256}]:
                cases.append(dict(arch="llama", dtype="fp32", attn=attn, checkpointing=ckpt,
                                  lora=False, **{**LLAMA_BASE, **sh}))
    for attn in ("eager", "sdpa"):
        for ckpt in (False, True):
            for sh in GPT2_SHAPES:
                cases.append(dict(arch="gpt2", dtype="bf16", attn=attn, checkpointing=ckpt,
                                  lora=False, **{**GPT2_BASE, **sh}))
    # GELU implementation and dropout kernel variants (GPT-2, eager and sdpa)
    for attn in ("eager", "sdpa"):
        for act, drop in (("gelu_pytorch_tanh", "cpu_default"), ("gelu_new", "native_dropout"),
                          ("gelu_pytorch_tanh", "native_dropout")):
            for sh in ({}, {"s": 256, "a": 8}, {"b": 1, "h": 512, "f": 2048}):
                cases.append(dict(arch="gpt2", dtype="bf16", attn=attn, checkpointing=False,
                                  lora=False, activation_function=act, dropout_impl=drop,
                                  **{**GPT2_BASE, **sh}))
    for attn in ("eager", "sdpa"):
        for sh in ({}, {"s": 256, "a": 8}):
            cases.append(dict(arch="gpt2", dtype="fp32", attn=attn, checkpointing=False,
                              lora=False, **{**GPT2_BASE, **sh}))
    # autocast (HF Trainer bf16=True on an fp32 model): fp32 weights, bf16 matmuls
    for attn in ("eager", "sdpa"):
        for ckpt in (False, True):
            for lora in (False, True):
                for sh in ({}, {"b": 1}, {"s": 256}, {"h": 512, "f": 1376}, {"a": 8, "kv_heads": 2}, {"L": 4},
                           {"V": 3000}):
                    cases.append(dict(arch="llama", dtype="fp32", amp=True, attn=attn, checkpointing=ckpt,
                                      lora=lora, **{**LLAMA_BASE, **sh}))
    # Mixtral-style mixture of experts (top-k router over SwiGLU experts), bf16
    for attn in ("eager", "sdpa"):
        for ckpt in (False, True):
            for lora in (False, True):
                for sh in ({}, {"experts": 4}, {"experts_per_token": 1}, {"b": 4}, {"h": 512, "f": 1376},
                           {"experts": 16, "experts_per_token": 4, "s": 256}):
                    cases.append(dict(arch="mixtral", dtype="bf16", attn=attn, checkpointing=ckpt, lora=lora,
                                      **{**LLAMA_BASE, "experts": 8, "experts_per_token": 2, **sh}))
    for c in cases:
        c.setdefault("amp", False)
        c.setdefault("experts", 1)
        c.setdefault("experts_per_token", 1)
        if c["arch"] == "gpt2":
            c["kv_heads"] = c["a"]  # GPT-2: multi-head attention, f = 4h
        c.setdefault("activation_function", "gelu_new" if c["arch"] == "gpt2" else "silu")
        c.setdefault("dropout_impl", "cpu_default" if c["arch"] == "gpt2" else "none")
    return cases


def run_one(c):
    from .saved_bytes import run_case

    kw = {k: c[k] for k in ("b", "s", "h", "a", "kv_heads", "f", "L", "V", "dtype", "attn",
                            "checkpointing", "lora", "dropout_impl", "amp", "experts", "experts_per_token")}
    if c["arch"] == "gpt2":
        kw["activation_function"] = c["activation_function"]
    res = run_case(c["arch"], **kw)
    sm = res["summary"]
    pl = sm["per_layer_list"]
    steady = pl[1] if len(pl) > 1 else pl[0]
    non_layer = sm["outside_bytes"] + sm["shared_bytes"]
    out = dict(c)
    out.update(
        head_dim=c["h"] // c["a"],
        per_layer_bytes=steady,
        non_layer_bytes=non_layer,
        total_bytes=sum(pl) + non_layer,
        layer_bytes_equal=len(set(pl)) == 1,
        per_layer_bytes_list=pl,
        first_layer_bytes=pl[0],
        shared_bytes=sm["shared_bytes"],
        outside_layers_bytes=sm["outside_bytes"],
        saved_view_nbytes_sum=sm["saved_view_nbytes_sum"],
        live_after_forward_bytes=sm["live_after_forward_bytes"],
        live_output_only_bytes=sm["live_output_only_bytes"],
        live_unexplained_bytes=sm["live_unexplained_bytes"],
        peak_forward_tracked_bytes=sm["peak_forward_tracked_bytes"],
        peak_fwd_bwd_tracked_bytes=sm.get("peak_fwd_bwd_tracked_bytes"),
        param_grad_bytes=sm.get("param_grad_bytes"),
    )
    assert out["total_bytes"] == sm["saved_total_bytes"], (out["total_bytes"], sm)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--limit", type=int, default=None, help="only the first N cases (debugging)")
    args = ap.parse_args(argv)

    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    from .saved_bytes import versions

    cases = case_list()[: args.limit]
    results = []
    t0 = time.time()
    for i, c in enumerate(cases):
        t = time.time()
        r = run_one(c)
        results.append(r)
        print(f"[{i + 1}/{len(cases)}] {c['arch']} {c['dtype']}{' amp' if c['amp'] else ''} {c['attn']} ckpt={c['checkpointing']} "
              f"lora={c['lora']} {c['activation_function']} {c['dropout_impl']} b={c['b']} s={c['s']} "
              f"h={c['h']} a={c['a']} kv={c['kv_heads']} f={c['f']} L={c['L']} V={c['V']}: "
              f"per_layer={r['per_layer_bytes']} non_layer={r['non_layer_bytes']} "
              f"equal={r['layer_bytes_equal']} ({time.time() - t:.1f}s)", file=sys.stderr)
    doc = {
        "description": (
            "Bytes saved for backward by autograd in one training-mode forward pass (with loss) "
            "of HF transformers models built from configs with random weights, measured on the CPU "
            "with torch.autograd.graph.saved_tensors_hooks; each storage counted once; parameter "
            "and buffer storages excluded. per_layer_bytes is the value of layer 1 (all layers are "
            "equal unless layer_bytes_equal is false: LoRA's layer 0 saves less because the frozen "
            "embedding output does not require grad). non_layer_bytes = bytes saved outside decoder "
            "layers (embedding ids, final norm, lm_head input, cross-entropy) + storages saved by "
            "more than one layer (RoPE cos/sin; with checkpointing also position_ids and the eager "
            "attention mask held by the checkpoint closures). Generated by "
            "`python -m vram_eval.lab.measure --out tests/data/measured/activations.json`; formulas in "
            "validation/ACTIVATIONS.md and validation/derived.py."),
        "versions": versions(),
        "elapsed_s": round(time.time() - t0, 1),
        "cases": results,
    }
    write_json(args.out, doc)
    print(f"wrote {len(results)} cases to {args.out} in {time.time() - t0:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
