"""Measure every Hub config.json in tests/data/hf_configs/: parameter counts and KV-cache bytes.

    python -m vram_eval.lab.families --out tests/data/measured/families.json [--only NAME ...]
                                  [--dir tests/data/hf_configs]

For each ``<dir>/*.json`` (cases keyed by the file's stem):

1. ``params``: the full-size model built on the meta device from the config exactly as the file
   gives it (``AutoConfig.for_model(**json)``), ``sum(p.numel() for p in model.parameters())`` (tied
   tensors once).  Built as ``AutoModelForCausalLM``, as the class in ``architectures`` and, for
   image-text configs, as ``AutoModelForImageTextToText`` (each distinct class once, all under
   ``builds``); the top-level numbers come from the ``architectures`` class when it builds, else
   from ``AutoModelForCausalLM``.  ``params_without_lm_head`` subtracts the output-embedding module's
   parameters (its weight, and its bias where it has one) only when its weight is not the
   input-embedding tensor (identity, not a config flag).  MoE:
   ``active_params`` = all parameters - routed experts + experts_per_token x one routed expert
   (one routed expert = an experts container's parameters / its expert count, taken from the
   module tree; shared experts count in full).  ``breakdown``: parameters by module kind (embed,
   lm_head, norms, attention, mlp (experts included), router, ssm (Mamba / recurrent / short-conv
   mixers), multimodal (vision / audio towers and projectors), other); ``by_path``: by parameter
   name with layer indices replaced by ``*``; ``buffers_numel``: non-parameter tensors (rotary
   inv_freq ...).
2. ``kv``: a shrunken copy of the config (what the cache depends on kept: layers, layer types,
   heads, KV heads, head_dim, sliding pattern; hidden/intermediate/vocab/expert sizes shrunk; a
   sliding window or attention chunk longer than the test sequence cut to ``WINDOW``) is built on
   the CPU in bf16 with random weights, one eval-mode forward of ``input_ids (B, S)`` with
   ``use_cache=True`` ("prefill"), then ``DECODE_STEPS`` single-token forwards feeding the cache
   back.  The cache is walked with validation.kv_cache's helpers (each storage counted once).  A
   shrink is accepted only if every attention / state projection of the shrunken model has the
   full-size model's output width and head attributes (``cache_signature``); otherwise a milder
   shrink is tried (``kv.attempts`` lists the ones rejected or failed, with the reason).  Weights
   are random; a shrunken model over CHEAP_WEIGHTS_ABOVE parameters (e.g. OPT-13B, which has no
   head_dim key and so keeps hidden = 5120) gets stride-0 views of random rows for its big tensors,
   so it fits in memory (the cache's bytes do not depend on weight values).

With ``--only``, the named cases replace theirs in an existing ``--out`` file; the others stay.

Nothing runs at import time; torch and transformers are imported inside the functions.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import gc
import glob
import json
import os
import re
import sys
import time
import traceback
import warnings

from . import write_json

CONFIG_DIR = "tests/data/hf_configs"
B, S, DECODE_STEPS = 2, 24, 2
SMALL_FFN = 64
SMALL_VOCAB = 512
SMALL_EXPERTS = 4
WINDOW = 8
HIDDEN_TARGET = 128          # shrunken hidden = num_heads * max(1, HIDDEN_TARGET // num_heads)
CHEAP_WEIGHTS_ABOVE = 300e6  # shrunken models with more parameters get stride-0 weights (see _materialize)
BIG_TENSOR = 1 << 22         # ... for their tensors with more elements than this
MAX_SHRUNK_PARAMS = 12e9     # refuse to build anything bigger on the CPU

HIDDEN_KEYS = ("hidden_size", "n_embd", "d_model")
FFN_KEYS = ("intermediate_size", "ffn_dim", "n_inner", "moe_intermediate_size", "shared_expert_intermediate_size",
            "expert_intermediate_size", "intermediate_size_mlp", "ffn_hidden_size")
EXPERT_COUNT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts", "num_routed_experts")
TOPK_KEYS = ("num_experts_per_tok", "num_experts_per_token", "experts_per_token", "moe_top_k", "num_selected_experts",
             "moe_k", "top_k")  # read only where an expert count is found
WINDOW_KEYS = ("sliding_window", "attention_chunk_size", "sliding_window_size")
HEAD_KEYS = ("num_attention_heads", "n_head", "num_heads", "encoder_attention_heads")
NESTED_TEXT = ("text_config", "language_config", "llm_config")
MULTIMODAL_RE = re.compile(r"vision|visual|image|audio|speech|multi_modal_projector|mm_projector|merger|patch_embed|"
                           r"embed_vision|embed_audio|vqmodel|img_", re.I)
OUT_PROJ = {"o_proj", "out_proj", "dense", "c_proj", "o", "wo", "out", "fc2", "down_proj", "proj_out"}
STATE_RE = re.compile(r"attn|attention|mixer|mamba|ssm|recurrent|temporal|linear_attn|conv", re.I)
KV_RE = re.compile(r"(^|\.)(keys|values)$|\.(key_cache|value_cache)\[\d+\]$")
SPECIAL_RE = re.compile(r"token_(id|ids|index)$")


# --------------------------------------------------------------------------------------------
# config helpers
# --------------------------------------------------------------------------------------------
def shrunken_config(config: dict, kv: dict) -> dict:
    """A measured config as the harness ran it: ``kv["changes"]`` applied (``{key: [full, used]}``;
    a dotted key such as ``text_config.hidden_size`` inside its sub-config), and the heads' width
    stated where the config leaves it to h / a (none to state for latent attention). Pure data:
    the tests and docs/ACCURACY.md rebuild the shrunken config.json with it."""
    config = apply_changes(config, {key: used for key, (_, used) in kv["changes"].items()})
    text = config["text_config"] if isinstance(config.get("text_config"), dict) else config
    dims = kv.get("shrunk_attention_dims") or []
    if dims:
        text.setdefault("head_dim", dims[0]["head_dim"])
    return config


_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


def state_bytes(kv: dict) -> tuple:
    """(conv bytes, recurrent bytes) of a measured cache after decoding, from its layer groups
    (the Mamba / gated-DeltaNet layers' conv_states and recurrent_states)."""
    conv = ssm = 0
    for group in kv["decode"]["layer_groups"]:
        for tensor in group["tensors"]:
            kind = ("conv" if ".conv_states[" in tensor["path"]
                    else "ssm" if ".recurrent_states[" in tensor["path"] else None)
            if kind is None:
                continue
            elements = 1
            for size in tensor["shape"]:
                elements *= size
            nbytes = group["count"] * elements * _DTYPE_BYTES[tensor["dtype"]]
            conv, ssm = (conv + nbytes, ssm) if kind == "conv" else (conv, ssm + nbytes)
    return conv, ssm


def apply_changes(config: dict, changes: dict) -> dict:
    """A copy of ``config`` with ``changes`` ({key: value}, dotted keys inside sub-configs) applied."""
    config = json.loads(json.dumps(config))
    for key, used in changes.items():
        *parents, leaf = key.split(".")
        where = config
        for parent in parents:
            where = where.setdefault(parent, {})
        where[leaf] = used
    return config


def load_json(path):
    with open(path) as fh:
        return json.load(fh)


def make_config(d):
    """A transformers config object from a config.json dict."""
    from transformers import AutoConfig

    d = dict(d)
    mt = d.pop("model_type")
    return AutoConfig.for_model(mt, **d)


def text_config(cfg):
    """The sub-config of the language model (the config itself for text-only models)."""
    for k in NESTED_TEXT:
        sub = getattr(cfg, k, None)
        if sub is not None and not isinstance(sub, dict):
            return sub
    try:
        sub = cfg.get_text_config()
        if sub is not None:
            return sub
    except Exception:
        pass
    return cfg


def first_key(cfg, keys):
    for k in keys:
        v = getattr(cfg, k, None)
        if isinstance(v, int) and not isinstance(v, bool):
            return k, v
    return None, None


# --------------------------------------------------------------------------------------------
# model construction
# --------------------------------------------------------------------------------------------
def model_classes(cfg, raw):
    """[(label, class)] to build for the parameter counts, each class once."""
    import transformers
    from transformers.models.auto import modeling_auto as ma

    out = []
    names = set()

    def add(label, cls_name):
        if cls_name and cls_name not in names:
            cls = getattr(transformers, cls_name, None)
            if cls is not None:
                out.append((label, cls))
                names.add(cls_name)

    mt = cfg.model_type
    add("architectures", (raw.get("architectures") or [None])[0])
    add("AutoModelForCausalLM", ma.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(mt))
    add("AutoModelForImageTextToText", ma.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES.get(mt))
    tc = text_config(cfg)
    if tc is not cfg and getattr(tc, "model_type", None):  # the language model alone, for comparison
        add("AutoModelForCausalLM(text_config)", ma.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(tc.model_type))
    if not out:
        raise RuntimeError(f"no model class for model_type {mt!r} / architectures {raw.get('architectures')}")
    return out


def config_for(cls, cfg):
    """cfg, or its text sub-config when cls is a text-only class (e.g. Llama4ForCausalLM)."""
    want = getattr(cls, "config_class", None)
    if want is None or isinstance(cfg, want):
        return cfg
    tc = text_config(cfg)
    return tc if isinstance(tc, want) else cfg


def build(cls, cfg, device="meta", dtype=None, attn=None, init=True):
    import torch

    cfg = config_for(cls, cfg)

    kw = {}
    if dtype is not None:
        kw["dtype"] = dtype
    if attn is not None:
        kw["attn_implementation"] = attn
    if device == "meta":
        with torch.device("meta"):
            return cls._from_config(cfg, **kw)
    if init:
        return cls._from_config(cfg, **kw)
    from transformers.initialization import no_init_weights

    with no_init_weights():
        return cls._from_config(cfg, **kw)


# --------------------------------------------------------------------------------------------
# parameter counts
# --------------------------------------------------------------------------------------------
def collapse(name):
    return re.sub(r"\.\d+(?=\.|$)", ".*", name)


def _experts_containers(model):
    """[(name, module, n_experts, params)] for every routed-experts container (outermost only)."""
    import torch

    found = []
    for name, mod in model.named_modules():
        last = name.rsplit(".", 1)[-1]
        cls = type(mod).__name__
        is_exp = last == "experts" or ("Experts" in cls and "shared" not in last.lower() and "Shared" not in cls)
        if not is_exp or any(name.startswith(n + ".") for n, *_ in found):
            continue
        params = list(mod.parameters())
        if not params:
            continue
        if isinstance(mod, torch.nn.ModuleList):
            e = len(mod)
        else:
            lead = {p.shape[0] for p in params if p.dim() >= 2}
            e = lead.pop() if len(lead) == 1 else None
        found.append((name, mod, e, sum(p.numel() for p in params)))
    return found


def _kind(name, mod_of, lm_head_ids, p):
    """The module kind a parameter belongs to (see count_params), from its path and its modules' classes."""
    import torch

    parts = name.split(".")
    mods = parts[:-1]
    leaf = mod_of(".".join(mods))
    leaf_cls = type(leaf).__name__.lower() if leaf is not None else ""
    path = ".".join(mods)
    classes = [type(mod_of(".".join(parts[:i + 1]))).__name__ for i in range(len(mods))]
    # below the decoder layer only (a "JambaMambaDecoderLayer" also holds the layer's MLP)
    classes = [c for c in classes
               if not re.search(r"(Layer|Model|ForCausalLM|ForConditionalGeneration|ModuleList)$", c)]
    if id(p) in lm_head_ids:
        return "lm_head"
    if MULTIMODAL_RE.search(path):
        return "multimodal"
    if "norm" in leaf_cls or (mods and ("norm" in mods[-1].lower() or re.match(r"ln(_|f|\d|$)", mods[-1]))) \
            or "norm" in parts[-1].lower():
        return "norms"
    if isinstance(leaf, torch.nn.Embedding) or (mods and "embed" in mods[-1].lower()):
        return "embed"
    if any(m in ("gate", "router", "shared_expert_gate", "gating") for m in mods) or "router" in leaf_cls:
        return "router"
    # by module name first, then by class name ("mixer" can be a Mamba mixer, attention or an MLP)
    if any("attn" in m.lower() or "attention" in m.lower() for m in mods):
        return "attention"
    if any(re.search(r"mlp|ffn|feed_forward|experts?|moe", m, re.I) for m in mods) or \
            (mods and mods[-1] in ("fc1", "fc2", "c_fc", "dense_h_to_4h", "dense_4h_to_h")):
        return "mlp"
    if any(m in ("mamba", "ssm", "conv", "short_conv") for m in mods):
        return "ssm"
    if any("Attention" in c for c in classes):
        return "attention"
    if any(re.search(r"MLP|Mlp|Experts|MoE|Moe", c) for c in classes):
        return "mlp"
    if any(re.search(r"Mamba|Mixer|SSM|Recurrent|ShortConv|RgLru|RGLRU", c) for c in classes):
        return "ssm"
    return "other"


def count_params(model, experts_per_token):
    """Parameter counts of a (meta) model: totals, lm_head, MoE active count, breakdowns, buffers."""
    named = list(model.named_parameters())  # tied tensors once
    total = sum(p.numel() for _, p in named)
    emb = model.get_input_embeddings()
    try:
        out = model.get_output_embeddings()
    except Exception:
        out = None
    emb_w = getattr(emb, "weight", None)
    out_w = getattr(out, "weight", None) if out is not None else None
    tied = out_w is not None and out_w is emb_w
    lm_head_ids = set() if (out is None or tied) else {id(p) for p in out.parameters()}
    # the output embedding's whole module (PhiMoE's lm_head has a bias besides its weight)
    lm_head_weight = 0 if (out_w is None or tied) else sum(q.numel() for q in out.parameters())

    mods = dict(model.named_modules())
    breakdown = {k: 0 for k in ("embed", "lm_head", "norms", "attention", "mlp", "router", "ssm", "multimodal",
                                "other")}
    by_path = {}
    for n, p in named:
        k = _kind(n, mods.get, lm_head_ids, p)
        breakdown[k] += p.numel()
        c = collapse(n)
        e = by_path.setdefault(c, [0, 0, list(p.shape), k])
        e[0] += 1
        e[1] += p.numel()
    by_path = {c: dict(count=v[0], numel=v[1], shape=v[2], kind=v[3]) for c, v in by_path.items()}

    buffers = list(model.named_buffers())
    rec = dict(
        model_class=type(model).__name__,
        params=total,
        params_without_lm_head=total - lm_head_weight,
        lm_head_weight_params=lm_head_weight,
        lm_head_tied=bool(tied),
        input_embedding_params=emb_w.numel() if emb_w is not None else None,
        breakdown=breakdown,
        by_path=by_path,
        buffers_numel=sum(b.numel() for _, b in buffers),
        buffers={collapse(n): dict(numel=b.numel(), dtype=str(b.dtype).replace("torch.", "")) for n, b in buffers},
    )
    if not tied and out_w is None:
        rec["lm_head_note"] = "model has no output embeddings"

    cont = _experts_containers(model)
    if cont:
        shared = sum(p.numel() for n, p in named if re.search(r"shared_experts?(\.|$)|shared_mlp", n))
        routed_total = sum(c[3] for c in cont)
        n_exp = sorted({c[2] for c in cont if c[2]})
        moe = dict(experts_containers=len(cont), container_paths=sorted({collapse(c[0]) for c in cont}),
                   experts_per_container=n_exp, experts_per_token=experts_per_token,
                   routed_expert_params_total=routed_total, shared_expert_params=shared)
        if experts_per_token and all(c[2] for c in cont) and all(c[3] % c[2] == 0 for c in cont):
            per = [c[3] // c[2] for c in cont]
            moe["params_per_routed_expert"] = sorted(set(per))
            active = total - routed_total + experts_per_token * sum(per)
            rec["active_params"] = active
            rec["active_params_without_lm_head"] = active - lm_head_weight
        else:
            lead = sorted({p.shape[0] for c in cont for p in c[1].parameters() if p.dim() >= 2})
            moe["note"] = ("active_params not computed: " + ("experts_per_token unknown" if not experts_per_token
                           else f"an experts container's tensors disagree on the expert count (leading dims {lead})"))
        rec["moe"] = moe
    return rec


def attention_dims(model):
    """Distinct (head_dim, num_key_value_heads, num_heads) attributes of attention modules."""
    seen = {}
    for name, mod in model.named_modules():
        if MULTIMODAL_RE.search(name):
            continue
        hd = getattr(mod, "head_dim", None)
        if isinstance(hd, int):
            key = (hd, _int_attr(mod, ("num_key_value_heads", "num_kv_heads", "n_kv_heads")),
                   _int_attr(mod, ("num_heads", "num_attention_heads", "n_heads")), type(mod).__name__)
            seen[key] = seen.get(key, 0) + 1
    return [dict(head_dim=k[0], kv_heads=k[1], heads=k[2], module=k[3], count=v) for k, v in seen.items()]


def _int_attr(mod, names):
    for n in names:
        v = getattr(mod, n, None)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    cfg = getattr(mod, "config", None)
    for n in names:
        v = getattr(cfg, n, None) if cfg is not None else None
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    return None


def cache_signature(model):
    """What the cache / recurrent state shapes depend on, per module, outside multimodal towers."""
    import torch

    sig = []
    for name, mod in model.named_modules():
        if MULTIMODAL_RE.search(name) or not STATE_RE.search(name):
            continue
        last = name.rsplit(".", 1)[-1]
        if isinstance(mod, torch.nn.Linear) and last not in OUT_PROJ:
            sig.append((collapse(name), "out", mod.out_features))
        elif isinstance(mod, torch.nn.Conv1d):
            sig.append((collapse(name), "conv", mod.out_channels, mod.kernel_size))
        for a in ("head_dim", "num_key_value_heads", "num_heads", "head_size", "ssm_state_size", "state_size",
                  "intermediate_size", "conv_kernel_size", "n_groups", "num_kv_heads", "sliding_window",
                  "is_sliding", "layer_type", "attention_type", "key_dim", "value_dim", "head_k_dim", "head_v_dim",
                  "lru_width", "conv1d_width", "is_kv_shared_layer", "kv_shared_layer_index"):
            v = getattr(mod, a, None)
            if isinstance(v, (int, str, bool)) and not isinstance(mod, torch.nn.Linear):
                if a == "sliding_window":
                    v = v is not None and v is not False
                sig.append((collapse(name), a, v))
    from collections import Counter

    return Counter(sig)


# --------------------------------------------------------------------------------------------
# shrinking
# --------------------------------------------------------------------------------------------
LEVELS = [
    dict(name="all", hidden=True, ffn=True, nested=True),
    dict(name="no_nested", hidden=True, ffn=True, nested=False),
    dict(name="keep_hidden", hidden=False, ffn=True, nested=True),
    dict(name="keep_hidden_ffn", hidden=False, ffn=False, nested=True),
    dict(name="keep_hidden_ffn_nested", hidden=False, ffn=False, nested=False),
]


def _special_ids(d, out=None):
    out = set() if out is None else out
    for k, v in d.items():
        if isinstance(v, dict):
            _special_ids(v, out)
        elif SPECIAL_RE.search(str(k)):
            for x in (v if isinstance(v, list) else [v]):
                if isinstance(x, int) and not isinstance(x, bool) and x >= 0:
                    out.add(x)
    return out


def _shrink_text(d, level, changes, prefix, specials, read_only_head_dim=False):
    def put(k, v):
        if d.get(k) != v:
            changes[prefix + k] = [d.get(k), v]
            d[k] = v

    heads = next((d[k] for k in HEAD_KEYS if isinstance(d.get(k), int)), None)
    hk = next((k for k in HIDDEN_KEYS if isinstance(d.get(k), int)), None)
    if level["hidden"] and hk and heads:
        h = d[hk]
        hd = d.get("head_dim") or h // heads
        new_h = heads * max(1, HIDDEN_TARGET // heads)
        if new_h < h:
            put(hk, new_h)
            if not read_only_head_dim:  # many families read getattr(config, "head_dim", None) even when
                put("head_dim", hd)     # it is no config field; the signature check catches the rest
            for k in ("hidden_size_per_layer_input",):
                if isinstance(d.get(k), int) and d[k] > new_h:
                    put(k, min(d[k], new_h))
    if level["ffn"]:
        for k in FFN_KEYS:
            v = d.get(k)
            if isinstance(v, int) and not isinstance(v, bool) and v > SMALL_FFN:
                put(k, SMALL_FFN)
            elif isinstance(v, list) and v and all(isinstance(x, int) for x in v):
                put(k, [min(x, SMALL_FFN) for x in v])
        if d.get("n_inner", 0) is None and hk == "n_embd":
            put("n_inner", SMALL_FFN)
    ek = next((k for k in EXPERT_COUNT_KEYS if isinstance(d.get(k), int) and d[k] > 1), None)
    if ek and d[ek] > SMALL_EXPERTS:
        put(ek, SMALL_EXPERTS)
        for k in TOPK_KEYS:
            if isinstance(d.get(k), int) and d[k] > SMALL_EXPERTS:
                put(k, SMALL_EXPERTS)
        for k in ("n_group", "topk_group", "num_expert_group"):
            if isinstance(d.get(k), int) and d[k] > 1:
                put(k, 1)
    v = d.get("vocab_size")
    if isinstance(v, int) and v > SMALL_VOCAB:
        new_v = max(SMALL_VOCAB, max(specials, default=0) + 1)
        if new_v < v:
            put("vocab_size", new_v)
            for k in ("vocab_size_per_layer_input",):
                if isinstance(d.get(k), int) and d[k] > new_v:
                    put(k, new_v)
    for k in WINDOW_KEYS:
        w = d.get(k)
        if isinstance(w, int) and not isinstance(w, bool) and w > S + DECODE_STEPS:
            put(k, WINDOW)


def _shrink_nested(d, changes, prefix):
    """A vision/audio tower: narrower, same depth (feature-layer indices stay valid)."""
    heads = next((d[k] for k in HEAD_KEYS if isinstance(d.get(k), int)), None)
    for hk in ("hidden_size", "embed_dim", "d_model", "width"):
        h = d.get(hk)
        if isinstance(h, int) and heads and h > heads * 8:
            changes[prefix + hk] = [h, heads * 8]
            d[hk] = heads * 8
    for k in ("intermediate_size", "encoder_ffn_dim", "ffn_dim"):
        v = d.get(k)
        if isinstance(v, int) and v > SMALL_FFN:
            changes[prefix + k] = [v, SMALL_FFN]
            d[k] = SMALL_FFN


def _head_dim_is_property(cfg):
    import inspect

    return isinstance(inspect.getattr_static(type(cfg), "head_dim", None), property)


def shrink(cfg, level):
    """(shrunken config object, {key: [old, new]}) at a shrink level."""
    full = cfg.to_dict()
    d = copy.deepcopy(full)
    changes = {}
    specials = _special_ids(d)
    _shrink_text(d, level, changes, "", specials, _head_dim_is_property(cfg))
    for k, v in list(d.items()):
        if isinstance(v, dict) and "model_type" in v:
            if k in NESTED_TEXT:
                _shrink_text(v, level, changes, k + ".", specials, _head_dim_is_property(getattr(cfg, k, None)))
            elif level["nested"]:
                _shrink_nested(v, changes, k + ".")
    for k in ("transformers_version", "_name_or_path"):
        d.pop(k, None)
    return make_config(d), changes


# --------------------------------------------------------------------------------------------
# the cache
# --------------------------------------------------------------------------------------------
def measure_cache(cache):
    """Byte counts of what a cache object holds (each storage once)."""
    import torch

    from .kv_cache import cache_tensors, storage_bytes

    found = cache_tensors(cache)
    kv = [t for p, t in found if KV_RE.search(p)]
    other = [(p, t) for p, t in found if not KV_RE.search(p)]
    rec = dict(cache_class=type(cache).__name__, kv_bytes=storage_bytes(kv),
               kv_tensor_nbytes=sum(t.nbytes for t in kv),
               cache_all_tensor_bytes=storage_bytes([t for _, t in found]),
               other_tensor_bytes=storage_bytes([t for _, t in other]), n_cache_tensors=len(found))
    try:
        rec["tokens_in_cache"] = int(cache.get_seq_length())
    except Exception as e:  # noqa: BLE001
        rec["tokens_in_cache"] = None
        rec["tokens_in_cache_error"] = f"{type(e).__name__}: {e}"[:300]
    layers = getattr(cache, "layers", None)
    if isinstance(layers, (list, tuple)):
        per_kv, per_all, kept, seen, classes = [], [], [], [], []
        groups = {}
        for i, lay in enumerate(layers):
            lt = [t for _, t in cache_tensors(lay, "layer")]
            k, v = getattr(lay, "keys", None), getattr(lay, "values", None)
            kvt = [x for x in (k, v) if isinstance(x, torch.Tensor)]
            per_kv.append(storage_bytes(kvt))
            per_all.append(storage_bytes(lt))
            kept.append(int(k.shape[-2]) if isinstance(k, torch.Tensor) and k.dim() >= 2 else None)
            try:
                seen.append(int(lay.get_seq_length()))
            except Exception:  # noqa: BLE001
                seen.append(None)
            classes.append(type(lay).__name__)
            key = json.dumps([type(lay).__name__] + [[p, str(t.dtype).replace("torch.", ""), list(t.shape)]
                                                     for p, t in cache_tensors(lay, "layer")])
            groups[key] = groups.get(key, 0) + 1
        rec.update(layer_classes=sorted(set(classes)), per_layer_kv_bytes=per_kv, per_layer_tokens_kept=kept)
        # the rest per layer only where it says something the above does not
        if len(set(classes)) > 1:
            rec["per_layer_class"] = classes
        if any(a - k > 8 for a, k in zip(per_all, per_kv)):
            rec["per_layer_all_tensor_bytes"] = per_all
        if any(x != rec["tokens_in_cache"] for x in seen):
            rec["per_layer_seq_length"] = seen
        rec.update(layer_groups=[dict(count=n, layer_class=json.loads(k)[0],
                                      tensors=[dict(path=x[0], dtype=x[1], shape=x[2]) for x in json.loads(k)[1:]])
                                 for k, n in groups.items()])
    og = {}
    for p, t in other:
        c = re.sub(r"\[\d+\]", "[*]", p)
        e = og.setdefault(c, dict(count=0, dtype=str(t.dtype).replace("torch.", ""), shapes=[], nbytes=0))
        e["count"] += 1
        e["nbytes"] += t.nbytes
        if list(t.shape) not in e["shapes"]:
            e["shapes"].append(list(t.shape))
    rec["other_tensors"] = og
    return rec


def _materialize(model, cheap):
    """Random weights; with cheap, tensors over BIG_TENSOR elements become stride-0 views of a random
    (rows, 1, ...) tensor (the cache's size does not depend on weight values; memory stays small)."""
    import torch

    g = torch.Generator().manual_seed(0)
    replaced = {}
    n_cheap = 0
    with torch.no_grad():
        for name, p in list(model.named_parameters(remove_duplicate=False)):
            if id(p) in replaced:
                new = replaced[id(p)]
            elif cheap and p.numel() > BIG_TENSOR and p.dim() >= 2:
                small = torch.randn((p.shape[0],) + (1,) * (p.dim() - 1), generator=g).mul_(0.02).to(p.dtype)
                new = torch.nn.Parameter(small.expand(p.shape), requires_grad=False)
                replaced[id(p)] = new
                n_cheap += 1
            else:
                if p.dtype.is_floating_point:
                    p.copy_(torch.randn(p.shape, generator=g).mul_(0.02).add_(1.0 if "norm" in name.lower() else 0.0))
                replaced[id(p)] = p
                continue
            mod_name, _, attr = name.rpartition(".")
            mod = model.get_submodule(mod_name) if mod_name else model
            mod._parameters[attr] = new
    return n_cheap


def _forward(model, ids, cache=None, pos=None):
    import torch

    kw = dict(use_cache=True)
    if cache is not None:
        kw["cache"] = cache
    if pos is not None:  # some hybrid (linear-attention-only) caches cannot say their length
        kw["cache_position"] = torch.arange(pos, pos + ids.shape[1])
    try:
        return model(input_ids=ids, **kw)
    except TypeError as e:
        if "cache" not in str(e):
            raise
        if cache is not None:
            kw["past_key_values"] = kw.pop("cache")
        return model(input_ids=ids, **kw)


def _out_cache(out):
    for k in ("cache", "past_key_values"):
        try:
            c = out[k]
        except (KeyError, TypeError):
            c = getattr(out, k, None)
        if c is not None:
            return c
    return None


def run_cache(model, vocab, specials, with_pos=False):
    """Prefill (B, S) + DECODE_STEPS single-token steps; the cache measured after each phase."""
    import torch

    g = torch.Generator().manual_seed(1)
    allowed = torch.tensor([i for i in range(3, min(vocab, SMALL_VOCAB)) if i not in specials])
    pick = lambda shape: allowed[torch.randint(0, len(allowed), shape, generator=g)]  # noqa: E731
    ids = pick((B, S))
    rec = dict(b=B, s=S, decode_steps=DECODE_STEPS)
    with torch.no_grad():
        out = _forward(model, ids, pos=0 if with_pos else None)
        cache = _out_cache(out)
        if cache is None:
            raise RuntimeError("the model returned no cache object (its state, if any, lives in the modules)")
        rec["prefill"] = measure_cache(cache)
        growth, prev = [], rec["prefill"]["kv_bytes"]
        for i in range(DECODE_STEPS):
            out = _forward(model, pick((B, 1)), cache=cache, pos=S + i if with_pos else None)
            new = _out_cache(out)
            if new is not cache:
                rec.setdefault("notes", []).append("decode returned a new cache object")
                cache = new
            kvb = measure_cache(cache)["kv_bytes"]
            growth.append(kvb - prev)
            prev = kvb
        rec["decode"] = measure_cache(cache)
        rec["decode"]["growth_per_step_kv_bytes"] = growth
    return rec


def measure_kv(cls, cfg, full_sig):
    """The kv record: the first shrink level whose model keeps the cache signature and runs."""
    import torch

    attempts = []
    for level in LEVELS:
        t0 = time.time()
        try:
            small, changes = shrink(cfg, level)
        except Exception as e:  # noqa: BLE001
            attempts.append(dict(level=level["name"], error=f"config: {type(e).__name__}: {e}"))
            continue
        if any(a.get("changes") == changes for a in attempts):
            continue
        att = dict(level=level["name"], changes=changes)
        attempts.append(att)
        try:
            meta = build(cls, small)
            sig = cache_signature(meta)
            if sig != full_sig:
                diff = sorted(set((sig - full_sig).keys()) | set((full_sig - sig).keys()))[:6]
                att["rejected"] = f"cache signature differs: {[list(x) for x in diff]}"
                continue
            n_small = sum(p.numel() for p in meta.parameters())
            att["shrunk_params"] = n_small
            del meta
            if n_small > MAX_SHRUNK_PARAMS:
                att["rejected"] = f"shrunken model too large ({n_small:.3g} params)"
                continue
            cheap = n_small > CHEAP_WEIGHTS_ABOVE
            model = None
            for attn in ("eager", "sdpa", None):
                try:
                    model = build(cls, small, device="cpu", dtype=torch.bfloat16, attn=attn, init=not cheap)
                    att["attn_implementation"] = attn
                    break
                except (ValueError, TypeError, ImportError) as e:
                    if attn is None:
                        raise
                    att.setdefault("attn_errors", []).append(f"{attn}: {e}"[:200])
            att["cheap_weights_tensors"] = _materialize(model, cheap) if cheap else 0
            model = model.to(torch.bfloat16)
            model.train(False)  # inference mode: dropout off
            tc = text_config(small)
            specials = _special_ids(small.to_dict())
            vocab = int(getattr(tc, "vocab_size", SMALL_VOCAB) or SMALL_VOCAB)
            try:
                r = run_cache(model, vocab, specials)
            except Exception as e:  # noqa: BLE001
                try:
                    r = run_cache(model, vocab, specials, with_pos=True)
                except Exception:  # noqa: BLE001
                    raise e from None
                r["notes"] = r.get("notes", []) + [
                    f"ran with cache_position passed explicitly; without it: {type(e).__name__}: {e}"[:300]]
            r["model_class"] = type(model).__name__
            r["shrink_level"] = level["name"]
            r["changes"] = changes
            r["shrunk_params"] = n_small
            r["attn_implementation"] = att.get("attn_implementation")
            r["weights"] = ("random normal(0, 0.02) for tensors up to %d elements, stride-0 views of random rows "
                            "above" % BIG_TENSOR) if cheap else "random (transformers init)"
            r["window_used"] = {k: getattr(tc, k, None) for k in WINDOW_KEYS if getattr(tc, k, None) is not None}
            r["layer_types"] = _layer_types(tc)
            r["shrunk_attention_dims"] = attention_dims(model)
            r["elapsed_s"] = round(time.time() - t0, 2)
            r["attempts"] = attempts[:-1]
            del model
            gc.collect()
            return r
        except Exception as e:  # noqa: BLE001
            att["error"] = f"{type(e).__name__}: {e}"[:600]
            att["where"] = traceback.format_exc().strip().splitlines()[-3][:300]
    return dict(error="no shrink level built and ran; see attempts", attempts=attempts)


def _layer_types(tc):
    lt = getattr(tc, "layer_types", None)
    if isinstance(lt, (list, tuple)):
        from collections import Counter

        return dict(Counter(lt))
    return None


# --------------------------------------------------------------------------------------------
# one config file
# --------------------------------------------------------------------------------------------
def measure_file(path, log=sys.stderr):
    import torch

    t0 = time.time()
    raw = load_json(path)
    case = dict(file=os.path.relpath(path), model_type=raw.get("model_type"),
                architectures=raw.get("architectures"))
    try:
        cfg = make_config(raw)
    except Exception as e:  # noqa: BLE001
        case["error"] = f"config: {type(e).__name__}: {e}"
        return case
    tc = text_config(cfg)
    _, k = first_key(tc, TOPK_KEYS)
    ek, e = first_key(tc, EXPERT_COUNT_KEYS)
    case["config_class"] = type(cfg).__name__
    case["full_config"] = {kk: getattr(tc, kk, None) for kk in
                           ("num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads",
                            "head_dim", "intermediate_size", "vocab_size", "tie_word_embeddings", "sliding_window",
                            "max_window_layers", "use_sliding_window", "attention_chunk_size")
                           if getattr(tc, kk, None) is not None}
    if ek:
        case["full_config"][ek] = e
    if k:
        case["full_config"]["experts_per_token"] = k
    case["full_layer_types"] = _layer_types(tc)

    builds, primary, kv_tries = {}, None, []
    for label, cls in model_classes(cfg, raw):
        try:
            m = build(cls, cfg)
            rec = count_params(m, k if e else None)
            kv_tries.append((cls, cache_signature(m), attention_dims(m)))
            builds[label] = rec
            primary = primary or label
            del m
        except Exception as ex:  # noqa: BLE001
            builds[label] = dict(model_class=cls.__name__, error=f"{type(ex).__name__}: {ex}"[:600])
    case["builds"] = builds
    if primary is None:
        case["error"] = "no model class built on the meta device"
        return case
    p = builds[primary]
    case["params_source"] = f"{primary} ({p['model_class']})"
    for kk in ("params", "params_without_lm_head", "active_params", "active_params_without_lm_head", "lm_head_tied",
               "breakdown", "buffers_numel"):
        if kk in p:
            case[kk] = p[kk]
    case["full_attention_dims"] = kv_tries[0][2]
    failed = {}
    for cls, sig, dims in kv_tries:  # the primary class first; the others if it cannot be measured
        kv = measure_kv(cls, cfg, sig)
        if "error" not in kv:
            break
        failed[cls.__name__] = kv
    if failed and "error" not in kv:
        kv["classes_that_failed"] = failed
    case["kv"] = kv
    case["elapsed_s"] = round(time.time() - t0, 2)
    kv = case["kv"]
    print(f"{os.path.basename(path)}: params={case['params']:,} "
          f"active={case.get('active_params', '-')} "
          f"kv_prefill={kv.get('prefill', {}).get('kv_bytes', kv.get('error'))} "
          f"level={kv.get('shrink_level')} ({case['elapsed_s']}s)", file=log)
    return case


def versions():
    import platform

    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "device": "cpu", "torch_num_threads": torch.get_num_threads(),
            "date": datetime.date.today().isoformat()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="the JSON to write")
    ap.add_argument("--dir", default=CONFIG_DIR, help="folder of config.json files (default %(default)s)")
    ap.add_argument("--only", nargs="*", help="config stems to measure (default: all)")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    paths = sorted(glob.glob(os.path.join(args.dir, "*.json")))
    if args.only:
        missing = set(args.only) - {os.path.splitext(os.path.basename(p))[0] for p in paths}
        if missing:
            ap.error(f"no such config: {sorted(missing)}")
        paths = [p for p in paths if os.path.splitext(os.path.basename(p))[0] in args.only]
    t0 = time.time()
    cases = {}
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        try:
            cases[stem] = measure_file(path)
        except Exception as e:  # noqa: BLE001
            cases[stem] = dict(file=os.path.relpath(path), error=f"{type(e).__name__}: {e}"[:600])
            print(f"{stem}: ERROR {cases[stem]['error']}", file=sys.stderr)
    elapsed = time.time() - t0
    doc = {
        "description": (
            "Every Hub config.json in tests/data/hf_configs/, measured with HF transformers on the CPU. "
            "params: sum(p.numel()) over model.parameters() of the full-size model built on the meta device "
            "(tied tensors once); params_without_lm_head subtracts the output-embedding module's parameters (weight, "
            "and bias where it has one) when its weight is not the input-embedding tensor; active_params (MoE) = params - routed experts + experts_per_token x one "
            "routed expert (from the module tree); builds holds every model class built (architectures, "
            "AutoModelForCausalLM, AutoModelForImageTextToText, the text model alone for composite configs) with "
            "a per-kind breakdown and by_path. kv: a shrunken copy of the config (changes "
            "listed; layers, layer types, heads, KV heads, head_dim kept; windows longer than the sequence cut "
            f"to {WINDOW}; the first of the shrink levels {[lv['name'] for lv in LEVELS]} whose model keeps every "
            "attention / state projection width of the full model and runs) built in bf16 with random weights, "
            f"one eval forward of input_ids ({B}, {S}) with "
            f"use_cache=True (prefill), then {DECODE_STEPS} single-token forwards feeding the cache back "
            "(decode). kv_bytes = bytes of the distinct storages behind every keys/values tensor of the cache; "
            "cache_all_tensor_bytes = the same over every tensor reachable from the cache object "
            "(recurrent states included). Generated by `python -m vram_eval.lab.families --out "
            "tests/data/measured/families.json`."),
        "versions": versions(),
        "elapsed_s": round(elapsed, 1),
        "shape": dict(b=B, s=S, decode_steps=DECODE_STEPS, window=WINDOW),
        "cases": cases,
    }
    if args.only and os.path.exists(args.out):
        try:
            old = load_json(args.out)
            merged = dict(old.get("cases", {}))
            merged.update(cases)
            doc["cases"] = dict(sorted(merged.items()))
        except Exception:  # noqa: BLE001
            pass
    write_json(args.out, doc)
    print(f"wrote {len(doc['cases'])} cases to {args.out} in {elapsed:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
