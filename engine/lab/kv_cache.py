"""Measure the KV-cache bytes of small HF decoder models on the CPU.

    python -m vram_eval.lab.kv_cache --out tests/data/measured/kv_cache.json        # validation venv (torch)
    python -m vram_eval.lab.kv_cache --report tests/data/measured/kv_cache.json \\
        --md validation/KV_CACHE.md                                                 # project venv (engine)

Every case builds a random-weight model from a config (nothing is downloaded), casts it to fp16 or
bf16, puts it in eval mode and runs one forward pass of ``input_ids (b, s)`` with ``use_cache=True``
("prefill"), then ``decode_steps`` single-token forward passes that feed the returned cache back
(or, for ``method == "generate"``, ``model.generate`` with ``max_new_tokens = decode_steps + 1``,
which feeds back all but the last new token).  The cache object is then walked attribute by
attribute: every tensor it holds is found, and the bytes of their storages are summed, each storage
counted once (keyed by ``untyped_storage().data_ptr()``).  ``kv_bytes`` counts the storages of the
per-layer ``keys``/``values`` tensors; ``cache_all_tensor_bytes`` counts every tensor the cache
holds (e.g. the int64 ``_sliding_window_tensor`` of sliding-window layers).  See
validation/KV_CACHE.md.  Nothing here runs at import time; torch is imported only by the measuring
functions, the engine only by the report.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings

from . import write_json

DTYPE_BYTES = {"fp16": 2, "bf16": 2, "fp32": 4}

# (b, s) of the prefill; decoding adds DECODE_STEPS tokens.
SHAPES = [(1, 16), (2, 64), (4, 128)]
DECODE_STEPS = 3
# Llama attention variants with h = 256, a = 8 (h / a = 32): (kv_heads, head_dim or None).
LLAMA_ATTN = [
    (8, None),   # MHA
    (4, None),   # GQA, a / 2
    (2, None),   # GQA, a / 4
    (1, None),   # MQA
    (2, 64),     # GQA with head_dim != h / a
    (1, 48),     # MQA with head_dim != h / a
]
BASE = dict(h=256, a=8, f=688, V=1000, s_max=4096)
GPT2_BASE = dict(h=256, f=1024, V=1000, s_max=4096)


# --------------------------------------------------------------------------------------------
# case grid
# --------------------------------------------------------------------------------------------
def config_list():
    """The model/workload configurations; each yields a prefill and a decode record."""
    cfgs = []
    for dtype in ("fp16", "bf16"):
        for b, s in SHAPES:
            for L in (2, 4):
                for kv, d in LLAMA_ATTN:
                    cfgs.append(dict(arch="llama", dtype=dtype, b=b, s=s, L=L, kv_heads=kv,
                                     head_dim=d, **BASE))
            # Mistral (sliding_window = 4096 by default: longer than any s here) and Qwen2
            # (q/k/v biases, no sliding window), GQA and MQA.
            for kv in (2, 1):
                cfgs.append(dict(arch="mistral", dtype=dtype, b=b, s=s, L=2, kv_heads=kv,
                                 head_dim=None, sliding_window=4096, **BASE))
                cfgs.append(dict(arch="qwen2", dtype=dtype, b=b, s=s, L=2, kv_heads=kv,
                                 head_dim=None, **BASE))
            # GPT-2: MHA, learned positions, one fused c_attn projection.
            for a in (4, 8):
                for L in (2, 4):
                    cfgs.append(dict(arch="gpt2", dtype=dtype, b=b, s=s, L=L, a=a, kv_heads=a,
                                     head_dim=None, **GPT2_BASE))
    for c in cfgs:
        if c["head_dim"] is None:
            c["head_dim"] = c["h"] // c["a"]
        c.setdefault("sliding_window", None)
    return cfgs


def sliding_config_list():
    """Mistral with a sliding window shorter than (some of) the sequences: not modelled by kv_cache."""
    cfgs = []
    for dtype in ("bf16",):
        for b, s in SHAPES:
            for kv in (2, 1):
                cfgs.append(dict(arch="mistral", dtype=dtype, b=b, s=s, L=2, kv_heads=kv,
                                 head_dim=32, sliding_window=32, **BASE))
    return cfgs


def generate_config_list():
    """A few cases run through model.generate instead of a hand-written decode loop."""
    return [
        dict(arch="llama", dtype="bf16", b=2, s=64, L=2, kv_heads=2, head_dim=64, sliding_window=None, **BASE),
        dict(arch="llama", dtype="fp16", b=4, s=128, L=4, kv_heads=1, head_dim=32, sliding_window=None, **BASE),
        dict(arch="gpt2", dtype="bf16", b=2, s=64, L=2, a=4, kv_heads=4, head_dim=64, sliding_window=None,
             **GPT2_BASE),
        dict(arch="mistral", dtype="bf16", b=2, s=64, L=2, kv_heads=2, head_dim=32, sliding_window=4096, **BASE),
    ]


def sliding_generate_config_list():
    """model.generate with a sliding window shorter than the sequence."""
    return [dict(arch="mistral", dtype="bf16", b=2, s=64, L=2, kv_heads=2, head_dim=32, sliding_window=32, **BASE)]


# --------------------------------------------------------------------------------------------
# model construction
# --------------------------------------------------------------------------------------------
def build_model(c, seed=0):
    """Random-weight model from a config, cast to c['dtype'], in eval mode."""
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    h, a, kv, d, L, V, f = (c[k] for k in ("h", "a", "kv_heads", "head_dim", "L", "V", "f"))
    common = dict(hidden_size=h, num_attention_heads=a, num_key_value_heads=kv, head_dim=d,
                  intermediate_size=f, num_hidden_layers=L, vocab_size=V,
                  max_position_embeddings=c["s_max"], tie_word_embeddings=False,
                  bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if c["arch"] == "llama":
        model = tf.LlamaForCausalLM(tf.LlamaConfig(**common))
    elif c["arch"] == "mistral":
        model = tf.MistralForCausalLM(tf.MistralConfig(sliding_window=c["sliding_window"], **common))
    elif c["arch"] == "qwen2":
        model = tf.Qwen2ForCausalLM(tf.Qwen2Config(use_sliding_window=False, **common))
    elif c["arch"] == "gpt2":
        assert kv == a and d == h // a and f == 4 * h, "GPT-2: MHA, head_dim = h/a, f = 4h"
        model = tf.GPT2LMHeadModel(tf.GPT2Config(n_embd=h, n_head=a, n_layer=L, vocab_size=V,
                                                 n_positions=c["s_max"], bos_token_id=1,
                                                 eos_token_id=2, pad_token_id=0))
    else:
        raise ValueError(c["arch"])
    model = model.to({"fp16": torch.float16, "bf16": torch.bfloat16}[c["dtype"]])
    model.train(False)  # inference mode: dropout off
    return model


# --------------------------------------------------------------------------------------------
# what the cache holds
# --------------------------------------------------------------------------------------------
def cache_tensors(obj, path="cache", seen=None):
    """Every (path, tensor) reachable from a cache object through attributes, lists, tuples and dicts."""
    import torch

    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return [(path, obj)]
    out = []
    if isinstance(obj, (list, tuple)):
        for i, x in enumerate(obj):
            out += cache_tensors(x, f"{path}[{i}]", seen)
    elif isinstance(obj, dict):
        for k, x in obj.items():
            out += cache_tensors(x, f"{path}[{k!r}]", seen)
    elif hasattr(obj, "__dict__") and not isinstance(obj, (type, torch.device, torch.dtype)):
        for k, x in vars(obj).items():
            out += cache_tensors(x, f"{path}.{k}", seen)
    return out


def storage_bytes(tensors):
    """Bytes of the distinct storages behind the tensors (each storage counted once)."""
    sizes = {}
    for t in tensors:
        st = t.untyped_storage()
        sizes[st.data_ptr()] = st.nbytes()
    return sum(sizes.values())


_KV = re.compile(r"^cache\.layers\[\d+\]\.(keys|values)$")


def measure_cache(cache, b, kv_heads, head_dim):
    """Byte counts and shapes of what a cache object holds."""
    found = cache_tensors(cache)
    kv = [t for p, t in found if _KV.match(p)]
    other = [(p, t) for p, t in found if not _KV.match(p)]
    layers = cache.layers
    kept = {int(l.keys.shape[-2]) for l in layers}
    assert len(kept) == 1, kept
    kept = kept.pop()
    per_token = b * kv_heads * head_dim * layers[0].keys.element_size()
    per_layer = [storage_bytes([l.keys, l.values]) for l in layers]
    for l in layers:
        assert tuple(l.keys.shape) == tuple(l.values.shape) == (b, kv_heads, kept, head_dim), l.keys.shape
    kv_storage = storage_bytes(kv)
    return dict(
        cache_class=type(cache).__name__,
        layer_classes=sorted({type(l).__name__ for l in layers}),
        kv_dtype_torch=str(layers[0].keys.dtype),
        tokens_in_cache=int(cache.get_seq_length()),
        tokens_kept=kept,
        kv_bytes=kv_storage,
        kv_tensor_nbytes=sum(t.nbytes for t in kv),
        kv_storage_tokens=kv_storage // (2 * len(layers) * per_token),
        per_layer_kv_bytes=per_layer,
        kv_contiguous=all(t.is_contiguous() for t in kv),
        kv_storage_offsets=sorted({int(t.storage_offset()) for t in kv}),
        cache_all_tensor_bytes=storage_bytes([t for _, t in found]),
        n_cache_tensors=len(found),
        other_tensors=[dict(path=p, dtype=str(t.dtype), shape=list(t.shape), nbytes=t.nbytes,
                            storage_nbytes=t.untyped_storage().nbytes()) for p, t in other],
    )


# --------------------------------------------------------------------------------------------
# one configuration: prefill record + decode record
# --------------------------------------------------------------------------------------------
def run_config(c, decode_steps=DECODE_STEPS, method="forward"):
    """Records (dicts) for the configuration c: after prefill, and after decode_steps more tokens."""
    import torch

    model = build_model(c)
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(3, c["V"], (c["b"], c["s"]), generator=gen)
    base = {k: c[k] for k in ("arch", "dtype", "b", "s", "h", "a", "kv_heads", "head_dim", "L", "V", "f",
                              "s_max", "sliding_window")}
    records = []
    with torch.no_grad():
        if method == "generate":
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=decode_steps + 1,
                                 min_new_tokens=decode_steps + 1, do_sample=False,
                                 return_dict_in_generate=True)
            cache = out["cache"] if "cache" in out else out["past_key_values"]
            m = measure_cache(cache, c["b"], c["kv_heads"], c["head_dim"])
            assert m["tokens_in_cache"] == c["s"] + decode_steps, m
            records.append(dict(base, method=method, decode_steps=decode_steps, **m))
            return records
        out = model(ids, use_cache=True)
        cache = out["cache"] if "cache" in out else out["past_key_values"]
        m = measure_cache(cache, c["b"], c["kv_heads"], c["head_dim"])
        assert m["tokens_in_cache"] == c["s"], m
        records.append(dict(base, method=method, decode_steps=0, **m))
        growth = []
        prev = m["kv_bytes"]
        for _ in range(decode_steps):
            nxt = out["logits"][:, -1:].argmax(-1)
            out = model(nxt, cache=cache, use_cache=True)
            new_cache = out["cache"] if "cache" in out else out["past_key_values"]
            assert new_cache is cache, "the cache object is updated in place"
            kvb = measure_cache(cache, c["b"], c["kv_heads"], c["head_dim"])["kv_bytes"]
            growth.append(kvb - prev)
            prev = kvb
        m = measure_cache(cache, c["b"], c["kv_heads"], c["head_dim"])
        assert m["tokens_in_cache"] == c["s"] + decode_steps, m
        records.append(dict(base, method=method, decode_steps=decode_steps, growth_per_step_bytes=growth, **m))
    return records


def versions():
    import platform

    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "device": "cpu",
            "torch_num_threads": torch.get_num_threads()}


def measure_all(log=sys.stderr):
    """The whole JSON document."""
    t0 = time.time()
    groups = (("cases", config_list(), "forward"), ("generate_cases", generate_config_list(), "generate"),
              ("sliding_window_cases", sliding_config_list(), "forward"),
              ("sliding_window_cases", sliding_generate_config_list(), "generate"))
    doc = {}
    for key, cfgs, method in groups:
        recs = doc.setdefault(key, [])
        for i, c in enumerate(cfgs):
            t = time.time()
            r = run_config(c, method=method)
            recs += r
            print(f"[{key} {i + 1}/{len(cfgs)}] {c['arch']} {c['dtype']} b={c['b']} s={c['s']} h={c['h']} "
                  f"a={c['a']} kv={c['kv_heads']} d={c['head_dim']} L={c['L']} sw={c['sliding_window']}: "
                  + ", ".join(f"dec{x['decode_steps']} tokens={x['tokens_in_cache']} kv={x['kv_bytes']} "
                              f"all={x['cache_all_tensor_bytes']}" for x in r)
                  + f" ({time.time() - t:.1f}s)", file=log)
    return doc, time.time() - t0


# --------------------------------------------------------------------------------------------
# predicted vs measured (project venv: needs the engine, not torch)
# --------------------------------------------------------------------------------------------
def formula_sets(c, s=None):
    """vram-eval --set texts for a measured record (s defaults to the tokens in the cache)."""
    from .cases import kv_sets

    return kv_sets(c, s)


def predict(c, s=None):
    """(kv_cache, kv_cache_per_token) from vram-eval's formulas, as ints."""
    from ..forward import evaluate
    from ..problem import load

    problem = load(None, formula_sets(c, s), [], gpu=None)
    r = evaluate(problem.ruleset, problem.bindings, spec=problem.spec_path, title=problem.title)
    return int(r["kv_cache"]), int(r["kv_cache_per_token"])


def _row(c, s=None):
    p, per_tok = predict(c, s)
    ok = "yes" if p == c["kv_bytes"] else "**no**"
    extra = c["cache_all_tensor_bytes"] - c["kv_bytes"]
    return (f"| {c['arch']} | {c['dtype']} | {c['method']} | {c['b']} | {c['s']} | {c['decode_steps']} | "
            f"{c['tokens_in_cache']} | {c['h']} | {c['a']} | {c['kv_heads']} | {c['head_dim']} | {c['L']} | "
            f"{c['sliding_window'] or '-'} | {p} | {c['kv_bytes']} | {ok} | {extra} |"), p == c["kv_bytes"]


HEADER = ("| arch | dtype | method | b | s | decode | tokens | h | a | kv | head_dim | L | window | "
          "predicted kv_cache | measured kv_bytes | exact | extra cache bytes |\n"
          "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")


def report_md(doc):
    lines = []
    rows = [_row(c) for c in doc["cases"] + doc.get("generate_cases", [])]
    n_ok = sum(ok for _, ok in rows)
    lines.append(f"{n_ok} of {len(rows)} full-attention records match `kv_cache` exactly "
                 f"(s = tokens in the cache).\n")
    lines.append(HEADER)
    lines += [r for r, _ in rows]
    sw = doc.get("sliding_window_cases", [])
    if sw:
        lines.append("\nSliding window (Mistral, `sliding_window = 32`). `predicted` uses s = tokens in the "
                     "cache; `capped` uses s = min(tokens, window) after a decode step, s = tokens after "
                     "prefill (what the storages really hold).\n")
        lines.append("| dtype | method | b | s | decode | tokens | kept (tensor) | storage tokens | kv | "
                     "predicted (s = tokens) | capped rule | measured kv_bytes | capped exact | tensor nbytes |\n"
                     "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
        for c in sw:
            p, _ = predict(c)
            s_cap = c["tokens_in_cache"] if c["decode_steps"] == 0 else min(c["tokens_in_cache"], c["sliding_window"])
            pc, _ = predict(c, s_cap)
            lines.append(f"| {c['dtype']} | {c['method']} | {c['b']} | {c['s']} | {c['decode_steps']} | {c['tokens_in_cache']} | "
                         f"{c['tokens_kept']} | {c['kv_storage_tokens']} | {c['kv_heads']} | {p} | {pc} | "
                         f"{c['kv_bytes']} | {'yes' if pc == c['kv_bytes'] else '**no**'} | {c['kv_tensor_nbytes']} |")
    return "\n".join(lines) + "\n"


def replace_section(text, name, body):
    pat = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(<!-- END {name} -->)", re.S)
    assert pat.search(text), f"no section {name}"
    return pat.sub(lambda m: m.group(1) + body + m.group(2), text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="measure (validation venv) and write this JSON")
    ap.add_argument("--report", help="a measured JSON to compare with the formulas (project venv)")
    ap.add_argument("--md", help="with --report: rewrite the generated sections of this Markdown file")
    args = ap.parse_args(argv)
    if bool(args.out) == bool(args.report):
        ap.error("give exactly one of --out and --report")

    if args.out:
        warnings.filterwarnings("ignore")
        import transformers

        transformers.logging.set_verbosity_error()
        doc, elapsed = measure_all()
        full = {
            "description": (
                "KV-cache bytes of HF transformers decoder models built from configs with random "
                "weights, measured on the CPU: one eval-mode forward pass of input_ids (b, s) with "
                "use_cache=True (decode_steps = 0), then decode_steps single-token passes feeding the "
                "cache back (method 'forward') or model.generate (method 'generate'). kv_bytes = bytes "
                "of the distinct storages behind every layer's keys/values tensors; "
                "cache_all_tensor_bytes = the same over every tensor reachable from the cache object; "
                "kv_tensor_nbytes = sum of the keys/values tensors' own nbytes. Generated by "
                "`python -m vram_eval.lab.kv_cache --out tests/data/measured/kv_cache.json`; see "
                "validation/KV_CACHE.md."),
            "versions": versions(),
            "elapsed_s": round(elapsed, 1),
            **doc,
        }
        write_json(args.out, full)
        n = sum(len(v) for v in doc.values())
        print(f"wrote {n} records to {args.out} in {elapsed:.0f}s", file=sys.stderr)
    else:
        with open(args.report) as fh:
            doc = json.load(fh)
        body = report_md(doc)
        if args.md:
            with open(args.md) as fh:
                text = fh.read()
            ver = "".join(f"- {k}: {v}\n" for k, v in doc["versions"].items())
            text = replace_section(replace_section(text, "versions", ver), "table", body)
            with open(args.md, "w") as fh:
                fh.write(text)
        else:
            sys.stdout.write(body)


if __name__ == "__main__":
    main()
