"""Measure PEAK live tensor bytes of HF models over the phases of a training step and of inference.

    python -m vram_eval.lab.peaks --out tests/data/measured/peaks.json

Run with the validation venv (torch 2.13.0 CPU, transformers, peft); see validation/PEAKS.md.
Every case builds a random-weight model from a config (nothing is downloaded).

Instrument: a ``TorchDispatchMode`` (``LiveBytes``) that registers the storage of every tensor an op
returns, keyed by ``untyped_storage().data_ptr()`` and sized with the storage's ``nbytes()``, with a
``weakref.finalize`` that unregisters it when the storage is freed.  Parameters, buffers and the
input ids are registered up front.  The running sum is the live tensor bytes; it is checked for a new
maximum after every op, so the peak is exact at op granularity for what ops return.  NOT counted:
scratch memory a kernel allocates internally and frees before it returns (e.g. the CPU flash-attention
kernel's per-thread buffers, GEMM packing buffers), allocator rounding/caching, and anything not a
tensor.  These are sums of tensor storages, not allocator numbers.

Each storage gets a unique id and the phase it was created in.  Categories are assigned afterwards
(so a tensor that *later* becomes ``p.grad`` is a gradient from the moment it was created):
params, buffers, inputs, grads (storages that were ``p.grad`` at the end of a backward),
optimizer_state (tensors in ``optimizer.state`` after a step), kv_cache (tensors that were in the
cache after some forward), logits (the ``lm_head`` output), loss, activations (created in a forward
phase and still alive at the end of that forward), and ``<phase>_transient`` for everything else.

Snapshots are taken only at local maxima that are a new peak of the current phase (the state just
before the first free that follows a new maximum), so the breakdown at each phase's peak is exact.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import sys
import time
import warnings
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


# --------------------------------------------------------------------------------------------
# instrument
# --------------------------------------------------------------------------------------------
from . import write_json

class LiveBytes(TorchDispatchMode):
    """Live storages (created by ops while active, or registered) with per-phase peaks."""

    def __init__(self):
        super().__init__()
        self.live = {}  # data_ptr -> [nbytes, id]
        self.id_phase = {}  # id -> phase in which the storage was created
        self.id_nbytes = {}
        self.id_desc = {}  # id -> (op that created it, shape, dtype) of the first tensor seen
        self.next_id = 1
        self.cur = 0
        self.phase = "setup"
        self.phase_peak = {}  # phase -> bytes
        self.phase_snap = {}  # phase -> {id: nbytes} at that phase's peak
        self.phase_at = {}  # phase -> description of the op/node that reached the peak
        self.boundary = {}  # name -> (cur bytes, frozenset of live ids)
        self.phase_order = []
        self._pending = None  # description of the op that made the not-yet-snapshotted peak
        self._op = ""
        # optional sub-phase ("segment") within a phase, e.g. the decoder layer whose backward runs
        self.seg = None
        self.seg_peak = {}  # (phase, seg) -> bytes
        self.seg_snap = {}  # (phase, seg) -> {id: nbytes}
        self.seg_start = {}  # (phase, seg) -> bytes when the segment started (first time)
        self._seg_pending = False
        # optional event log: (phase, seg) -> [(bytes above the segment start, node, op)] at every
        # local maximum (an allocation followed by a free); phases listed in log_phases only
        self.log_phases = ()
        self.events = collections.defaultdict(list)
        self._rising = None

    # -- registration ---------------------------------------------------------------------
    def register(self, t: torch.Tensor):
        """Register an existing tensor's storage (idempotent); returns its id (None if empty)."""
        st = t.untyped_storage()
        p = st.data_ptr()
        if not p:
            return None
        ent = self.live.get(p)
        if ent is not None:
            return ent[1]
        i = self.next_id
        self.next_id += 1
        n = st.nbytes()
        self.live[p] = [n, i]
        self.id_phase[i] = self.phase
        self.id_nbytes[i] = n
        self.id_desc[i] = (self._op if self.phase not in ("setup",) else "(registered)",
                           tuple(t.shape), str(t.dtype).replace("torch.", ""))
        self.cur += n
        weakref.finalize(st, self._free, p, i)
        if self.cur > self.phase_peak.get(self.phase, -1):
            self.phase_peak[self.phase] = self.cur
            self._pending = self._describe()
        if self.phase in self.log_phases and self.seg is not None:
            d = self._describe()
            self._rising = (self.cur - self.seg_start[(self.phase, self.seg)], d["autograd_node"], d["op"])
        if self.seg is not None and self.cur > self.seg_peak.get((self.phase, self.seg), -1):
            self.seg_peak[(self.phase, self.seg)] = self.cur
            self._seg_pending = True
        return i

    def id_of(self, t: torch.Tensor):
        ent = self.live.get(t.untyped_storage().data_ptr())
        return ent[1] if ent is not None else None

    def _flush(self, phase_too=True):
        """Record pending snapshots and the rising run before the live set changes."""
        if phase_too and self._pending is not None:
            self._snapshot()
        if self._seg_pending:
            self._seg_snapshot()
        if self._rising is not None:
            self.events[(self.phase, self.seg)].append(self._rising)
            self._rising = None

    def _free(self, p, i):
        ent = self.live.get(p)
        if ent is None or ent[1] != i:
            return
        self._flush()
        del self.live[p]
        self.cur -= ent[0]

    def _describe(self):
        node = None
        try:
            n = torch._C._current_autograd_node()
            node = n.name() if n is not None else None
        except (AttributeError, RuntimeError):  # pragma: no cover - private API
            node = None
        return {"op": self._op, "autograd_node": node}

    def _snapshot(self):
        self.phase_snap[self.phase] = {ent[1]: ent[0] for ent in self.live.values()}
        self.phase_at[self.phase] = self._pending
        self._pending = None

    def _seg_snapshot(self):
        self.seg_snap[(self.phase, self.seg)] = {ent[1]: ent[0] for ent in self.live.values()}
        self._seg_pending = False

    def set_segment(self, seg):
        """Start a new segment of the current phase (its peak starts at the current bytes)."""
        self._flush(phase_too=False)
        self.seg = seg
        key = (self.phase, seg)
        self.seg_start.setdefault(key, self.cur)
        if key not in self.seg_peak or self.cur > self.seg_peak[key]:
            self.seg_peak[key] = self.cur
            self.seg_snap[key] = {ent[1]: ent[0] for ent in self.live.values()}

    # -- phases ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def in_phase(self, name):
        if self._pending is not None:
            self._snapshot()
        self.phase = name
        self.phase_order.append(name)
        self.phase_peak[name] = self.cur
        self.phase_snap[name] = {ent[1]: ent[0] for ent in self.live.values()}
        self.phase_at[name] = {"op": "(phase start)", "autograd_node": None}
        try:
            with self:
                yield
        finally:
            self._flush()
            self.seg = None
            self.phase = "between"

    def mark(self, name):
        """Record the live bytes (and ids) at a phase boundary."""
        self.boundary[name] = (self.cur, frozenset(ent[1] for ent in self.live.values()))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self._op = str(func.overloadpacket.__name__) if hasattr(func, "overloadpacket") else str(func)
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                self.register(t)
        return out


# --------------------------------------------------------------------------------------------
# classification
# --------------------------------------------------------------------------------------------
class Categories:
    def __init__(self):
        self.sets = collections.defaultdict(set)  # category -> ids
        self.forward_phases = set()

    def add(self, cat, ids):
        self.sets[cat].update(i for i in ids if i is not None)

    def of(self, i, tr: LiveBytes):
        for cat in ("params", "buffers", "inputs", "grads", "optimizer_state", "kv_cache", "logits",
                    "loss"):
            if i in self.sets[cat]:
                return cat
        ph = tr.id_phase.get(i, "?")
        if i in self.sets["activations"]:
            return "activations"
        return f"{ph}_transient"

    def breakdown(self, snap, tr):
        out = collections.Counter()
        for i, n in snap.items():
            out[self.of(i, tr)] += n
        return dict(sorted(out.items()))


def tensors_in(obj):
    return [t for t in tree_flatten(obj)[0] if isinstance(t, torch.Tensor)]


def cache_tensors(cache):
    ts = []
    for layer in getattr(cache, "layers", []):
        for name in ("keys", "values"):
            t = getattr(layer, name, None)
            if isinstance(t, torch.Tensor):
                ts.append(t)
    return ts


def lm_head_of(model):
    head = model.get_output_embeddings()
    assert head is not None
    return head


# --------------------------------------------------------------------------------------------
# runs
# --------------------------------------------------------------------------------------------
def _setup(model, tr, cats, inputs):
    for p in model.parameters():
        cats.add("params", [tr.register(p)])
    for bname, bf in model.named_buffers():
        cats.add("buffers", [tr.register(bf)])
    for t in inputs:
        cats.add("inputs", [tr.register(t)])


def _logits_hook(tr, cats):
    def hook(mod, args, out):
        cats.add("logits", [tr.id_of(out)])
    return hook


def _segment_hooks(model, tr):
    """Tensor hooks that mark where the backward is: "head" (loss, LM head, final norm) until the
    gradient of the last decoder layer's output exists, then "layer{i}" from the gradient of layer
    i's output, then "embed" from the gradient of layer 0's input (embedding backward, the end)."""
    from .saved_bytes import decoder_layers

    layers = decoder_layers(model)
    handles = []

    def in_forward():
        return tr.phase.startswith("forward") and torch.is_grad_enabled()

    def fwd_pre(i):
        def hook(mod, args, kwargs):
            if tr.phase.startswith("forward"):
                tr.set_segment(f"layer{i}")
        return hook

    def fwd_post(mod, args, kwargs, out):
        if tr.phase.startswith("forward") and mod is layers[-1]:
            tr.set_segment("head")  # final norm, LM head, loss

    def out_hook(i):
        def hook(mod, args, kwargs, out):
            if not in_forward() or getattr(mod, "_peaks_seen", None) == tr.phase:
                return  # recomputation under checkpointing: no marker
            mod._peaks_seen = tr.phase
            t = next((x for x in tree_flatten(out)[0] if isinstance(x, torch.Tensor)), None)
            if t is not None and t.requires_grad:
                t.register_hook(lambda g: tr.set_segment(f"layer{i}"))
        return hook

    def in_hook(mod, args, kwargs):
        if not in_forward() or getattr(mod, "_peaks_seen_in", None) == tr.phase:
            return
        mod._peaks_seen_in = tr.phase
        t = next((x for x in tree_flatten((args, kwargs))[0] if isinstance(x, torch.Tensor)
                  and x.is_floating_point()), None)
        if t is not None and t.requires_grad:
            t.register_hook(lambda g: tr.set_segment("embed"))

    for i, m in enumerate(layers):
        handles.append(m.register_forward_pre_hook(fwd_pre(i), with_kwargs=True))
        handles.append(m.register_forward_hook(fwd_post, with_kwargs=True))
        handles.append(m.register_forward_hook(out_hook(i), with_kwargs=True))
    handles.append(layers[0].register_forward_pre_hook(in_hook, with_kwargs=True))
    return handles


def measure_train(model, input_ids, labels, *, foreach, fused=False, iterations=2, amp=False,
                  log_phases=(), make_optimizer=None):
    """Two training iterations (forward with loss, backward, AdamW step, zero_grad(set_to_none)).
    make_optimizer(trained parameters) builds another optimizer (engine/lab/optimizers.py)."""
    tr = LiveBytes()
    tr.log_phases = tuple(log_phases)
    cats = Categories()
    _setup(model, tr, cats, (input_ids, labels))
    head = lm_head_of(model)
    hd = head.register_forward_hook(_logits_hook(tr, cats))
    hds = _segment_hooks(model, tr)
    # only what is trained (LoRA: the adapters), as HF Trainer and PEFT's examples do
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.AdamW(trained, lr=1e-4, foreach=foreach, fused=fused) if make_optimizer is None
           else make_optimizer(trained))
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if amp else contextlib.nullcontext
    try:
        for it in range(1, iterations + 1):
            sfx = "" if it == 1 else f"_{it}"
            with tr.in_phase("forward" + sfx):
                tr.set_segment("embed")
                with autocast():
                    loss = model(input_ids=input_ids, labels=labels, use_cache=False).loss
            # the ModelOutput (and with it the logits) is dropped here, as HF Trainer does
            cats.add("loss", [tr.id_of(loss)])
            tr.mark("after_forward" + sfx)
            fwd_ids = tr.boundary["after_forward" + sfx][1]
            cats.add("activations", [i for i in fwd_ids if tr.id_phase.get(i) == "forward" + sfx])
            with tr.in_phase("backward" + sfx):
                tr.set_segment("head")
                loss.backward()
            del loss
            cats.add("grads", [tr.id_of(p.grad) for p in model.parameters() if p.grad is not None])
            tr.mark("after_backward" + sfx)
            with tr.in_phase("step" + sfx):
                opt.step()
            cats.add("optimizer_state", [tr.id_of(t) for st in opt.state.values() for t in tensors_in(st)])
            tr.mark("after_step" + sfx)
            with tr.in_phase("zero_grad" + sfx):
                opt.zero_grad(set_to_none=True)
            tr.mark("after_zero_grad" + sfx)
    finally:
        hd.remove()
        for h in hds:
            h.remove()
    grads_bytes = sum(tr.id_nbytes[i] for i in cats.sets["grads"]
                      if tr.id_phase[i] == "backward")  # first iteration's grads
    state_bytes = sum(tr.id_nbytes[i] for i in cats.sets["optimizer_state"])
    return tr, cats, {"grads_bytes": grads_bytes, "optimizer_state_bytes": state_bytes}


def _inference_segment_hooks(model, tr):
    """Segments of a prefill/decode forward: "embed", "layer{i}" from layer i's forward pre-hook,
    "head" (final norm, LM head, next-token logits) after the last layer."""
    from .saved_bytes import decoder_layers

    layers = decoder_layers(model)
    handles = []

    def pre(i):
        def hook(mod, args, kwargs):
            tr.set_segment(f"layer{i}")
        return hook

    def post(mod, args, kwargs, out):
        tr.set_segment("head")

    for i, m in enumerate(layers):
        handles.append(m.register_forward_pre_hook(pre(i), with_kwargs=True))
    handles.append(layers[-1].register_forward_hook(post, with_kwargs=True))
    return handles


def measure_inference(model, input_ids, *, decode_steps=3, logits_to_keep=0, context="no_grad",
                      log_phases=()):
    """Prefill of (b, s) with use_cache=True, then greedy decode steps, as generate() does them."""
    from transformers import DynamicCache

    tr = LiveBytes()
    tr.log_phases = tuple(log_phases)
    cats = Categories()
    _setup(model, tr, cats, (input_ids,))
    head = lm_head_of(model)
    hd = head.register_forward_hook(_logits_hook(tr, cats))
    hds = _inference_segment_hooks(model, tr)
    ctx = torch.inference_mode if context == "inference_mode" else torch.no_grad
    try:
        with ctx():
            cache = DynamicCache(config=model.config)
            ids = input_ids
            for step in range(decode_steps + 1):
                name = "prefill" if step == 0 else f"decode_{step}"
                with tr.in_phase(name):
                    tr.set_segment("embed")
                    out = model(input_ids=ids, past_key_values=cache, use_cache=True,
                                logits_to_keep=logits_to_keep)
                    # generate(): next-token logits copied to fp32, then the outputs are dropped
                    nxt = out.logits[:, -1, :].to(copy=True, dtype=torch.float32)
                    del out
                    ids = nxt.argmax(-1, keepdim=True)
                    del nxt
                cats.add("kv_cache", [tr.id_of(t) for t in cache_tensors(cache)])
                tr.mark("after_" + name)
            kv_bytes = sum(t.untyped_storage().nbytes() for t in cache_tensors(cache))
            del cache
    finally:
        hd.remove()
        for h in hds:
            h.remove()
    return tr, cats, {"kv_cache_bytes_final": kv_bytes}


# --------------------------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------------------------
LLAMA_BASE = {"b": 2, "s": 128, "h": 256, "a": 4, "kv_heads": 4, "f": 688, "L": 2, "V": 1000}
GPT2_BASE = {"b": 2, "s": 128, "h": 256, "a": 4, "kv_heads": 4, "f": 1024, "L": 2, "V": 1000}
LLAMA_SHAPES = [
    {},
    {"b": 1},
    {"b": 4},
    {"s": 256},
    {"h": 512, "f": 1376},
    {"a": 8, "kv_heads": 2},     # GQA
    {"L": 4},
    {"V": 4000},                 # logits dominate
    {"V": 250, "h": 512, "f": 1376},  # weights/activations dominate, small vocab
    {"f": 2048},
    {"b": 1, "s": 32, "h": 512, "f": 1376, "L": 4, "V": 250},  # weights dominate activations
    {"b": 4, "s": 256, "h": 512, "a": 8, "kv_heads": 2, "f": 1376, "L": 3, "V": 2000},
]
LORA_SHAPES = [
    {},
    {"b": 1},
    {"s": 256},
    {"h": 512, "f": 1376},
    {"a": 8, "kv_heads": 2},
    {"V": 4000},
    {"b": 4, "s": 256, "h": 512, "a": 8, "kv_heads": 2, "f": 1376, "L": 3, "V": 2000},
]
GPT2_SHAPES = [
    {},
    {"b": 1},
    {"s": 256},
    {"h": 512, "f": 2048},
    {"L": 4},
    {"V": 4000},
]


def case_list():
    cases = []

    def add(**c):
        c.setdefault("optimizer", "adamw" if c["mode"].startswith("train") else None)
        c.setdefault("foreach", None)
        c.setdefault("fused", False)
        c.setdefault("logits_to_keep", None)
        c.setdefault("context", None)
        c.setdefault("amp", False)
        c.setdefault("lora", False)
        cases.append(c)

    for dtype, shapes in (("bf16", LLAMA_SHAPES), ("fp32", LLAMA_SHAPES[:1] + [{"V": 4000}, {"s": 256}])):
        for attn in ("eager", "sdpa"):
            for sh in shapes:
                base = dict(arch="llama", dtype=dtype, attn=attn, **{**LLAMA_BASE, **sh})
                for foreach in (False, True):
                    add(mode="train", foreach=foreach, **base)
                    add(mode="train_ckpt", foreach=foreach, **base)
                for ltk in (0, 1):
                    add(mode="inference", logits_to_keep=ltk, context="no_grad", **base)
    # the CPU fused AdamW kernel, and inference_mode, at the base shape
    for attn in ("eager", "sdpa"):
        base = dict(arch="llama", dtype="bf16", attn=attn, **LLAMA_BASE)
        add(mode="train", foreach=False, fused=True, **base)
        add(mode="inference", logits_to_keep=0, context="inference_mode", **base)
    # autocast mixed precision: fp32 weights/grads/states, bf16 matmuls
    for sh in ({}, {"V": 4000}, {"h": 512, "f": 1376}):
        add(mode="train", foreach=True, amp=True,
            **dict(arch="llama", dtype="fp32", attn="sdpa", **{**LLAMA_BASE, **sh}))
    # ... with the fused step (no step temporaries, so the backward's points show), checkpointing, LoRA
    for attn in ("eager", "sdpa"):
        for sh in ({}, {"b": 4, "s": 256}, {"h": 512, "f": 1376}):
            base = dict(arch="llama", dtype="fp32", attn=attn, amp=True, **{**LLAMA_BASE, **sh})
            add(mode="train", foreach=False, fused=True, **base)
            add(mode="train_ckpt", foreach=False, fused=True, **base)
            add(mode="train", foreach=False, fused=True, lora=True, **base)
            add(mode="train_ckpt", foreach=False, fused=True, lora=True, **base)
    # LoRA (peft, r = 8 on q and v, fp32 adapters) on a frozen bf16 Llama: AdamW on the adapters only
    for attn in ("eager", "sdpa"):
        for sh in LORA_SHAPES:
            base = dict(arch="llama", dtype="bf16", attn=attn, lora=True, **{**LLAMA_BASE, **sh})
            for foreach in (False, True):
                add(mode="train", foreach=foreach, **base)
                add(mode="train_ckpt", foreach=foreach, **base)
    for dtype, shapes in (("bf16", GPT2_SHAPES), ("fp32", GPT2_SHAPES[:1])):
        for sh in shapes:
            base = dict(arch="gpt2", dtype=dtype, attn="eager", **{**GPT2_BASE, **sh})
            base["kv_heads"] = base["a"]
            base["f"] = 4 * base["h"]
            for foreach in (False, True):
                add(mode="train", foreach=foreach, **base)
                add(mode="train_ckpt", foreach=foreach, **base)
            for ltk in (0, 1):
                add(mode="inference", logits_to_keep=ltk, context="no_grad", **base)
    return cases


def _build(c):
    from .saved_bytes import apply_lora, build_model

    model = build_model(c["arch"], h=c["h"], a=c["a"], kv_heads=c["kv_heads"], f=c["f"], L=c["L"],
                        V=c["V"], dtype=c["dtype"], attn=c["attn"])
    if c.get("lora"):
        model = apply_lora(model)  # r = 8 on q_proj and v_proj, fp32 adapters (peft's defaults)
    return model


def run_one(c, model=None):
    """Measure one case; `model` (built by the caller: engine/lab/family_activations.py) or from c."""
    model = _build(c) if model is None else model
    g = torch.Generator().manual_seed(1)
    input_ids = torch.randint(0, c["V"], (c["b"], c["s"]), generator=g)
    params_bytes = sum(p.untyped_storage().nbytes() for p in model.parameters())
    buffers_bytes = sum(bf.untyped_storage().nbytes() for bf in model.buffers())
    n_params = sum(p.numel() for p in model.parameters())
    n_param_tensors = len(list(model.parameters()))
    max_param_numel = max(p.numel() for p in model.parameters())
    n_trainable_tensors = sum(1 for p in model.parameters() if p.requires_grad)
    if c["mode"].startswith("train"):
        if c["mode"] == "train_ckpt":
            model.gradient_checkpointing_enable()
        model.train()
        tr, cats, extra = measure_train(model, input_ids, input_ids.clone(), foreach=c["foreach"],
                                        fused=c["fused"], amp=c["amp"])
    else:
        model.train(False)  # inference mode: dropout off
        tr, cats, extra = measure_inference(model, input_ids, logits_to_keep=c["logits_to_keep"],
                                            context=c["context"])
    peak_phase = max(tr.phase_order, key=lambda p: (tr.phase_peak[p], -tr.phase_order.index(p)))
    live_at = {k: v[0] for k, v in tr.boundary.items()}
    live_at_breakdown = {k: cats.breakdown({i: tr.id_nbytes[i] for i in v[1]}, tr)
                         for k, v in tr.boundary.items()}
    phase_peaks = {p: tr.phase_peak[p] for p in tr.phase_order}
    phase_breakdown = {p: cats.breakdown(tr.phase_snap[p], tr) for p in tr.phase_order}
    # zero_grad only frees: its peak is the live bytes at its start (= after_step)
    res = dict(c)
    res.update(
        head_dim=c["h"] // c["a"],
        n_params=n_params,
        n_param_tensors=n_param_tensors,
        max_param_numel=max_param_numel,
        n_trainable_tensors=n_trainable_tensors,
        params_bytes=params_bytes,
        buffers_bytes=buffers_bytes,
        grads_bytes=extra.get("grads_bytes", 0),
        optimizer_state_bytes=extra.get("optimizer_state_bytes", 0),
        peak_bytes=tr.phase_peak[peak_phase],
        peak_phase=peak_phase,
        peak_at=tr.phase_at[peak_phase],
        peak_breakdown=phase_breakdown[peak_phase],
        live_at=live_at,
        live_at_breakdown=live_at_breakdown,
        phase_peaks=phase_peaks,
        phase_peak_at={p: tr.phase_at[p] for p in tr.phase_order},
        phase_peak_breakdown=phase_breakdown,
    )
    segs = collections.defaultdict(dict)
    for (ph, seg), v in tr.seg_peak.items():
        if ph in ("forward_2", "backward_2", "prefill", "decode_1"):
            segs[ph][seg] = {"start": tr.seg_start[(ph, seg)], "peak": v}
    if segs:
        res["segments"] = dict(segs)
        if peak_phase in segs:
            res["peak_segment"] = max(segs[peak_phase], key=lambda k: segs[peak_phase][k]["peak"])
    if "kv_cache_bytes_final" in extra:
        res["kv_cache_bytes_final"] = extra["kv_cache_bytes_final"]
    if c["mode"].startswith("train"):
        res["activations_bytes"] = live_at_breakdown["after_forward"].get("activations", 0)
    # consistency: the breakdown sums to the peak
    for p in tr.phase_order:
        assert sum(phase_breakdown[p].values()) == tr.phase_peak[p], (p, phase_breakdown[p])
    return res


def case_name(c):
    extra = ""
    if c["mode"].startswith("train"):
        extra = (f" foreach={c['foreach']}" + (" fused" if c["fused"] else "") + (" amp" if c["amp"] else "")
                 + (" lora" if c.get("lora") else ""))
    else:
        extra = f" ltk={c['logits_to_keep']} {c['context']}"
    return (f"{c['arch']} {c['dtype']} {c['attn']} {c['mode']}{extra} b={c['b']} s={c['s']} h={c['h']} "
            f"a={c['a']} kv={c['kv_heads']} f={c['f']} L={c['L']} V={c['V']}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--limit", type=int, default=None, help="only the first N cases (debugging)")
    ap.add_argument("--only", default=None, help="only cases whose name contains this substring")
    args = ap.parse_args(argv)

    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    from .saved_bytes import versions

    cases = case_list()
    if args.only:
        cases = [c for c in cases if args.only in case_name(c)]
    cases = cases[: args.limit]
    results = []
    t0 = time.time()
    for i, c in enumerate(cases):
        t = time.time()
        r = run_one(c)
        results.append(r)
        print(f"[{i + 1}/{len(cases)}] {case_name(c)}: peak={r['peak_bytes']} in {r['peak_phase']} "
              f"({time.time() - t:.1f}s)", file=sys.stderr)
    doc = {
        "description": (
            "Peak live tensor bytes (sum of storages returned by ops, plus parameters, buffers and "
            "input ids; kernel-internal scratch not included) of HF transformers models built from "
            "configs with random weights, measured on the CPU with a TorchDispatchMode tracker over "
            "two training iterations (forward with loss, backward, AdamW step, zero_grad(set_to_none)) "
            "or an inference prefill + decode steps. Generated by "
            "`python -m vram_eval.lab.peaks --out tests/data/measured/peaks.json`; derivation in "
            "validation/PEAKS.md and validation/peaks_derived.py; vram-eval's formulas in "
            "formulas/peaks.formula."),
        "versions": versions(),
        "elapsed_s": round(time.time() - t0, 1),
        "cases": results,
    }
    write_json(args.out, doc)
    print(f"wrote {len(results)} cases to {args.out} in {time.time() - t0:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
