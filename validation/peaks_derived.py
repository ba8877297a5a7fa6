"""Closed-form PEAK live tensor bytes of a training step and of inference (see PEAKS.md).

    python -m validation.peaks_derived --json tests/data/measured/peaks.json

prints, for every measured case of ``validation.peaks``, the predicted and measured peak of each
phase, and per family the largest error.

Two levels:

* ``compact_*``: the few terms vram-eval needs, written with the quantities it already has (weights W,
  gradients G, optimizer state S, stored activations A from validation/derived.py, b, s, h, V, L, KV
  cache, AdamW temporaries).  Exact for the phase points they describe (end of forward inside the
  loss, start of backward, end of backward, optimizer step, prefill LM head).
* ``exact_*``: the compact terms plus the in-layer terms (the largest transient inside one decoder
  layer's forward or backward, inside the prefill of the last layer), whose forms come from
  ``validation/peak_forms.json`` (fitted on random small shapes by ``validation.peaks_fit``).

Integer bytes throughout (Fractions where a fitted coefficient is fractional).  No torch import.
"""
from __future__ import annotations

import argparse
import collections
import json
import pathlib
import re
from fractions import Fraction

from validation import derived
from validation.peaks_fit import a_layer, elem, features, g_layer, kv_layer

FORMS_PATH = pathlib.Path(__file__).with_name("peak_forms.json")
_FORMS = None
N_POSITIONS_GPT2 = 1024  # GPT2Config default (wpe rows)


def forms():
    global _FORMS
    if _FORMS is None:
        _FORMS = json.loads(FORMS_PATH.read_text())["families"]
    return _FORMS


_TERM = re.compile(r"\s*([+-])?\s*([0-9]+(?:/[0-9]+)?)\*([A-Za-z0-9]+)")


def evalform(text, F):
    if text.strip() == "0":
        return Fraction(0)
    total = Fraction(0)
    pos = 0
    for m in _TERM.finditer(text):
        assert text[pos:m.start()].strip() == "", (text, pos)
        sign = -1 if m.group(1) == "-" else 1
        total += sign * Fraction(m.group(2)) * F[m.group(3)]
        pos = m.end()
    assert text[pos:].strip() == "", text
    return total


# --------------------------------------------------------------------------------------------
# model quantities
# --------------------------------------------------------------------------------------------
def param_numels(c):
    """Element counts of model.parameters(), in order (tied GPT-2 LM head not repeated)."""
    h, a, kv, f, L, V = (c[k] for k in ("h", "a", "kv_heads", "f", "L", "V"))
    d = h // a
    if c["arch"] == "llama":
        layer = [a * d * h, kv * d * h, kv * d * h, h * a * d, f * h, f * h, h * f, h, h]
        return [V * h] + layer * L + [h, V * h]
    layer = [h, h, h * 3 * h, 3 * h, h * h, h, h, h, h * 4 * h, 4 * h, 4 * h * h, h]
    return [V * h, N_POSITIONS_GPT2 * h] + layer * L + [h, h]


def activations(c):
    """Stored activations A (validation/derived.py: includes the int64 input ids, 8·b·s)."""
    cc = dict(c, checkpointing=c["mode"] == "train_ckpt", lora=False)
    cc.setdefault("activation_function", "gelu_new" if c["arch"] == "gpt2" else "silu")
    cc.setdefault("dropout_impl", "cpu_default" if c["arch"] == "gpt2" else "none")
    return derived.predict(cc)["total_bytes"]


def quantities(c):
    e = elem(c)
    b, s = c["b"], c["s"]
    numels = param_numels(c)
    P = sum(numels)
    W = P * e
    assert W == c["params_bytes"], (W, c["params_bytes"])
    q = {"e": e, "P": P, "W": W, "G": W, "B": c["buffers_bytes"], "n_t": len(numels),
             "S": 2 * W + 4 * len(numels),  # AdamW exp_avg + exp_avg_sq in the param dtype, fp32 step
             "tgt": b * s if b > 1 else s + 1, "pad": b * (s + 1) if b > 1 else 0}
    if c["mode"].startswith("train"):
        q["R"] = q["W"] + q["B"] + 16 * b * s  # weights, buffers, input ids and labels (int64)
        q["A"] = activations(c)
    else:
        q["R"] = q["W"] + q["B"] + 8 * b * s
        q["KV"] = c["L"] * kv_layer(c)
    return q


def optimizer_temp(c, q):
    """Largest AdamW temporary during step()."""
    if c.get("fused"):
        return 0
    if c.get("foreach"):
        # torch._foreach_sqrt(exp_avg_sqs): one tensor per parameter, all alive at once
        return q["W"]
    # single-tensor loop: denom = exp_avg_sq.sqrt() / bc2_sqrt; the previous parameter's denom is
    # still referenced when the next one is computed -> n[i-1] + 2 n[i]
    n = param_numels(c)
    return q["e"] * max([2 * n[0]] + [n[i - 1] + 2 * n[i] for i in range(1, len(n))])


# --------------------------------------------------------------------------------------------
# compact forms
# --------------------------------------------------------------------------------------------
def compact_train(c, q, iteration=2):
    """Phase points of a training step (iteration >= 2: optimizer state exists throughout)."""
    b, s, h, V, e = c["b"], c["s"], c["h"], c["V"], q["e"]
    S = q["S"] if iteration >= 2 else 0
    Ap = q["A"] - 8 * b * s  # the ids are counted in R
    upcast = 4 * b * s * V if e != 4 else 0  # HF loss: logits.float()
    out = {
        # inside the loss: all activations, the loss, e-logits, their fp32 copy, log-softmax output
        # (in A), the padded labels (b > 1)
        "end_of_forward": q["R"] + S + Ap + 4 + e * b * s * V + upcast + 8 * q["pad"],
        # first backward op: grad of nll (fp32 b·s·V) and of log-softmax (fp32 b·s·V); targets and
        # total_weight already released
        "start_of_backward": q["R"] + S + Ap + 8 * b * s * V - 8 * q["tgt"] + 4,
        # last backward op: all gradients, grad of the embedding output (and, tied GPT-2, the second
        # V·h gradient of wte plus the out-of-place sum)
        "end_of_backward": q["R"] + S + q["G"] + 8
        + (e * b * s * h if c["arch"] == "llama" else 2 * e * V * h),
        "optimizer_step": q["R"] + q["G"] + q["S"] + optimizer_temp(c, q),
        # backward of the lowest decoder layer (with checkpointing: its recomputation), bounded:
        # all gradients but the embedding's, one layer's full activations A_l, the grads of the
        # layer output and of the MLP product (2 e·bsh, 2 e·bsf), RoPE tables, position ids
        "bottom_layer": q["R"] + S + q["G"] - e * V * h + a_layer(dict(c, mode="train"))
        + 2 * e * b * s * h + 2 * e * b * s * c["f"] + 2 * e * s * (h // c["a"]) + 8 * s + 8,
    }
    return out


def compact_prefill(c, q):
    """Prefill peak (Llama): the last layer's MLP, eager attention's softmax, or the LM head.

    MLP of the last layer: all KV, the residual stream and the MLP input (2 e·bsh), gate/up/SiLU
    outputs (3 e·bsf), normed input and product (2 e·bsh), RoPE cos/sin (2 e·s·d), position ids
    (8 s); with eager attention also the 4-D mask (e·b·s²) and one e·b·a·s² probability tensor.
    Eager softmax: all KV, 4 e·bsh (+2 e·bsh: K and V expanded by repeat_kv, GQA), the mask, the
    scores (e·b·a·s² each for q·kᵀ and the masked sum, 4·b·a·s² fp32 softmax output and its e cast;
    in fp32 only 2·4·b·a·s²).
    LM head: all KV, the final hidden state (e·bsh) or, once it is freed, the fp32 copy of the last
    position's logits (4 b·V), and the logits of the kept positions (e·b·n·V).
    GPT-2 (eager, gelu_new composite, f = 4h): MLP point KV + 21 e·bsh + e·b·a·s² + mask e·b·s² +
    position embeddings e·s·h + ids 8 s; attention point KV + 6 e·bsh + 2 e·b·a·s² + the same."""
    b, s, h, V, e, f, a = c["b"], c["s"], c["h"], c["V"], q["e"], c["f"], c["a"]
    d = h // a
    n_keep = s if not c.get("logits_to_keep") else c["logits_to_keep"]
    cands = [q["KV"] + e * b * n_keep * V + max(e * b * s * h, 4 * b * V)]
    if c["arch"] == "llama":
        eager = c["attn"] == "eager"
        rope = 2 * e * s * d + 8 * s
        cands.append(q["KV"] + e * (4 * b * s * h + 3 * b * s * f) + rope
                     + (e * (b * s * s + b * a * s * s) if eager else 0))
        if eager:
            scores = (2 * e + (4 + e if e != 4 else 0)) * b * a * s * s
            gqa = 2 if c["kv_heads"] != a else 0  # repeat_kv's expanded K and V (a view for MHA)
            cands.append(q["KV"] + (4 + gqa) * e * b * s * h + e * b * s * s + scores + rope)
    else:  # GPT-2 (eager, f = 4h, gelu_new): MLP and attention of the last layer
        pos = e * b * s * s + e * s * h + 8 * s  # mask, position embeddings, position ids
        cands.append(q["KV"] + 21 * e * b * s * h + e * b * a * s * s + pos)
        cands.append(q["KV"] + 6 * e * b * s * h + 2 * e * b * a * s * s + pos)
    return q["R"] + max(cands)


def compact_decode(c, q, t):
    """Decode step t (cache s+t-1 -> s+t): the grown cache + the one old K or V that torch.cat is
    replacing (DynamicCache), or, with eager GQA attention, the K and V that repeat_kv expands to all a
    heads (one layer, after the cat); per-token tensors (b·h, b·a·(s+t) scores, b·V) are left out."""
    b, a, kv, d, e, n = c["b"], c["a"], c["kv_heads"], c["h"] // c["a"], q["e"], c["s"] + t
    expanded = 2 * b * a * n * d * e if (c["attn"] == "eager" and kv != a) else 0
    return q["R"] + c["L"] * kv_layer(c, n) + max(kv_layer(c, n - 1) // 2, expanded)


# --------------------------------------------------------------------------------------------
# exact forms (compact + in-layer terms)
# --------------------------------------------------------------------------------------------
def family_of(c):
    kvc = "any"
    if c["arch"] == "llama" and c["attn"] == "eager":
        kvc = "mha" if c["kv_heads"] == c["a"] else "gqa"
    if c["mode"] == "inference":
        ltk = 1 if c.get("logits_to_keep") else 0
        return f"inf_{c['arch']}_{c['dtype']}_{c['attn']}_{ltk}_{kvc}"
    return f"{c['arch']}_{c['dtype']}_{c['attn']}_{c['mode']}_{kvc}"


def _segment(c, fam, seg, known):
    F = features(c)
    f = forms()[fam].get(seg)
    events = [ev for ev in (f or {}).get("events", []) if len(ev) == 2]  # skip "approx" fits
    if not events:
        return None
    start = known + evalform(f["start"], F)
    return start + max(evalform(ev[1], F) for ev in events)


def exact_train(c, q, iteration=2):
    fam = family_of(c)
    L = c["L"]
    S = q["S"] if iteration >= 2 else 0
    Al, Gl = a_layer(c), g_layer(c)
    base = q["R"] + S
    comp = compact_train(c, q, iteration)
    fwd = [comp["end_of_forward"]]
    bwd = [comp["start_of_backward"], comp["end_of_backward"]]
    if fam in forms():
        for seg, known, lst in (("forward_2|layerTop", (L - 1) * Al, fwd),
                                ("forward_2|head", L * Al, fwd),
                                ("backward_2|head", L * Al, bwd),
                                ("backward_2|layerTop", (L - 1) * Al, bwd),
                                ("backward_2|layer0", (L - 1) * Gl, bwd),
                                ("backward_2|embed", L * Gl, bwd)):
            v = _segment(c, fam, seg, known)
            if v is not None:
                lst.append(base + v)
    return {"forward": max(fwd), "backward": max(bwd), "step": comp["optimizer_step"]}


def exact_prefill(c, q):
    fam = family_of(c)
    L = c["L"]
    cands = [compact_prefill(c, q)]
    if fam in forms():
        for seg, known in (("prefill|layerTop", (L - 1) * kv_layer(c)), ("prefill|head", L * kv_layer(c))):
            v = _segment(c, fam, seg, known)
            if v is not None:
                cands.append(q["R"] + v)
    return max(cands)


# --------------------------------------------------------------------------------------------
# check against measurements
# --------------------------------------------------------------------------------------------
def predict(c):
    q = quantities(c)
    out = {}
    if c["mode"].startswith("train"):
        for it, sfx in ((1, ""), (2, "_2")):
            ex = exact_train(c, q, it)
            for k, v in ex.items():
                out[k + sfx] = v
        comp = compact_train(c, q, 2)
        out["compact_peak"] = max(comp.values())
        out["compact"] = comp
        out["peak"] = max(v for k, v in out.items() if k in ("forward_2", "backward_2", "step_2", "step"))
    else:
        out["prefill"] = exact_prefill(c, q)
        out["compact_prefill"] = compact_prefill(c, q)
        for t in (1, 2, 3):
            out[f"decode_{t}"] = compact_decode(c, q, t)
        out["peak"] = max(out["prefill"], *(out[f"decode_{t}"] for t in (1, 2, 3)))
        out["compact_peak"] = max(out["compact_prefill"], *(out[f"decode_{t}"] for t in (1, 2, 3)))
    return out


def check(doc):
    """Rows (case, phase, predicted, measured) for every case and phase."""
    rows = []
    for c in doc["cases"]:
        if c.get("lora") or c.get("amp"):  # checked by formulas/peaks.formula directly (tests)
            continue
        p = predict(c)
        meas = dict(c["phase_peaks"])
        meas["peak"] = c["peak_bytes"]
        for k, v in meas.items():
            if k in p:
                rows.append((c, k, p[k], v))
        rows.append((c, "compact_peak", p["compact_peak"], c["peak_bytes"]))
    return rows


def group_key(c):
    extra = ""
    if c["mode"].startswith("train"):
        extra = "fused" if c.get("fused") else ("foreach" if c["foreach"] else "single")
        extra += "+amp" if c.get("amp") else ""
    else:
        extra = f"ltk={c['logits_to_keep']}"
    return f"{c['arch']} {c['dtype']} {c['attn']} {c['mode']} {extra}"


def summary(rows):
    agg = collections.defaultdict(lambda: [0, 0.0, 0, 0])  # max |err| B, max rel, n, n exact
    for c, k, pred, meas in rows:
        key = (group_key(c), k)
        err = float(pred - meas)
        a = agg[key]
        if abs(err) > abs(a[0]):
            a[0] = err
        a[1] = max(a[1], abs(err) / meas)
        a[2] += 1
        a[3] += pred == meas
    return agg


REALISTIC = {  # name: (h, a, kv, f, L, V)
    "llama2-7b-like": (4096, 32, 32, 11008, 32, 32000),
    "llama3-8b-like": (4096, 32, 8, 14336, 32, 128256),
}


def synthetic(arch="llama", dtype="bf16", attn="sdpa", mode="train", *, b, s, h, a, kv_heads, f, L, V,
              foreach=False, fused=False, logits_to_keep=0):
    """A case dict for a shape that was not measured (buffers taken as 0)."""
    c = {"arch": arch, "dtype": dtype, "attn": attn, "mode": mode, "b": b, "s": s, "h": h, "a": a, "kv_heads": kv_heads, "f": f,
             "L": L, "V": V, "foreach": foreach, "fused": fused, "logits_to_keep": logits_to_keep, "buffers_bytes": 0}
    c["params_bytes"] = sum(param_numels(c)) * elem(c)
    return c


def phase_table(c):
    """Every candidate phase point of the exact model, in bytes (extrapolation for unmeasured shapes)."""
    q = quantities(c)
    if c["mode"].startswith("train"):
        comp = compact_train(c, q, 2)
        ex = exact_train(c, q, 2)
        return {**comp, "forward (exact)": ex["forward"], "backward (exact)": ex["backward"]}
    return {"prefill (compact)": compact_prefill(c, q), "prefill (exact)": exact_prefill(c, q),
            "decode_1": compact_decode(c, q, 1), "KV cache": q["KV"], "weights": q["W"]}


def print_realistic():
    gib = 2 ** 30
    for name, (h, a, kv, f, L, V) in REALISTIC.items():
        for mode in ("train", "train_ckpt"):
            for b, s in ((1, 4096), (8, 2048)):
                for foreach in (False, True):
                    c = synthetic(mode=mode, b=b, s=s, h=h, a=a, kv_heads=kv, f=f, L=L, V=V, foreach=foreach)
                    t = phase_table(c)
                    top = max(t, key=t.get)
                    print(f"{name} bf16 sdpa {mode:10s} b={b} s={s} {'foreach' if foreach else 'single '}: "
                          + ", ".join(f"{k}={float(v) / gib:.2f}" for k, v in t.items()) + f"  -> {top}")
        for b, s in ((1, 4096), (8, 2048)):
            for ltk in (0, 1):
                c = synthetic(mode="inference", b=b, s=s, h=h, a=a, kv_heads=kv, f=f, L=L, V=V, logits_to_keep=ltk)
                t = phase_table(c)
                print(f"{name} bf16 sdpa inference b={b} s={s} logits_to_keep={ltk}: "
                      + ", ".join(f"{k}={float(v) / gib:.2f}" for k, v in t.items()))


def markdown_table(rows):
    """The check table of PEAKS.md (largest predicted - measured per family and phase group)."""
    groups = {"forward": "forward", "forward_2": "forward", "backward": "backward",
              "backward_2": "backward", "step": "step", "step_2": "step", "prefill": "prefill",
              "peak": "peak", "compact_peak": "compact_peak"}
    agg = {}
    for c, k, pred, meas in sorted(rows, key=lambda r: group_key(r[0])):
        g = "decode" if k.startswith("decode") else groups.get(k)
        if g is None:
            continue
        a = agg.setdefault(group_key(c), {}).setdefault(g, [0.0, 0.0, set(), 0, 0])
        err = float(pred - meas)
        if abs(err) > abs(a[0]):
            a[0] = err
        a[1] = max(a[1], abs(err) / meas)
        a[2].add(id(c))
        a[3] += 1
        a[4] += pred == meas

    def cell(x):
        if x is None:
            return "–"
        e, r, _, n, nx = x
        return f"0 ({n}/{n} exact)" if nx == n else f"{e:+.0f} B / {r:.2%} ({nx}/{n})"

    out = [("| family | cases | forward | backward | step | prefill | decode (compact) | peak, exact model "
           "| peak, compact model |"), "|---|---|---|---|---|---|---|---|---|"]
    for g, a in agg.items():
        cols = [cell(a.get(k)) for k in ("forward", "backward", "step", "prefill", "decode", "peak",
                                         "compact_peak")]
        out.append(f"| {g} | {len(a['peak'][2])} | " + " | ".join(cols) + " |")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default="tests/data/measured/peaks.json")
    ap.add_argument("--cases", action="store_true", help="print every case")
    ap.add_argument("--markdown", action="store_true", help="print the check table of PEAKS.md")
    ap.add_argument("--realistic", action="store_true",
                    help="extrapolate the formulas to 7B/8B-like shapes (GiB; not measured)")
    args = ap.parse_args(argv)
    if args.realistic:
        print_realistic()
        return
    doc = json.loads(pathlib.Path(args.json).read_text())
    rows = check(doc)
    if args.markdown:
        print(markdown_table(rows))
        return
    if args.cases:
        for c, k, pred, meas in rows:
            print(f"{group_key(c):45s} b{c['b']}s{c['s']}h{c['h']}a{c['a']}kv{c['kv_heads']}f{c['f']}"
                  f"L{c['L']}V{c['V']} {k:14s} pred={float(pred):.0f} meas={meas} "
                  f"err={float(pred - meas):+.0f} ({float(pred - meas) / meas:+.2%})")
    print(f"{'family':45s} {'phase':14s} {'n':>3s} {'exact':>5s} {'max err B':>11s} {'max rel':>8s}")
    for (g, k), (e, r, n, nx) in sorted(summary(rows).items()):
        print(f"{g:45s} {k:14s} {n:3d} {nx:5d} {e:+11.0f} {r:8.2%}")


if __name__ == "__main__":
    main()
