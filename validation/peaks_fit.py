"""Derive the in-layer terms of the peak formulas from op-level event logs on random small shapes.

    python -m validation.peaks_fit --out validation/peak_forms.json      # ~15 min on 2 cores

For each family (arch, dtype, attention, mode) this runs ``validation.peaks`` with the event log on
(every local maximum of live bytes inside a segment: the embedding, each decoder layer, the head; of
the forward, the backward, or an inference prefill) for N random shapes, then

* fits the live bytes at the START of each segment, minus the known model terms (i·A_layer,
  (L-1-i)·G_layer, i·KV_layer, ...), as an exact rational linear form in the shape monomials below;
* fits every event of the segment (bytes above the segment start) the same way, within groups of
  shapes that run the same op sequence (b = 1 and the no-op ``repeat_kv`` of MHA change it);
* keeps the events that are the segment's maximum for some measured shape or for a set of large
  realistic shapes (evaluated with the fitted forms), and writes their forms to JSON.

The forms are checked against the independent case grid of ``validation.peaks`` by
``validation.peaks_derived``.  Monomials (all in elements, the coefficients carry the bytes):
bsh=b·s·h, bsf=b·s·f, bs=b·s, bas2=b·a·s², bas=b·a·s, bskvd=b·s·kv·d, bs2=b·s², sd=s·d, sh=s·h,
s, 1, h2=h·h, hkvd=h·kv·d, hf=h·f, h, bsV=b·s·V, Vh=V·h, bV=b·V, bh=b·h,
tgt = b·s if b > 1 else s+1 (the int64 loss targets), pad = b·(s+1) if b > 1 else 0.
"""
from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import time
import warnings
from fractions import Fraction

from vram_eval.lab import write_json

FEATURES = ["bsh", "bsf", "bs", "bas2", "bas", "bskvd", "bs2", "sd", "sh", "s", "1", "h2", "hkvd",
            "hf", "h", "bsV", "Vh", "bV", "bh", "tgt", "pad"]
# GPT-2 has f = 4h and kv = a: drop the collinear monomials
GPT2_FEATURES = ["bV", "bh", "bsh", "bs", "bas2", "bas", "bs2", "sh", "s", "1", "h2", "h", "bsV",
                 "Vh", "tgt", "pad"]

TRAIN_SEGMENTS = ["forward_2|layerTop", "forward_2|head", "backward_2|head", "backward_2|layerTop",
                  "backward_2|layer0", "backward_2|embed"]
INFER_SEGMENTS = ["prefill|layerTop", "prefill|head"]

FAMILIES = [  # (arch, dtype, attn, mode, kv class, logits_to_keep, N)
    ("llama", "bf16", "sdpa", "train", "any", None, 48),
    ("llama", "bf16", "sdpa", "train_ckpt", "any", None, 48),
    ("llama", "bf16", "eager", "train", "mha", None, 48),
    ("llama", "bf16", "eager", "train_ckpt", "mha", None, 48),
    ("llama", "bf16", "eager", "train", "gqa", None, 96),
    ("llama", "bf16", "eager", "train_ckpt", "gqa", None, 96),
    ("llama", "fp32", "sdpa", "train", "any", None, 40),
    ("llama", "fp32", "sdpa", "train_ckpt", "any", None, 40),
    ("llama", "fp32", "eager", "train", "mha", None, 40),
    ("llama", "fp32", "eager", "train_ckpt", "mha", None, 40),
    ("gpt2", "bf16", "eager", "train", "any", None, 48),
    ("gpt2", "bf16", "eager", "train_ckpt", "any", None, 48),
    ("gpt2", "fp32", "eager", "train", "any", None, 40),
    ("gpt2", "fp32", "eager", "train_ckpt", "any", None, 40),
    ("llama", "bf16", "sdpa", "inference", "any", 0, 40),
    ("llama", "bf16", "sdpa", "inference", "any", 1, 40),
    ("llama", "bf16", "eager", "inference", "mha", 0, 40),
    ("llama", "bf16", "eager", "inference", "mha", 1, 40),
    ("llama", "bf16", "eager", "inference", "gqa", 0, 96),
    ("llama", "bf16", "eager", "inference", "gqa", 1, 96),
    ("llama", "fp32", "sdpa", "inference", "any", 0, 40),
    ("llama", "fp32", "sdpa", "inference", "any", 1, 40),
    ("llama", "fp32", "eager", "inference", "mha", 0, 40),
    ("llama", "fp32", "eager", "inference", "mha", 1, 40),
    ("gpt2", "bf16", "eager", "inference", "any", 0, 40),
    ("gpt2", "bf16", "eager", "inference", "any", 1, 40),
    ("gpt2", "fp32", "eager", "inference", "any", 0, 40),
    ("gpt2", "fp32", "eager", "inference", "any", 1, 40),
]

# large shapes on which an event may win even if it never wins on the small measured shapes
REALISTIC = [(4096, 32, 32, 11008, 32000), (4096, 32, 8, 14336, 128256), (2048, 16, 16, 5632, 32000),
             (768, 12, 12, 3072, 50257)]


def family_name(arch, dtype, attn, mode, kvc, ltk):
    if mode == "inference":
        return f"inf_{arch}_{dtype}_{attn}_{ltk}_{kvc}"
    return f"{arch}_{dtype}_{attn}_{mode}_{kvc}"


def features(c):
    b, s, h, a, kv, f, V = (c[k] for k in ("b", "s", "h", "a", "kv_heads", "f", "V"))
    d = h // a
    return {"bsh": b * s * h, "bsf": b * s * f, "bs": b * s, "bas2": b * a * s * s, "bas": b * a * s,
            "bskvd": b * s * kv * d, "bs2": b * s * s, "sd": s * d, "sh": s * h, "s": s, "1": 1,
            "h2": h * h, "hkvd": h * kv * d, "hf": h * f, "h": h, "bsV": b * s * V, "Vh": V * h,
            "bV": b * V, "bh": b * h, "tgt": b * s if b > 1 else s + 1, "pad": b * (s + 1) if b > 1 else 0}


def elem(c):
    return {"bf16": 2, "fp32": 4}[c["dtype"]]


def a_layer(c):
    """Stored activations of one layer (validation/derived.py); e·b·s·h with checkpointing."""
    from validation import derived

    e = elem(c)
    b, s, h, a, kv, f = (c[k] for k in ("b", "s", "h", "a", "kv_heads", "f"))
    if c["mode"] == "train_ckpt":
        return e * b * s * h
    if c["arch"] == "llama":
        return derived.llama_layer(b, s, h, a, kv, f, e, c["attn"])
    return derived.gpt2_layer(b, s, h, a, f, e, c["attn"])


def g_layer(c):
    """Gradient bytes of one decoder layer (= its parameter bytes)."""
    e = elem(c)
    h, a, kv, f = c["h"], c["a"], c["kv_heads"], c["f"]
    d = h // a
    if c["arch"] == "llama":
        return e * (2 * h * a * d + 2 * h * kv * d + 3 * h * f + 2 * h)
    return e * (12 * h * h + 13 * h)


def kv_layer(c, s=None):
    s = c["s"] if s is None else s
    return 2 * c["b"] * c["kv_heads"] * s * (c["h"] // c["a"]) * elem(c)


def known_start(c, seg):
    """Model terms subtracted from a segment's start before the fit (see PEAKS.md)."""
    L = c["L"]
    ph, name = seg.split("|")
    i = {"layer0": 0, "layerTop": L - 1}.get(name)
    if ph == "prefill":
        return i * kv_layer(c) if i is not None else (L * kv_layer(c) if name == "head" else 0)
    if ph == "forward_2":
        if i is not None:
            return i * a_layer(c)
        return L * a_layer(c) if name == "head" else 0
    if name == "head":
        return L * a_layer(c)
    if i is not None:
        return i * a_layer(c) + (L - 1 - i) * g_layer(c)
    return L * g_layer(c)  # embed


def resident(c):
    """Bytes outside the segment terms: weights, buffers, ids (+labels) and, in training, the
    optimizer state (steady state, iteration 2)."""
    W = c["params_bytes"]
    if c["mode"] == "inference":
        return W + c["buffers_bytes"] + 8 * c["b"] * c["s"]
    return W + c["buffers_bytes"] + 16 * c["b"] * c["s"] + 2 * W + 4 * c["n_param_tensors"]


# --------------------------------------------------------------------------------------------
def random_shapes(arch, kvc, n, seed):
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        a = rng.choice([2, 4, 8])
        d = rng.choice([16, 32])
        h = a * d
        if arch == "llama":
            kvs = [x for x in (1, 2, 4, 8) if a % x == 0 and (kvc == "any" or (kvc == "mha") == (x == a))]
            kv = rng.choice(kvs)
            f = rng.choice([96, 160, 224, 352])
        else:
            kv, f = a, 4 * h
        b = rng.choice([1, 2, 3, 4])
        if arch == "llama" and kvc == "gqa" and kv == 1:
            continue  # MQA: repeat_kv's reshape is a view (no expanded copy); not covered, see PEAKS.md
        out.append({"b": b, "s": rng.choice([16, 24, 40, 64]), "h": h, "a": a, "kv_heads": kv, "f": f,
                        "L": rng.choice([2, 3]), "V": rng.choice([64, 200, 500, 900])})
    return out


def collect(arch, dtype, attn, mode, kvc, ltk, n):
    import torch

    from vram_eval.lab import peaks

    rows = []
    for sh in random_shapes(arch, kvc, n, seed=0 if mode != "inference" else 1):
        c = dict(arch=arch, dtype=dtype, attn=attn, mode=mode, **sh)
        model = peaks._build(c)
        g = torch.Generator().manual_seed(1)
        ids = torch.randint(0, c["V"], (c["b"], c["s"]), generator=g)
        if mode == "inference":
            model.eval()
            tr, _, _ = peaks.measure_inference(model, ids, logits_to_keep=ltk, log_phases=("prefill",))
        else:
            if mode == "train_ckpt":
                model.gradient_checkpointing_enable()
            model.train()
            tr, _, _ = peaks.measure_train(model, ids, ids.clone(), foreach=False,
                                           log_phases=("forward_2", "backward_2"))
        c.update(params_bytes=sum(p.untyped_storage().nbytes() for p in model.parameters()),
                 buffers_bytes=sum(x.untyped_storage().nbytes() for x in model.buffers()),
                 n_param_tensors=len(list(model.parameters())))
        rows.append({"case": c, "events": {f"{p}|{s}": v for (p, s), v in tr.events.items()},
                         "starts": {f"{p}|{s}": v for (p, s), v in tr.seg_start.items()}})
    return rows


def fit(rows, names):
    """Least squares, then rational rounding; returns ({name: Fraction}, max abs error)."""
    import torch

    X = torch.tensor([[r[0][n] for n in names] for r in rows], dtype=torch.float64)
    y = torch.tensor([r[1] for r in rows], dtype=torch.float64)
    sol = torch.linalg.lstsq(X, y.unsqueeze(1), driver="gelsd").solution.squeeze(1).tolist()
    fr = {n: Fraction(v).limit_denominator(16) for n, v in zip(names, sol)}
    err = max(abs(r[1] - sum(fr[n] * r[0][n] for n in names)) for r in rows)
    return {n: v for n, v in fr.items() if v}, err


def fmt(form):
    s = " + ".join(f"{v}*{n}" for n, v in form.items()).replace("+ -", "- ")
    return s or "0"


def derive(rows, segments):
    arch = rows[0]["case"]["arch"]
    names = GPT2_FEATURES if arch == "gpt2" else FEATURES
    res = {}
    for seg in segments:
        starts = []
        groups = collections.defaultdict(list)
        for r in rows:
            c = r["case"]
            key = seg.replace("layerTop", f"layer{c['L'] - 1}")
            if key not in r["starts"]:
                continue
            starts.append((features(c), r["starts"][key] - resident(c) - known_start(c, seg)))
            ev = r["events"].get(key, [])
            groups[tuple(e[2] for e in ev)].append((c, ev))
        sform, serr = fit(starts, names)
        # the largest group that is not b = 1 only
        cand = [(len(g), sig) for sig, g in groups.items() if any(c["b"] > 1 for c, _ in g)]
        n, sig = max(cand)
        g = groups[sig]
        exprs = [fit([(features(c), ev[k][0]) for c, ev in g], names) for k in range(len(sig))]
        win = set()
        for c, ev in g:
            vals = [e[0] for e in ev]
            win.add(vals.index(max(vals)))
        for (h, a, kv, f, V) in REALISTIC:
            for b in (2, 8):
                for s in (512, 2048, 8192):
                    c = {"b": b, "s": s, "h": h, "a": a, "kv_heads": kv if arch == "llama" else a,
                             "f": f if arch == "llama" else 4 * h, "V": V}
                    F = features(c)
                    vals = [sum(v * F[k] for k, v in e[0].items()) for e in exprs]
                    win.add(vals.index(max(vals)))
        events = []
        for k in sorted(win):
            form, err = exprs[k]
            ev = [f"{g[0][1][k][1]}/{sig[k]}", fmt(form)]
            if err:
                ev.append(f"approx (fit error up to {float(err):.0f} B on {n} shapes)")
            events.append(ev)
        res[seg] = {"start": fmt(sform), "events": events}
        if serr:
            res[seg]["start_note"] = f"approx (fit error up to {float(serr):.0f} B)"
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default=None, help="only families whose name contains this")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    doc = {"description": __doc__.split("\n\n")[1].strip(), "families": {}}
    if args.only:  # update the families selected, keep the others
        try:
            with open(args.out) as fh:
                doc["families"] = json.load(fh)["families"]
        except OSError:
            pass
    t0 = time.time()
    for fam in FAMILIES:
        name = family_name(*fam[:6])
        if args.only and args.only not in name:
            continue
        t = time.time()
        rows = collect(*fam)
        segs = INFER_SEGMENTS if fam[3] == "inference" else TRAIN_SEGMENTS
        doc["families"][name] = derive(rows, segs)
        print(f"{name}: {len(rows)} shapes ({time.time() - t:.0f}s)", file=sys.stderr)
    write_json(args.out, doc)
    print(f"wrote {args.out} in {time.time() - t0:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
