"""Measure activation (saved-for-backward) bytes of the families read from config.json.

    python -m vram_eval.lab.family_activations --out tests/data/measured/activations.json
    python -m vram_eval.lab.family_activations --peaks tests/data/measured/peaks.json   # training peaks
    python -m vram_eval.lab.family_activations --list qwen3      # the saved tensors of one case, by layer

Each case is a small random-weight model of one family, built from its transformers config class
(Qwen3Config, Olmo2Config, Gemma2Config, ..., GPTNeoXConfig) with
``AutoModelForCausalLM.from_config(cfg, dtype=...)`` in bf16 or fp32 (what the class keeps in fp32
stays so, as with from_pretrained), in train() mode, optionally with gradient checkpointing and
with LoRA (peft, r = 8 on q_proj and v_proj, fp32 adapters), one forward with labels under
validation.saved_bytes' instruments (saved_tensors_hooks, each storage once; parameters and
buffers excluded), counting only the storages a node of the loss's graph still holds. The block
features the Llama and GPT-2 cases do not have are exercised:

* qwen3: q/k RMSNorms over each head (head_dim);
* olmo2: q/k RMSNorms over all heads, norms after the attention and the MLP (no pre-norms);
* gemma2: four (1 + w) RMSNorms per layer, GeGLU, attention and final-logit soft-capping, sliding
  layers (window shorter than s) alternating with full ones; eager only (Gemma2 has no SDPA);
* gemma3_text: Gemma-3's block (four norms, q/k norms) with sliding and full layers, eager and SDPA;
* mistral: every layer sliding (a window shorter than s), eager and SDPA;
* qwen2_moe: routed experts beside a shared expert with its sigmoid gate;
* qwen3_moe: Qwen3's q/k norms on a MoE block with its router (norm_topk_prob both ways);
* deepseek_v3: multi-head latent attention (query and key/value latents), dense layers before the
  MoE layers, a shared expert, the sigmoid router;
* cohere: the parallel block (one LayerNorm feeding attention and MLP), logit scale;
* falcon: the parallel block of a GPT-style layer (one LayerNorm), multi-query attention, rotary;
* gpt_neox: the parallel residual of a GPT-style layer (two LayerNorms), partial rotary.
* qwen3_next: gated-DeltaNet (linear_attention) layers — the causal conv1d, l2-normed q and k, the
  chunked delta rule (torch path, 64-token chunks, s padded to them), the gated RMSNorm — between
  gated full-attention layers (sigmoid output gate, q/k norms, partial rotary), MoE with a gated
  shared expert.

With --out the measured families' cases replace theirs under ``family_cases`` in the file; every
other case stays. The config each case ran (``config``: the config class's to_dict, with
``model_type``) is what the tests bind, as a config.json, through specs/catalog/huggingface.toml.
Run with the validation venv (torch 2.13.0 CPU, transformers 5.24); see validation/ACTIVATIONS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

from . import write_json

# One shape around which each family varies: b, s, hidden, heads, KV heads, head_dim, MLP, layers, vocab.
BASE = dict(b=2, s=64, h=256, a=4, kv_heads=2, head_dim=64, f=512, L=2, V=1000)
VARIANTS = [{}, {"s": 128}, {"b": 1, "kv_heads": 4}, {"a": 8, "head_dim": 48, "f": 384}]
WINDOW = 40  # the sliding layers' window (Gemma-2/3, Mistral): shorter than every s above


def config_kwargs(family, c):
    """The transformers config of one case (its class's keyword arguments) and its class name."""
    h, a, kv, d, f, L, V = c["h"], c["a"], c["kv_heads"], c["head_dim"], c["f"], c["L"], c["V"]
    common = dict(hidden_size=h, num_attention_heads=a, num_key_value_heads=kv, head_dim=d, intermediate_size=f,
                  num_hidden_layers=L, vocab_size=V, max_position_embeddings=4096, attention_dropout=0.0)
    if family == "qwen3":
        return "Qwen3Config", dict(common, tie_word_embeddings=False, use_sliding_window=False)
    if family == "olmo2":
        return "Olmo2Config", dict(common, tie_word_embeddings=False)
    if family == "gemma2":
        return "Gemma2Config", dict(common, tie_word_embeddings=True, sliding_window=WINDOW, query_pre_attn_scalar=d,
                                    attn_logit_softcapping=50.0, final_logit_softcapping=30.0)
    if family == "gemma3_text":
        kinds = ["sliding_attention", "full_attention"] * (L // 2)
        return "Gemma3TextConfig", dict(common, tie_word_embeddings=True, sliding_window=WINDOW,
                                        query_pre_attn_scalar=d, layer_types=kinds)
    if family == "mistral":
        return "MistralConfig", dict(common, tie_word_embeddings=False, sliding_window=WINDOW)
    if family == "qwen2_moe":
        return "Qwen2MoeConfig", dict(common, tie_word_embeddings=False, use_sliding_window=False,
                                      moe_intermediate_size=f, shared_expert_intermediate_size=c["shared_f"],
                                      num_experts=c["experts"], num_experts_per_tok=c["experts_per_token"],
                                      decoder_sparse_step=1, mlp_only_layers=[], norm_topk_prob=c["norm_topk_prob"],
                                      output_router_logits=False, router_aux_loss_coef=0.0)
    if family == "qwen3_moe":
        return "Qwen3MoeConfig", dict(common, tie_word_embeddings=False, use_sliding_window=False,
                                      moe_intermediate_size=f, num_experts=c["experts"],
                                      num_experts_per_tok=c["experts_per_token"], decoder_sparse_step=1,
                                      mlp_only_layers=[], norm_topk_prob=c["norm_topk_prob"],
                                      output_router_logits=False, router_aux_loss_coef=0.0)
    if family == "deepseek_v3":
        common = {k: v for k, v in common.items() if k != "head_dim"}
        return "DeepseekV3Config", dict(common, tie_word_embeddings=False, intermediate_size=c["dense_f"],
                                        moe_intermediate_size=f, n_routed_experts=c["experts"],
                                        num_experts_per_tok=c["experts_per_token"], n_shared_experts=1,
                                        first_k_dense_replace=c["dense_layers"], n_group=c["n_group"],
                                        topk_group=c["topk_group"],
                                        kv_lora_rank=c["kv_lora_rank"], q_lora_rank=c["q_lora_rank"] or None,
                                        qk_rope_head_dim=c["qk_rope_head_dim"], qk_nope_head_dim=c["qk_nope_head_dim"],
                                        v_head_dim=c["v_head_dim"], rope_scaling=None, rope_interleave=True)
    if family == "cohere":
        common = {k: v for k, v in common.items() if k != "head_dim"}
        return "CohereConfig", dict(common, tie_word_embeddings=True, use_qk_norm=False, logit_scale=0.0625)
    if family == "falcon":
        return "FalconConfig", dict(hidden_size=h, num_attention_heads=a, num_hidden_layers=L, vocab_size=V,
                                    multi_query=True, parallel_attn=True, new_decoder_architecture=False,
                                    alibi=False, bias=False, attention_dropout=0.0, hidden_dropout=0.0,
                                    max_position_embeddings=4096, tie_word_embeddings=True)
    if family == "gpt_neox":
        return "GPTNeoXConfig", dict(hidden_size=h, num_attention_heads=a, num_hidden_layers=L, vocab_size=V,
                                     intermediate_size=f, rotary_pct=c["rotary_pct"], use_parallel_residual=True,
                                     attention_dropout=0.0, hidden_dropout=0.0, max_position_embeddings=4096,
                                     tie_word_embeddings=False, hidden_act="gelu")
    if family == "qwen3_next":
        kinds = ["linear_attention"] * L if c.get("linear_only") else ["linear_attention", "full_attention"] * (L // 2)
        return "Qwen3NextConfig", dict(common, tie_word_embeddings=False, layer_types=kinds,
                                       moe_intermediate_size=f, shared_expert_intermediate_size=c["shared_f"],
                                       num_experts=c["experts"], num_experts_per_tok=c["experts_per_token"],
                                       decoder_sparse_step=1, mlp_only_layers=[], norm_topk_prob=True,
                                       output_router_logits=False, router_aux_loss_coef=0.0,
                                       linear_num_key_heads=c["gdn_k_heads"], linear_num_value_heads=c["gdn_v_heads"],
                                       linear_key_head_dim=c["gdn_k_head_dim"],
                                       linear_value_head_dim=c["gdn_v_head_dim"], linear_conv_kernel_dim=4)
    raise ValueError(family)


FAMILIES = {
    # family: (attention implementations, shape changes for the family, variants it runs)
    "qwen3": (("eager", "sdpa"), {}, VARIANTS),
    "olmo2": (("eager", "sdpa"), {}, VARIANTS),
    "gemma2": (("eager",), {"L": 4}, VARIANTS),  # four layers: each mask kind serves two (shared)
    "gemma3_text": (("eager", "sdpa"), {"L": 4}, VARIANTS[:3]),
    "mistral": (("eager", "sdpa"), {}, VARIANTS[:3]),
    "qwen2_moe": (("eager", "sdpa"), {"experts": 4, "experts_per_token": 2, "shared_f": 320, "norm_topk_prob": False},
                  [{}, {"s": 128}, {"experts": 8, "experts_per_token": 1, "shared_f": 640},
                   {"norm_topk_prob": True}]),
    "qwen3_moe": (("eager", "sdpa"), {"experts": 4, "experts_per_token": 2, "norm_topk_prob": True},
                  [{}, {"norm_topk_prob": False, "b": 1}]),
    # latent attention keeps a heads (kv_heads = a); q_lora_rank 0 is the config's null (one q_proj)
    "deepseek_v3": (("eager", "sdpa"), {"kv_heads": 4, "L": 3, "dense_layers": 1, "dense_f": 640, "experts": 4,
                                        "experts_per_token": 2, "n_group": 1, "topk_group": 1,
                                        "kv_lora_rank": 96, "q_lora_rank": 80, "qk_rope_head_dim": 16,
                                        "qk_nope_head_dim": 32, "v_head_dim": 48},
                    [{}, {"s": 128}, {"a": 8, "kv_heads": 8, "q_lora_rank": 0}, {"L": 4, "dense_layers": 2},
                     {"experts": 8, "n_group": 4, "topk_group": 2}]),
    "cohere": (("eager", "sdpa"), {"kv_heads": 2}, [{}, {"s": 128}, {"b": 1, "kv_heads": 4}]),
    "falcon": (("eager", "sdpa"), {"f": 1024, "kv_heads": 1}, [{}, {"s": 128}, {"b": 1}]),
    "gpt_neox": (("eager", "sdpa"), {"f": 1024, "kv_heads": 4, "rotary_pct": 0.25},
                 [{}, {"s": 128}, {"b": 1, "rotary_pct": 1.0}]),
    # gated-DeltaNet (linear_attention) layers alternating with gated full-attention layers, MoE
    # with a shared expert everywhere; s = 100 and 160 are not multiples of the delta rule's
    # 64-token chunks (2 and 3 chunks); as many value heads as key heads (no repeat_interleave);
    # every layer linear_attention (no attention layer keeps RoPE's tables or the mask) last
    "qwen3_next": (("eager", "sdpa"), {"L": 4, "experts": 4, "experts_per_token": 2, "shared_f": 320,
                                       "gdn_k_heads": 2, "gdn_v_heads": 4, "gdn_k_head_dim": 32,
                                       "gdn_v_head_dim": 48},
                   [{}, {"s": 100}, {"s": 160, "b": 1}, {"b": 1, "gdn_v_heads": 2}, {"linear_only": True}]),
}


FAMILY_DESCRIPTION = (
    "Bytes saved for backward by one training-mode forward pass (with loss) of small random-weight models "
    "of the families read from config.json (transformers' own config classes; `config` is the config.json "
    "each case ran, which the tests bind through specs/catalog/huggingface.toml). Measured as `cases` are "
    "(engine/lab/saved_bytes.py), with one more filter: only storages that a node of the loss's autograd "
    "graph still holds count (freed_before_backward: how many pack() saw that were dropped before the "
    "backward). per_layer_bytes is the last layer's (a MoE layer after DeepSeek's dense ones; a full layer "
    "in Gemma's mix); per_layer_bytes_list every layer's; non_layer_bytes = outside the layers + storages "
    "saved by several layers. Generated by `python -m vram_eval.lab.family_activations --out "
    "tests/data/measured/activations.json`; formulas in formulas/arch/llama.formula and gpt.formula.")


LORA_FAMILIES = ("qwen3", "olmo2", "gemma2", "gemma3_text", "mistral", "qwen2_moe", "qwen3_moe", "cohere")


def case_list(only=()):
    cases = []
    for family, (attns, fam, variants) in FAMILIES.items():
        if only and family not in only:
            continue
        for i, var in enumerate(variants):
            for attn in attns:
                for ckpt in (False, True):
                    for dtype in (("bf16", "fp32") if i == 0 else ("bf16",)):
                        c = {**BASE, **fam, **var}
                        if family == "falcon":
                            c.update(head_dim=c["h"] // c["a"], f=4 * c["h"], kv_heads=1)
                        if family == "gpt_neox":
                            c.update(head_dim=c["h"] // c["a"], kv_heads=c["a"])
                        if family == "cohere":
                            c["head_dim"] = c["h"] // c["a"]
                        cases.append(dict(c, family=family, arch=family, dtype=dtype, attn=attn,
                                          checkpointing=ckpt, lora=False, amp=False))
                        # LoRA (peft, r = 8 on q_proj and v_proj, fp32 adapters) on the frozen bf16
                        # model, as the Llama cases: the families whose projections peft names so
                        if family in LORA_FAMILIES and dtype == "bf16" and i < 2:
                            cases.append(dict(cases[-1], lora=True))
    return cases


def build(c):
    import torch
    import transformers

    from .saved_bytes import DTYPE_NAMES

    cls_name, kw = config_kwargs(c["family"], c)
    cfg = getattr(transformers, cls_name)(**kw)
    cfg._attn_implementation = c["attn"]
    torch.manual_seed(0)
    # from_config(dtype=...) keeps what the class keeps in fp32 (DeepSeek-V3's router weight and
    # bias, _keep_in_fp32_modules_strict), as from_pretrained(dtype=torch.bfloat16) does
    model = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation=c["attn"],
                                                          dtype=DTYPE_NAMES[c["dtype"]])
    model.train()
    config = json.loads(cfg.to_json_string(use_diff=False))
    config["model_type"] = cfg.model_type
    if c["family"] == "gpt_neox":  # transformers 5 nests it in rope_parameters; the Hub's configs state it
        config["rotary_pct"] = c["rotary_pct"]
    if c["family"] == "qwen3_next":  # likewise (Qwen3-Next-80B-A3B's config.json: "partial_rotary_factor": 0.25)
        config["partial_rotary_factor"] = cfg.rope_parameters["partial_rotary_factor"]
    for k in ("_attn_implementation", "_name_or_path", "transformers_version", "dtype", "torch_dtype",
              "architectures"):
        config.pop(k, None)
    return model, config


def kept_storages(loss):
    """Addresses of the storages the autograd graph of `loss` keeps for its backward."""
    import torch

    kept, seen, stack = set(), set(), [loss.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        values = []
        for name in dir(fn):
            if name.startswith("_saved_"):
                try:
                    values.append(getattr(fn, name))
                except RuntimeError:  # already freed, or not a tensor
                    continue
        if hasattr(fn, "saved_tensors"):  # custom autograd.Function (checkpoint's _NoopSaveInputs)
            try:
                values.append(fn.saved_tensors)
            except RuntimeError:
                pass
        for v in values:
            for t in (v if isinstance(v, (tuple, list)) else [v]):
                if isinstance(t, torch.Tensor):
                    kept.add(t.untyped_storage().data_ptr())
        stack.extend(nxt for nxt, _ in fn.next_functions)
    return kept


def measure(c, table=False):
    import torch

    from .saved_bytes import measure_forward, saved_tensor_table, summarize

    from .saved_bytes import apply_lora

    model, config = build(c)
    if c["checkpointing"]:
        model.gradient_checkpointing_enable()
    if c["lora"]:
        model = apply_lora(model)  # r = 8 on q_proj and v_proj, fp32 adapters (peft's defaults)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, c["V"], (c["b"], c["s"]), generator=g)
    labels = ids.clone()
    packed = []
    meas, out, live = measure_forward(model, ids, labels, checkpointing=c["checkpointing"], keep_packed=packed)
    # A tensor that pack() saw is kept for the backward only if a node of the loss's graph still
    # holds it: DeepSeek-V3's router discards the values of torch.topk, and with them the node
    # that saved the indices. Walking the graph from the loss gives what is kept; `packed` held
    # every packed tensor meanwhile, so no address was reused by another storage.
    # (Under checkpointing the layers keep only their inputs, and reading the saved tensors of
    # a checkpointed node would recompute it: the graph is walked without checkpointing only.)
    if not c["checkpointing"]:
        kept = kept_storages(out.loss)
        freed = len({r.ptr for r in meas.records if r.ptr not in kept})
        meas.records = [r for r in meas.records if r.ptr in kept]
    else:
        freed = None
    del packed
    sm = summarize(meas)
    if table:
        return meas, sm, saved_tensor_table
    out.loss.backward()  # the graph's saved tensors were all reachable (unpack ran for each)
    pl = sm["per_layer_list"]
    non_layer = sm["outside_bytes"] + sm["shared_bytes"]
    res = dict(c, config=config, freed_before_backward=freed, per_layer_bytes_list=pl, per_layer_bytes=pl[-1],
               first_layer_bytes=pl[0],
               layer_bytes_equal=len(set(pl)) == 1, non_layer_bytes=non_layer, total_bytes=sum(pl) + non_layer,
               shared_bytes=sm["shared_bytes"], outside_layers_bytes=sm["outside_bytes"],
               live_unexplained_bytes=sm["live_unexplained_bytes"])
    assert res["total_bytes"] == sm["saved_total_bytes"], (res["total_bytes"], sm)
    return res


def peak_case_list(only=()):
    """Training peaks: each family's base shape (its first case), bf16, each attention kind, with
    and without checkpointing, with and without LoRA (the families measured with it), plain
    torch.optim.AdamW (foreach; LoRA: on the adapters) as engine/lab/peaks.py's cases."""
    cases, seen = [], set()
    for c in case_list(only):
        if c["dtype"] != "bf16" or c["checkpointing"] or (c["family"], c["attn"], c["lora"]) in seen:
            continue
        seen.add((c["family"], c["attn"], c["lora"]))
        for mode in ("train", "train_ckpt"):
            cases.append(dict(c, mode=mode, foreach=True, fused=False, optimizer="adamw", logits_to_keep=None,
                              context=None, checkpointing=mode == "train_ckpt"))
    return cases


def measure_peaks(c):
    from .peaks import run_one
    from .saved_bytes import apply_lora

    model, config = build(c)
    if c["lora"]:
        model = apply_lora(model)  # r = 8 on q_proj and v_proj, fp32 adapters (peft's defaults)
    res = run_one(c, model=model)
    res["config"] = config
    return res


def listing(c):
    meas, sm, table = measure(c, table=True)
    print(json.dumps({k: v for k, v in c.items()}), "\n", sm)
    for owner in list(range(meas.L)) + ["outside"]:
        rows = table(meas, owner)
        print(f"--- {owner}: {sum(r['storage_bytes'] for r in rows)} bytes")
        for r in rows:
            print(f"  {r['storage_bytes']:>9} {r['dtype']:>8} {str(r['shape']):<22} x{r['times_saved']} "
                  f"{r['op']:<28} {r['module']}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="activations.json to merge the family cases into")
    ap.add_argument("--only", nargs="*", default=(), help="families to measure (default: all)")
    ap.add_argument("--list", metavar="FAMILY", help="print the saved tensors of the family's first case")
    ap.add_argument("--case", type=int, default=0, help="with --list: which of the family's cases")
    ap.add_argument("--peaks", metavar="PEAKS_JSON", help="measure training peaks into this peaks.json instead")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    if args.list:
        listing(case_list((args.list,))[args.case])
        return
    if args.peaks:
        return main_peaks(args)
    t0 = time.time()
    results = _measure_all(case_list(tuple(args.only)), measure, lambda c, r: (
        f"{c['family']} {c['dtype']} {c['attn']} ckpt={c['checkpointing']} lora={c['lora']} b={c['b']} s={c['s']}: "
        f"layers={r['per_layer_bytes_list']} non_layer={r['non_layer_bytes']}"))
    _merge(args.out, results, FAMILY_DESCRIPTION)
    print(f"wrote {len(results)} family cases to {args.out} in {time.time() - t0:.0f}s", file=sys.stderr)


def _measure_all(cases, measure_one, describe):
    """Each case measured, a line on stderr for each."""
    results = []
    for i, c in enumerate(cases):
        results.append(measure_one(c))
        print(f"[{i + 1}/{len(cases)}] {describe(c, results[-1])}", file=sys.stderr)
    return results


def _merge(path, results, description):
    """The measured families' cases replace theirs under ``family_cases`` of ``path``; the file's
    other cases stay."""
    from .saved_bytes import versions

    doc = json.load(open(path)) if os.path.exists(path) else {"cases": []}
    measured = {r["family"] for r in results}
    doc["family_cases"] = [c for c in doc.get("family_cases", []) if c["family"] not in measured] + results
    doc["family_description"] = description
    doc["family_versions"] = dict(versions(), date=time.strftime("%Y-%m-%d"))
    write_json(path, doc)


def main_peaks(args):
    t0 = time.time()
    results = _measure_all(peak_case_list(tuple(args.only)), measure_peaks, lambda c, r: (
        f"{c['family']} {c['attn']} {c['mode']}: peak={r['peak_bytes']} at {r['peak_phase']}"))
    _merge(args.peaks, results, (
        "Training peaks (engine/lab/peaks.py's instrument: live tensor bytes op by op over two steps of plain "
        "torch.optim.AdamW, foreach) of the families' base shapes of activations.json's family_cases, built as "
        "they are (from_config with the dtype: buffers and _keep_in_fp32 weights stay fp32). Generated by "
        "`python -m vram_eval.lab.family_activations --peaks tests/data/measured/peaks.json`."))
    print(f"wrote {len(results)} family peak cases to {args.peaks} in {time.time() - t0:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
