"""Measure the bytes that autograd keeps for backward (activation memory) of HF transformer models.

Two independent instruments are used during one training-mode forward pass:

* ``torch.autograd.graph.saved_tensors_hooks``: ``pack`` sees every tensor that autograd saves for
  backward.  Each underlying storage is counted once (keyed by ``untyped_storage().data_ptr()``),
  storages of parameters and buffers are excluded, and each saved storage is attributed to the
  decoder layer whose forward was running when it was saved ("owner").  A storage saved by more than
  one owner (e.g. RoPE cos/sin, shared by all layers) is reported as "shared".
* a ``TorchDispatchMode`` live-storage tracker: every storage created by an op during forward is
  tracked with a weakref finalizer, so after forward we know exactly which storages are still alive.
  This catches memory that is held without going through ``pack`` (e.g. the layer inputs that
  non-reentrant activation checkpointing keeps in a closure) and cross-checks the hook numbers.

Nothing here runs at import time.
"""
from __future__ import annotations

import collections
import contextlib
import platform
import weakref
from dataclasses import dataclass, field

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

BF16 = torch.bfloat16
FP32 = torch.float32
DTYPE_NAMES = {"bf16": BF16, "fp32": FP32}


# --------------------------------------------------------------------------------------------
# model construction
# --------------------------------------------------------------------------------------------
def llama_config(h, a, kv_heads, f, L, V, attn="sdpa", max_pos=4096):
    from transformers import LlamaConfig

    cfg = LlamaConfig(
        hidden_size=h,
        num_attention_heads=a,
        num_key_value_heads=kv_heads,
        intermediate_size=f,
        num_hidden_layers=L,
        vocab_size=V,
        max_position_embeddings=max_pos,
        tie_word_embeddings=False,
        attention_dropout=0.0,
    )
    cfg._attn_implementation = attn
    return cfg


def gpt2_config(h, a, L, V, attn="eager", n_positions=1024, activation_function="gelu_new"):
    from transformers import GPT2Config

    cfg = GPT2Config(
        n_embd=h,
        n_head=a,
        n_layer=L,
        vocab_size=V,
        n_positions=n_positions,
        activation_function=activation_function,
    )  # dropouts keep GPT-2 defaults: resid_pdrop = embd_pdrop = attn_pdrop = 0.1
    cfg._attn_implementation = attn
    return cfg


def mixtral_config(h, a, kv_heads, f, L, V, experts, experts_per_token, attn="sdpa", max_pos=4096):
    """Mixtral: Llama blocks whose MLP is `experts` SwiGLU experts behind a top-k router. The
    router's auxiliary loss is off (its coefficient 0), as when output_router_logits is unset."""
    from transformers import MixtralConfig

    cfg = MixtralConfig(
        hidden_size=h, num_attention_heads=a, num_key_value_heads=kv_heads, intermediate_size=f,
        num_hidden_layers=L, vocab_size=V, max_position_embeddings=max_pos, num_local_experts=experts,
        num_experts_per_tok=experts_per_token, tie_word_embeddings=False, attention_dropout=0.0,
        sliding_window=None, router_aux_loss_coef=0.0,
    )
    cfg._attn_implementation = attn
    return cfg


def build_model(arch, *, h, a, kv_heads, f, L, V, dtype="bf16", attn="eager",
                activation_function="gelu_new", seed=0, experts=1, experts_per_token=1):
    """Random-weight model from a config (no weights are downloaded), in training mode."""
    from transformers import GPT2LMHeadModel, LlamaForCausalLM, MixtralForCausalLM

    torch.manual_seed(seed)
    if arch == "llama":
        cfg = llama_config(h, a, kv_heads, f, L, V, attn=attn)
        model = LlamaForCausalLM(cfg)
    elif arch == "mixtral":
        cfg = mixtral_config(h, a, kv_heads, f, L, V, experts, experts_per_token, attn=attn)
        model = MixtralForCausalLM(cfg)
    elif arch == "gpt2":
        assert kv_heads == a and f == 4 * h, "GPT-2 has MHA and f = 4h"
        cfg = gpt2_config(h, a, L, V, attn=attn, activation_function=activation_function)
        model = GPT2LMHeadModel(cfg)
    else:
        raise ValueError(arch)
    model.config._attn_implementation = attn
    model = model.to(DTYPE_NAMES[dtype])
    model.train()
    return model


def decoder_layers(model):
    """The list of decoder-layer modules (works through a peft wrapper too)."""
    for m in model.modules():
        for name in ("layers", "h"):
            lst = getattr(m, name, None)
            if isinstance(lst, torch.nn.ModuleList) and len(lst) > 0:
                return list(lst)
    raise RuntimeError("no decoder layers found")


def apply_lora(model, r=8, target_modules=("q_proj", "v_proj"), lora_alpha=16):
    """Wrap with peft LoRA (defaults of peft: adapter dropout 0, adapters autocast to fp32)."""
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=r, lora_alpha=lora_alpha, target_modules=list(target_modules),
                     lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    pm = get_peft_model(model, cfg)
    pm.train()
    return pm


# --------------------------------------------------------------------------------------------
# instruments
# --------------------------------------------------------------------------------------------
def storage_key(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def storage_nbytes(t: torch.Tensor) -> int:
    return t.untyped_storage().nbytes()


class _OpNames(TorchFunctionMode):
    """Keeps the name of the outermost torch function currently running (for labelling only)."""

    def __init__(self):
        super().__init__()
        self.stack = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func))
        self.stack.append(name)
        try:
            return func(*args, **(kwargs or {}))
        finally:
            self.stack.pop()


class _LiveStorages(TorchDispatchMode):
    """Tracks storages created by ops while active; entries vanish when a storage is freed."""

    def __init__(self, ignore=()):
        super().__init__()
        self.ignore = set(ignore)  # storages that existed before (parameters, buffers, inputs)
        self.live = {}  # data_ptr -> nbytes
        self.peak = 0
        self.cur = 0

    def _free(self, ptr):
        n = self.live.pop(ptr, None)
        if n is not None:
            self.cur -= n

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                st = t.untyped_storage()
                p = st.data_ptr()
                if p and p not in self.live and p not in self.ignore:
                    self.live[p] = st.nbytes()
                    self.cur += st.nbytes()
                    self.peak = max(self.peak, self.cur)
                    weakref.finalize(st, self._free, p)
        return out


@dataclass
class SavedRecord:
    ptr: int
    storage_nbytes: int
    view_nbytes: int
    shape: tuple
    dtype: torch.dtype
    owner: object  # layer index (int) or "outside"
    module: str
    op: str


@dataclass
class ForwardMeasurement:
    records: list = field(default_factory=list)  # SavedRecord for every pack() call (non-param)
    param_saved: list = field(default_factory=list)  # SavedRecord for parameter/buffer storages
    ckpt_inputs: dict = field(default_factory=dict)  # ptr -> (nbytes, owners, (shape, dtype))
    live_after_forward: dict = field(default_factory=dict)  # ptr -> nbytes, created in fwd, alive
    output_ptrs: set = field(default_factory=set)
    L: int = 0


def measure_forward(model, input_ids, labels, *, checkpointing=False, keep_graph=False,
                    module_names=True, keep_packed=None):
    """Run one forward (with loss) and record everything saved for backward.

    Returns (ForwardMeasurement, output, live-storage tracker).  The autograd graph is kept alive
    through ``output``.  With ``keep_packed`` (a list), every packed tensor is appended to it, so
    that no saved storage is freed (and its address reused) before the caller has looked.
    """
    layers = decoder_layers(model)
    layer_index = {id(m): i for i, m in enumerate(layers)}
    exclude = {storage_key(p) for p in model.parameters()}
    exclude |= {storage_key(b) for b in model.buffers()}
    exclude.discard(0)

    state = {"layer": "outside"}
    modstack = []
    meas = ForwardMeasurement(L=len(layers))
    opnames = _OpNames()
    handles = []

    def pre_layer(mod, args, kwargs):
        state["layer"] = layer_index[id(mod)]
        if checkpointing:
            for t in tree_flatten((args, kwargs))[0]:
                if isinstance(t, torch.Tensor):
                    p = storage_key(t)
                    if p in exclude:
                        continue
                    nb, owners, desc = meas.ckpt_inputs.get(
                        p, (storage_nbytes(t), set(), (tuple(t.shape), str(t.dtype))))
                    owners.add(state["layer"])
                    meas.ckpt_inputs[p] = (nb, owners, desc)

    def post_layer(mod, args, kwargs, out):
        state["layer"] = "outside"

    for m in layers:
        handles.append(m.register_forward_pre_hook(pre_layer, with_kwargs=True))
        handles.append(m.register_forward_hook(post_layer, with_kwargs=True))
    if module_names:
        names = {id(m): n for n, m in model.named_modules()}

        def push(mod, args):
            modstack.append(names.get(id(mod), "?"))

        def pop(mod, args, out):
            modstack.pop()

        for m in model.modules():
            handles.append(m.register_forward_pre_hook(push))
            handles.append(m.register_forward_hook(pop))

    def pack(t):
        p = storage_key(t)
        rec = SavedRecord(
            ptr=p, storage_nbytes=storage_nbytes(t), view_nbytes=t.nbytes,
            shape=tuple(t.shape), dtype=t.dtype, owner=state["layer"],
            module=modstack[-1] if modstack else "", op=opnames.stack[-1] if opnames.stack else "",
        )
        (meas.param_saved if p in exclude else meas.records).append(rec)
        if keep_packed is not None:
            keep_packed.append(t)
        return t

    def unpack(t):
        return t

    live = _LiveStorages(ignore=exclude | {storage_key(input_ids), storage_key(labels)})
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, unpack), opnames, live:
            out = model(input_ids=input_ids, labels=labels, use_cache=False)
        meas.live_after_forward = {p: n for p, n in live.live.items() if p not in exclude}
        for t in (out.loss, out.logits):
            meas.output_ptrs.add(storage_key(t))
    finally:
        for hd in handles:
            hd.remove()
    return meas, out, live


def summarize(meas: ForwardMeasurement):
    """Per-owner byte counts with every storage counted once.

    A storage whose owners (layers that saved it / held it as checkpoint input) are exactly one
    layer is that layer's; a storage with several owners is "shared"; owner "outside" is non-layer.
    """
    owners = collections.defaultdict(set)
    nbytes = {}
    for r in meas.records:
        owners[r.ptr].add(r.owner)
        nbytes[r.ptr] = max(nbytes.get(r.ptr, 0), r.storage_nbytes)
    for p, (nb, own, _desc) in meas.ckpt_inputs.items():
        owners[p] |= own
        nbytes[p] = max(nbytes.get(p, 0), nb)

    per_layer = [0] * meas.L
    shared = 0
    outside = 0
    for p, own in owners.items():
        if len(own) > 1:
            shared += nbytes[p]
        else:
            (o,) = own
            if o == "outside":
                outside += nbytes[p]
            else:
                per_layer[o] += nbytes[p]
    saved_total = sum(nbytes.values())
    view_sum = sum(r.view_nbytes for r in meas.records)
    # live cross-check: storages alive after forward that nothing above explains
    unexplained = {p: n for p, n in meas.live_after_forward.items() if p not in owners}
    out_bytes = sum(n for p, n in unexplained.items() if p in meas.output_ptrs)
    other = sum(n for p, n in unexplained.items() if p not in meas.output_ptrs)
    missing = [p for p in owners if p not in meas.live_after_forward]
    return {
        "per_layer_list": per_layer,
        "shared_bytes": shared,
        "outside_bytes": outside,
        "saved_total_bytes": saved_total,
        "saved_view_nbytes_sum": view_sum,
        "param_or_buffer_saved_count": len(meas.param_saved),
        "live_after_forward_bytes": sum(meas.live_after_forward.values()),
        "live_output_only_bytes": out_bytes,
        "live_unexplained_bytes": other,
        "saved_not_created_in_forward": len(missing),
    }


def measure_backward(live: "_LiveStorages", out):
    """Run backward under the same live-storage tracker; returns the peak of tracked bytes.

    Tracked bytes = every storage created by an op since the start of forward and still alive
    (saved activations, outputs, transients, recomputed activations, parameter gradients).
    """
    live.peak = live.cur
    with live:
        out.loss.backward()
    return live.peak


@contextlib.contextmanager
def native_dropout_everywhere():
    """Route F.dropout through ``torch.native_dropout`` (the fused kernel CUDA uses).

    On CPU ``F.dropout`` is ``input * (bernoulli mask / (1-p))`` and autograd saves the scaled mask
    in the input dtype; on CUDA ``F.dropout`` calls ``native_dropout``, whose backward saves a bool
    mask (1 byte/element).  This patch reproduces the CUDA saved-tensor layout on CPU.
    """
    import torch.nn.functional as F

    orig = F.dropout

    def dropout(input, p=0.5, training=True, inplace=False):
        if training and 0.0 < p < 1.0 and input.numel() > 0:
            return torch.native_dropout(input, p, True)[0]
        return orig(input, p, training, inplace)

    F.dropout = dropout
    try:
        yield
    finally:
        F.dropout = orig


def versions():
    import peft
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "python": platform.python_version(),
        "cpu": cpu,
        "device": "cpu",
        "torch_num_threads": torch.get_num_threads(),
    }


def saved_tensor_table(meas: ForwardMeasurement, layer=0):
    """Unique saved storages of one owner (first occurrence), for the derivation listing."""
    seen = {}
    for r in meas.records:
        if r.owner != layer:
            continue
        if r.ptr not in seen:
            seen[r.ptr] = {"module": r.module, "op": r.op, "shape": list(r.shape),
                           "dtype": str(r.dtype).replace("torch.", ""),
                           "storage_bytes": r.storage_nbytes, "view_bytes": r.view_nbytes,
                           "times_saved": 0}
        seen[r.ptr]["times_saved"] += 1
    return list(seen.values())


def run_case(arch, *, b, s, h, a, kv_heads, f, L, V, dtype="bf16", attn="eager",
             checkpointing=False, lora=False, activation_function="gelu_new",
             dropout_impl="cpu_default", with_backward=True, table_layer=None, seed=0, amp=False,
             experts=1, experts_per_token=1):
    """Build, run one forward (+ optionally backward) and return the measurement summary."""
    model = build_model(arch, h=h, a=a, kv_heads=kv_heads, f=f, L=L, V=V, dtype=dtype, attn=attn,
                        activation_function=activation_function, seed=seed, experts=experts,
                        experts_per_token=experts_per_token)
    if checkpointing:
        model.gradient_checkpointing_enable()
    if lora:
        model = apply_lora(model)
    g = torch.Generator().manual_seed(seed + 1)
    input_ids = torch.randint(0, V, (b, s), generator=g)
    labels = input_ids.clone()
    patch = native_dropout_everywhere() if dropout_impl == "native_dropout" else contextlib.nullcontext()
    # amp: an fp32 model under bf16 autocast (what HF Trainer's bf16=True does)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    with patch, autocast:
        meas, out, live = measure_forward(model, input_ids, labels, checkpointing=checkpointing)
        summ = summarize(meas)
        summ["peak_forward_tracked_bytes"] = live.peak
        res = {"summary": summ, "meas": meas}
        if table_layer is not None:
            res["table"] = saved_tensor_table(meas, table_layer)
            res["table_outside"] = saved_tensor_table(meas, "outside")
            res["ckpt_inputs"] = [
                {"shape": list(d[0]), "dtype": d[1].replace("torch.", ""), "storage_bytes": nb,
                 "layers": sorted(o for o in own if o != "outside")}
                for nb, own, d in meas.ckpt_inputs.values()]
        if with_backward:
            summ["peak_fwd_bwd_tracked_bytes"] = measure_backward(live, out)
            summ["param_grad_bytes"] = sum(
                p.grad.untyped_storage().nbytes() for p in model.parameters() if p.grad is not None)
    del out
    return res
