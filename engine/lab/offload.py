"""What activation offloading moves to the host, measured on the CPU by replaying its packing policy.

TRL's ``OffloadActivations`` (trl/models/activation_offloading.py, commit f2cd577, lines 208-345) and
torchtune's (torchtune/training/_activation_offloading.py, commit bd2a0fc, lines 137-210) are
``saved_tensors_hooks``: their pack hook copies a saved tensor to pinned host memory when it is on
the accelerator, at least ``min_offload_size`` = 1024 bytes and not a parameter (TRL: no tensor
sharing a parameter's storage, and each storage once). With ``use_streams`` the GPU tensor stays
referenced in a forward stash until ``max_fwd_stash_size`` = 5 later tensors have been packed.
``get_act_offloading_ctx_manager`` turns offloading off inside the LM head (a NoOpManager).

The copy itself needs a GPU; which tensors the policy selects does not. This harness runs a Hugging
Face Llama forward (with the loss, as TRL's training_step does) under a pack hook that applies the
same policy on CPU tensors and records, per packed tensor, its bytes, whether it would be offloaded,
and where it was saved (a decoder layer, the LM head, or outside). It reports:

* ``offloaded_bytes``: the distinct storages the policy copies to the host;
* ``offloaded_in_layers``: the part of it saved inside the decoder layers;
* ``stash_bytes`` / ``stash_layer_bytes``: the GPU tensors still held by the stash at the end of
  the forward (all of them / those saved inside the decoder layers);
* ``kept_bytes``: saved storages the policy keeps on the GPU (LM head input, small tensors).

Run: ``python -m vram_eval.lab.offload`` (a few seconds). Nothing here runs at import time.
"""
from __future__ import annotations

import collections
import json
import sys

import torch

MIN_OFFLOAD_SIZE = 1024     # trl/models/activation_offloading.py:128, torchtune ...:71
MAX_FWD_STASH_SIZE = 5      # trl ...:129, torchtune ...:70


def _llama(h, a, kv_heads, f, L, V, dtype):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=h, num_attention_heads=a, num_key_value_heads=kv_heads,
                      intermediate_size=f, num_hidden_layers=L, vocab_size=V,
                      max_position_embeddings=4096, tie_word_embeddings=False, attention_dropout=0.0)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).to(dtype)


def measure(*, h, a, kv_heads, f, L, V, b, s, recompute="none", lora=False, dtype="bf16", policy="trl"):
    """policy: "trl" (the loss inside the context, parameter storages and repeated storages skipped) or
    "torchtune" (the loss outside it, only nn.Parameter instances skipped: views of weights are copied)."""
    torch_dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
    model = _llama(h, a, kv_heads, f, L, V, torch_dtype)
    model.train()
    if recompute == "full":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
        if recompute == "full":
            model.enable_input_require_grads()
    base = model.get_base_model() if lora else model
    param_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}

    where = ["outside"]

    def enter(name):
        def hook(module, args):
            where.append(name)
        return hook

    def leave(module, args, out):
        where.pop()

    hooks = []
    for i, layer in enumerate(base.model.layers):
        hooks.append(layer.register_forward_pre_hook(enter(f"layer{i}")))
        hooks.append(layer.register_forward_hook(leave))
    hooks.append(base.lm_head.register_forward_pre_hook(enter("head")))
    hooks.append(base.lm_head.register_forward_hook(leave))

    packs = []          # (tensor_id, bytes, offloaded, owner)
    seen_storages = set()
    stash = collections.OrderedDict()
    counter = [0]

    in_context = [True]

    def pack(t):
        nbytes = t.element_size() * t.nelement()
        ptr = t.untyped_storage().data_ptr()
        owner = where[-1]
        if owner == "head" or not in_context[0]:
            # the NoOpManager inside the head (and, for torchtune, the loss outside the context):
            # the offloading hook does not see these tensors at all
            packs.append((None, nbytes, False, owner, ptr))
            return t
        counter[0] += 1
        tid = counter[0]
        if policy == "trl":
            offload = (nbytes >= MIN_OFFLOAD_SIZE and not isinstance(t, torch.nn.Parameter)
                       and ptr not in param_storages and ptr not in seen_storages)
        else:
            offload = nbytes >= MIN_OFFLOAD_SIZE and not isinstance(t, torch.nn.Parameter)
        if offload:
            seen_storages.add(ptr)
            for old in [k for k in stash if k <= tid - MAX_FWD_STASH_SIZE]:
                del stash[old]
            stash[tid] = (nbytes, owner)
        packs.append((tid, nbytes, offload, owner, ptr))
        return t

    ids = torch.randint(0, V, (b, s))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        if policy == "trl":
            out = model(input_ids=ids, labels=ids)
        else:
            out = model(input_ids=ids)
            in_context[0] = False
            out = torch.nn.functional.cross_entropy(out.logits[:, :-1].float().flatten(0, 1), ids[:, 1:].flatten())
    for hk in hooks:
        hk.remove()
    del out

    kept = {}
    for _, nbytes, offload, owner, ptr in packs:
        if not offload and ptr not in param_storages and ptr not in seen_storages:
            kept[ptr] = nbytes
    weight_views = sum(n for _, n, off, _, ptr in packs if off and ptr in param_storages)
    return {
        "model": "llama", "h": h, "a": a, "kv_heads": kv_heads, "f": f, "L": L, "V": V, "b": b, "s": s,
        "dtype": dtype, "recompute": recompute, "lora": lora, "policy": policy,
        "offloaded_bytes": sum(n for _, n, off, _, _ in packs if off),
        "offloaded_in_layers": sum(n for _, n, off, o, _ in packs if off and o.startswith("layer")),
        "stash_bytes": sum(n for n, _ in stash.values()),
        "stash_layer_bytes": sum(n for n, o in stash.values() if o.startswith("layer")),
        "stash_owners": [o for _, o in stash.values()],
        "kept_bytes": sum(kept.values()),
        "offloaded_weight_views": weight_views,
        "torch": torch.__version__,
    }


CASES = [
    dict(h=256, a=4, kv_heads=4, f=688, L=4, V=1024, b=2, s=128, recompute=r, lora=lo)
    for r in ("none", "full") for lo in (False, True)
] + [
    dict(h=256, a=4, kv_heads=4, f=688, L=4, V=1024, b=2, s=128, recompute=r, lora=lo, policy="torchtune")
    for r in ("none", "full") for lo in (False, True)
] + [
    dict(h=256, a=4, kv_heads=2, f=688, L=3, V=1024, b=1, s=256, recompute=r, lora=lo)
    for r in ("none", "full") for lo in (False, True)
]


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="write the cases to this JSON file")
    args = p.parse_args(argv)
    results = [measure(**c) for c in CASES]
    text = json.dumps({"source": "engine/lab/offload.py", "cases": results}, indent=1)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    else:
        sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
