"""Regenerate the generated sections of validation/ACTIVATIONS.md.

    python -m validation.report --json tests/data/measured/activations.json --md validation/ACTIVATIONS.md

* the predicted-vs-measured table (pure Python, from the JSON and validation/derived.py);
* with --listings, the saved-tensor listings of representative cases (needs torch/transformers/peft:
  run it with the validation venv).

Sections are delimited by ``<!-- BEGIN name -->`` / ``<!-- END name -->`` markers.
"""
from __future__ import annotations

import argparse
import json
import re
import sys

from validation.derived import predict

KEYS = ("per_layer_bytes", "first_layer_bytes", "non_layer_bytes", "total_bytes")


def rel_err(pred, meas):
    return 0.0 if pred == meas else (pred - meas) / meas


def comparison(doc):
    rows = []
    worst = 0.0
    for i, c in enumerate(doc["cases"]):
        if c.get("amp") or c["arch"] == "mixtral":  # derived in formulas/arch/llama.formula only
            continue
        p = predict(c)
        errs = {k: rel_err(p[k], c[k]) for k in KEYS}
        worst = max(worst, *(abs(v) for v in errs.values()))
        rows.append((i, c, p, errs))
    return rows, worst


def table_md(doc):
    rows, worst = comparison(doc)
    n_exact = sum(all(c[k] == p[k] for k in KEYS) for _, c, p, _ in rows)
    out = [f"{len(rows)} cases (without autocast and mixture of experts); {n_exact} reproduced exactly (per-layer, first-layer, non-layer and "
           f"total bytes); max |relative error| = {worst:.3%}.", "",
           "| # | arch | dt | attn | ckpt | lora | act | dropout | b | s | h | a | kv | f | L | V "
           "| per-layer meas | per-layer pred | err | first layer meas | pred | non-layer meas "
           "| pred | err | total meas | total pred | err | equal |",
           "|" + "---|" * 28]
    for i, c, p, e in rows:
        out.append(
            f"| {i} | {c['arch']} | {c['dtype']} | {c['attn']} | {'y' if c['checkpointing'] else 'n'} "
            f"| {'y' if c['lora'] else 'n'} | {c['activation_function']} | {c['dropout_impl']} "
            f"| {c['b']} | {c['s']} | {c['h']} | {c['a']} | {c['kv_heads']} | {c['f']} | {c['L']} "
            f"| {c['V']} | {c['per_layer_bytes']} | {p['per_layer_bytes']} | {e['per_layer_bytes']:.2%} "
            f"| {c['first_layer_bytes']} | {p['first_layer_bytes']} | {c['non_layer_bytes']} "
            f"| {p['non_layer_bytes']} | {e['non_layer_bytes']:.2%} | {c['total_bytes']} "
            f"| {p['total_bytes']} | {e['total_bytes']:.2%} | {'y' if c['layer_bytes_equal'] else 'n'} |")
    return "\n".join(out)


def peaks_md(doc):
    from validation.derived import gpt2_layer, llama_layer

    out = ["| arch | attn | ckpt | b | s | h | a | kv | L | saved total | alive after fwd | peak fwd "
           "| peak fwd+bwd | peak fwd+bwd - alive after fwd | one full layer (no ckpt) | param grads |",
           "|" + "---|" * 16]
    for c in doc["cases"]:
        if c["dtype"] != "bf16" or c["lora"] or c["L"] != 4:
            continue
        if c["activation_function"] not in ("silu", "gelu_new") or c["dropout_impl"] not in ("none", "cpu_default"):
            continue
        if c["arch"] == "llama":
            full = llama_layer(c["b"], c["s"], c["h"], c["a"], c["kv_heads"], c["f"], 2, c["attn"])
        else:
            full = gpt2_layer(c["b"], c["s"], c["h"], c["a"], c["f"], 2, c["attn"])
        out.append(
            f"| {c['arch']} | {c['attn']} | {'y' if c['checkpointing'] else 'n'} | {c['b']} | {c['s']} "
            f"| {c['h']} | {c['a']} | {c['kv_heads']} | {c['L']} | {c['total_bytes']} "
            f"| {c['live_after_forward_bytes']} | {c['peak_forward_tracked_bytes']} "
            f"| {c['peak_fwd_bwd_tracked_bytes']} "
            f"| {c['peak_fwd_bwd_tracked_bytes'] - c['live_after_forward_bytes']} | {full} "
            f"| {c['param_grad_bytes']} |")
    return "\n".join(out)


LISTING_CASES = [
    ("Llama bf16, eager, GQA (a=8, kv=2), layer 0", "llama",
     dict(b=2, s=128, h=256, a=8, kv_heads=2, f=688, L=2, V=1000, attn="eager"), 0),
    ("Llama bf16, sdpa (CPU flash kernel), GQA (a=8, kv=2), layer 0", "llama",
     dict(b=2, s=128, h=256, a=8, kv_heads=2, f=688, L=2, V=1000, attn="sdpa"), 0),
    ("Llama bf16, eager, LoRA r=8 on q_proj/v_proj, layer 1 (steady state)", "llama",
     dict(b=2, s=128, h=256, a=8, kv_heads=2, f=688, L=2, V=1000, attn="eager", lora=True), 1),
    ("Llama bf16, eager, LoRA r=8 on q_proj/v_proj, layer 0", "llama",
     dict(b=2, s=128, h=256, a=8, kv_heads=2, f=688, L=2, V=1000, attn="eager", lora=True), 0),
    ("Llama bf16, eager, gradient checkpointing, layer 0", "llama",
     dict(b=2, s=128, h=256, a=8, kv_heads=2, f=688, L=2, V=1000, attn="eager", checkpointing=True), 0),
    ("GPT-2 bf16, eager, gelu_new, CPU dropout (defaults), layer 0", "gpt2",
     dict(b=2, s=128, h=256, a=4, kv_heads=4, f=1024, L=2, V=1000, attn="eager"), 0),
    ("GPT-2 bf16, eager, gelu_pytorch_tanh, native_dropout (CUDA-style bool masks), layer 0", "gpt2",
     dict(b=2, s=128, h=256, a=4, kv_heads=4, f=1024, L=2, V=1000, attn="eager",
          activation_function="gelu_pytorch_tanh", dropout_impl="native_dropout"), 0),
    ("GPT-2 bf16, sdpa (CPU math fallback because dropout_p > 0), layer 0", "gpt2",
     dict(b=2, s=128, h=256, a=4, kv_heads=4, f=1024, L=2, V=1000, attn="sdpa"), 0),
]


def listings_md():
    import warnings

    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    from vram_eval.lab.saved_bytes import run_case

    out = []
    for title, arch, kw, layer in LISTING_CASES:
        res = run_case(arch, table_layer=layer, with_backward=False, **kw)
        shape = ", ".join(f"{k}={v}" for k, v in kw.items() if k in "b s h a kv_heads f L V".split())
        out += [f"#### {title}", "", f"`{shape}`", "",
                "| module | op (torch function) | shape | dtype | storage bytes | times saved |",
                "|---|---|---|---|---|---|"]
        tot = 0
        for r in res["table"]:
            out.append(f"| {r['module'].replace('base_model.model.', '')} | {r['op'] or '(checkpoint input)'} "
                       f"| {tuple(r['shape'])} | {r['dtype']} | {r['storage_bytes']} | {r['times_saved']} |")
            tot += r["storage_bytes"]
        out.append(f"| **sum of unique storages saved in this layer** | | | | **{tot}** | |")
        out.append("")
        out.append(f"Layer bytes attributed (shared storages excluded): "
                   f"{res['summary']['per_layer_list']}; shared across layers: "
                   f"{res['summary']['shared_bytes']}.")
        if kw.get("checkpointing"):
            out += ["", "Tensors held by the checkpoint (layer args and kwargs):", "",
                    "| shape | dtype | storage bytes | layers |", "|---|---|---|---|"]
            for r in res["ckpt_inputs"]:
                out.append(f"| {tuple(r['shape'])} | {r['dtype']} | {r['storage_bytes']} | {r['layers']} |")
        if layer == 0 and not kw.get("lora") and not kw.get("checkpointing") and kw.get("attn") == "eager":
            out += ["", "Saved outside the decoder layers:", "",
                    "| module | op | shape | dtype | storage bytes | times saved |", "|---|---|---|---|---|---|"]
            for r in res["table_outside"]:
                out.append(f"| {r['module'] or '(loss)'} | {r['op']} | {tuple(r['shape'])} | {r['dtype']} "
                           f"| {r['storage_bytes']} | {r['times_saved']} |")
        out.append("")
    return "\n".join(out)


def replace_section(text, name, body):
    pat = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(<!-- END {name} -->)", re.S)
    if not pat.search(text):
        raise SystemExit(f"markers for section {name!r} not found")
    return pat.sub(lambda m: m.group(1) + body.rstrip() + "\n" + m.group(2), text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--listings", action="store_true", help="also regenerate listings (needs torch)")
    args = ap.parse_args(argv)
    with open(args.json) as fh:
        doc = json.load(fh)
    with open(args.md) as fh:
        text = fh.read()
    text = replace_section(text, "table", table_md(doc))
    text = replace_section(text, "peaks", peaks_md(doc))
    v = doc["versions"]
    text = replace_section(text, "versions", "\n".join(f"- {k}: {val}" for k, val in v.items()))
    if args.listings:
        text = replace_section(text, "listings", listings_md())
    with open(args.md, "w") as fh:
        fh.write(text)
    rows, worst = comparison(doc)
    print(f"max |relative error| over {len(rows)} cases (no autocast, no MoE): {worst:.4%}", file=sys.stderr)


if __name__ == "__main__":
    main()
