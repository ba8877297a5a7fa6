"""Closed-form saved-activation bytes derived from the measurements (see ACTIVATIONS.md).

Pure integer arithmetic, no torch import.  Symbols:
    b batch, s sequence, h hidden, a query heads, kv key/value heads, d head_dim (= h // a),
    f MLP intermediate size, V vocab, r LoRA rank,
    e   activation element size (2 bf16, 4 fp32),
    m   element size of a saved dropout mask: e on CPU (F.dropout = x * scaled_mask, mask kept in
        x's dtype), 1 with torch.native_dropout (bool mask; the kernel CUDA uses),
    t   element size of LayerNorm mean/rstd: e on CPU (measured), 4 on CUDA (fp32 accumulate type;
        not measured here).

All functions return bytes.  ``predict(case)`` accepts a case dict as written in
tests/data/measured/activations.json.
"""
from __future__ import annotations

LORA_R = 8
LORA_TARGETS = 2  # q_proj, v_proj
FP32 = 4
INT64 = 8


def ce_bytes(b, s, V):
    """Cross-entropy saves: log_softmax output (fp32, b*s*V), int64 targets, fp32 total_weight.

    The targets are ``pad(labels, (0, 1))[..., 1:].contiguous()``: for b == 1 the slice is already
    contiguous, so the saved storage is the whole padded (1, s+1) labels tensor.
    """
    targets = INT64 * (b * s if b > 1 else s + 1)
    return FP32 * b * s * V + targets + FP32


def elem_bytes(dtype: str) -> int:
    return {"bf16": 2, "fp16": 2, "fp32": 4}[dtype]


# ----------------------------------------------------------------------------------- Llama
def _eager_kv(b, s, a, kv, d):
    """Elements of the K (or V) that eager attention saves: repeat_kv's expansion to a heads, but
    with one KV head and b = 1 the expansion stays a view in torch.matmul (unexpanded K, V saved)."""
    return b * s * (kv if kv == 1 and b == 1 else a) * d


def llama_layer(b, s, h, a, kv, f, e, attn, d=None):
    """(i)/(ii) One Llama decoder layer, all weights trainable, no checkpointing."""
    d = d if d is not None else h // a
    bs, bsh, bsf = b * s, b * s * h, b * s * f
    q = b * s * a * d  # query / attention-output elements
    # RMSNorm (x2): fp32 copy of the input (pow), rsqrt (fp32, b*s), normalized input of `weight *`
    norms = 2 * (FP32 * bsh + FP32 * bs + e * bsh)
    mlp = e * bsh + 4 * e * bsf  # gate/up input, silu input, silu output, up output, down input
    if attn == "eager":
        # q_proj/k_proj/v_proj input; q, repeat_kv'ed k and v (a heads!), o_proj input;
        # softmax output in fp32 and its cast to e (the cast is a no-op in fp32)
        attn_b = e * bsh + 2 * e * q + 2 * e * _eager_kv(b, s, a, kv, d) + FP32 * b * a * s * s + \
            (e * b * a * s * s if e != FP32 else 0)
    elif attn == "sdpa":
        # qkv-proj input; CPU flash kernel saves q, k, v (kv heads, enable_gqa), out (= o_proj input)
        # and the fp32 logsumexp (b, a, s)
        attn_b = e * bsh + 2 * e * q + 2 * e * b * s * kv * d + FP32 * b * a * s
    else:
        raise ValueError(attn)
    return norms + attn_b + mlp


def llama_lora_layer(b, s, h, a, kv, f, e, attn, first=False, r=LORA_R, n_targets=LORA_TARGETS,
                     d=None):
    """(v) Llama layer with peft LoRA on q_proj, v_proj (base frozen, bf16; adapters fp32 = peft
    default ``autocast_adapter_dtype``).  ``first``: layer 0, whose input does not require grad."""
    assert e == 2, "measured for a bf16 base only"
    d = d if d is not None else h // a
    bs, bsh, bsf = b * s, b * s * h, b * s * f
    q = b * s * a * d
    # frozen RMSNorm weight: only the fp32 input copy and rsqrt are saved
    norms = 2 * (FP32 * bsh + FP32 * bs)
    # every adapted Linear casts its input to fp32 separately (saved by lora_A), lora_B input fp32
    lora = n_targets * (FP32 * bsh + FP32 * b * s * r)
    mlp = 3 * e * bsf  # silu input, silu output, up output (frozen down_proj saves no input)
    if attn == "eager":
        attn_b = e * q + 2 * e * _eager_kv(b, s, a, kv, d) + FP32 * b * a * s * s + e * b * a * s * s
    else:
        attn_b = 2 * e * q + 2 * e * b * s * kv * d + FP32 * b * a * s
    total = norms + lora + attn_b + mlp
    if first:
        total -= FP32 * bsh + FP32 * bs  # input_layernorm saves nothing
        if attn == "eager":
            total -= e * q  # k does not require grad: q @ k^T saves k only
    return total


def llama_non_layer(b, s, h, a, V, e, attn, checkpointing, lora, d=None):
    """Embedding ids, final norm, lm_head input, cross-entropy, + storages shared by layers."""
    d = d if d is not None else h // a
    bs, bsh = b * s, b * s * h
    ids = 0 if lora else INT64 * bs  # embedding backward keeps input_ids (trainable embedding)
    final_norm = FP32 * bsh + FP32 * bs + (0 if lora else e * bsh)
    head_in = 0 if lora else e * bsh
    # HF ForCausalLMLoss: logits.float() -> cross_entropy = log_softmax (fp32 output saved) +
    # nll_loss (int64 targets, fp32 scalar total_weight)
    ce = ce_bytes(b, s, V)
    shared = 2 * s * d * e  # RoPE cos and sin, (1, s, d), saved by every layer's rope multiply
    if checkpointing:
        shared += INT64 * s  # position_ids (1, s): a layer kwarg held by the checkpoint closure
        if attn == "eager":
            shared += b * s * s * e  # 4-D additive causal mask (b, 1, s, s), also a kwarg
    return ids + final_norm + head_in + ce + shared


# ----------------------------------------------------------------------------------- GPT-2
def gpt2_layer(b, s, h, a, f, e, attn, activation="gelu_new", m=None, t=None):
    """(iii) GPT-2 block, dropout 0.1 on attention probs, attention output, MLP output."""
    m = e if m is None else m
    t = e if t is None else t
    bs, bsh, bsf = b * s, b * s * h, b * s * f
    ln = 2 * (e * bsh + 2 * t * bs)  # LayerNorm input + mean + rstd (x2)
    linear_in = 3 * e * bsh  # c_attn, attn.c_proj, mlp.c_fc inputs
    resid_masks = 2 * m * bsh  # resid dropout after attention and after MLP
    if attn == "eager":
        # q, k, v; softmax output (e); attention dropout mask (m); dropped probs (e)
        core = 3 * e * bsh + (2 * e + m) * b * a * s * s
    elif attn == "sdpa":
        # CPU: dropout_p > 0 -> math backend, computed in fp32: q*scale, k^T*scale, v, softmax,
        # dropout mask (fp32), dropped probs; output cast back to e (c_proj input counted above)
        core = 3 * FP32 * bsh + 3 * FP32 * b * a * s * s
    else:
        raise ValueError(attn)
    if activation == "gelu_new":
        # 0.5*x*(1+tanh(c*(x+0.044715*x^3))) in Python: saves x, tanh out, 0.5*x, 1+tanh
        act = 4 * e * bsf
    elif activation in ("gelu_pytorch_tanh", "gelu"):
        act = e * bsf  # one fused op saves its input
    else:
        raise ValueError(activation)
    mlp_out_in = e * bsf  # mlp.c_proj input
    return ln + linear_in + resid_masks + core + act + mlp_out_in


def gpt2_non_layer(b, s, h, V, e, attn, checkpointing, m=None, t=None):
    m = e if m is None else m
    t = e if t is None else t
    bs, bsh = b * s, b * s * h
    ids = INT64 * bs + INT64 * s  # wte input_ids (b, s), wpe position_ids (1, s)
    embd_drop = m * bsh
    ln_f = e * bsh + 2 * t * bs
    head_in = e * bsh
    ce = ce_bytes(b, s, V)
    shared = 0
    if checkpointing and attn == "eager":
        shared += b * s * s * e  # (b, 1, s, s) causal mask kwarg held by the checkpoint closures
    return ids + embd_drop + ln_f + head_in + ce + shared


# ------------------------------------------------------------------------------ dispatcher
def predict(c: dict) -> dict:
    """Predicted per-layer (steady state), first-layer and non-layer bytes for a measured case."""
    b, s, h, a, kv, f, L, V = (c[k] for k in ("b", "s", "h", "a", "kv_heads", "f", "L", "V"))
    e = elem_bytes(c["dtype"])
    ck = c["checkpointing"]
    if c["arch"] == "llama":
        if ck:
            layer = first = e * b * s * h  # (iv) only the layer input (hidden_states)
        elif c["lora"]:
            layer = llama_lora_layer(b, s, h, a, kv, f, e, c["attn"])
            first = llama_lora_layer(b, s, h, a, kv, f, e, c["attn"], first=True)
        else:
            layer = first = llama_layer(b, s, h, a, kv, f, e, c["attn"])
        non_layer = llama_non_layer(b, s, h, a, V, e, c["attn"], ck, c["lora"])
    elif c["arch"] == "gpt2":
        m = 1 if c.get("dropout_impl") == "native_dropout" else e
        if ck:
            layer = first = e * b * s * h
        else:
            layer = first = gpt2_layer(b, s, h, a, f, e, c["attn"],
                                       c.get("activation_function", "gelu_new"), m=m)
        non_layer = gpt2_non_layer(b, s, h, V, e, c["attn"], ck, m=m)
    else:
        raise ValueError(c["arch"])
    total = first + (L - 1) * layer + non_layer
    return {"per_layer_bytes": layer, "first_layer_bytes": first, "non_layer_bytes": non_layer,
            "total_bytes": total}
