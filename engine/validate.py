"""``vram-eval validate SPEC``: the formulas against a real PyTorch model.

Builds the spec's architecture at a small size (random weights, nothing is
downloaded), measures it with the instruments in ``engine/lab/`` (``vram_eval.lab``) — parameters
counted by PyTorch, the bytes autograd saves for backward, per layer and
outside the layers — and prints predicted vs measured with the error. The
engine itself never imports torch: only this command does, on demand, and it
needs the optional extra (torch, transformers, peft).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

from .errors import InvalidValue, LimitExceeded, Location, MissingDependency, SpecError, UnboundInput
from .forward import evaluate
from .hardware import GPU_MEMORY
from .problem import Problem
from .spec import bind, parse_set

__all__ = ["SCALES", "Validation", "validate"]

# The sizes a run is scaled to; the spec's ratios (GQA, f/h, head count) are kept.
SCALES = {
    "tiny": dict(h=256, L=2, V=1000, b=2, s=128),
    "small": dict(h=512, L=4, V=4000, b=2, s=256),
}
INSTALL_HINT = ("install the validate extra: pip install 'vram-eval[validate]' "
                "(on these machines: pip install torch==2.13.0 transformers peft)")


@dataclass(frozen=True)
class Validation:
    spec: Optional[str]
    arch: str
    shape: dict  # the scaled shape that was built
    rows: Tuple[Tuple[str, int, int], ...]  # (what, predicted bytes or count, measured)
    versions: dict

    def as_dict(self) -> dict:
        return {
            "spec": self.spec, "arch": self.arch, "shape": self.shape, "versions": self.versions,
            "rows": [{"what": w, "predicted": p, "measured": m, "error_percent": _error(p, m)}
                     for w, p, m in self.rows],
        }


def _error(predicted: int, measured: int) -> float:
    return 0.0 if predicted == measured else round(100.0 * (predicted - measured) / measured, 3)


def _harness():
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # its config warnings are not ours to show
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
        from .lab import saved_bytes
    except ImportError as exc:
        raise MissingDependency(f"validate needs PyTorch and transformers ({exc.name} is not installed)",
                                Location("validate"), hint=INSTALL_HINT, package=exc.name, extra="validate") from None
    return saved_bytes


def scaled_shape(problem: Problem, scale: str) -> dict:
    """The spec's architecture at a small size, keeping its proportions."""
    if scale not in SCALES:
        raise InvalidValue[SpecError](f"unknown scale '{scale}'", Location("--scale"), hint="tiny or small",
                                      name="scale", value=scale, allowed=tuple(SCALES))
    result = evaluate(problem.ruleset, problem.bindings)
    get = lambda n: result.values.get(n)  # noqa: E731
    arch = get("arch").value if get("arch") is not None else "gpt"
    if any(get(n) is None for n in ("h", "a", "kv_heads")):
        raise UnboundInput[SpecError]("validate needs the model's shape (h, a, kv_heads, ...)", Location(problem.spec_path),
                                      name="validate", missing=tuple(n for n in ("h", "a", "kv_heads") if get(n) is None))
    if get("experts") is not None and int(get("experts")) > 1:
        raise InvalidValue[SpecError]("validate builds dense Llama-style and GPT-2 blocks; this spec is a mixture of experts",
                                      Location(problem.spec_path), hint="validate a dense model of the same family",
                                      name="experts", value=int(get("experts")), expected="a dense model")
    if arch == "llama" and (get("qkv_bias") or get("attention_bias") or get("mlp_bias")):
        raise InvalidValue[SpecError]("validate builds Llama blocks without biases; this spec has attention or MLP biases",
                                      Location(problem.spec_path), name="attention_bias", value=True,
                                      expected="no biases")
    size = dict(SCALES[scale])
    a, kv = int(get("a")), int(get("kv_heads"))
    heads = 8 if scale == "small" else 4
    kv_heads = max(1, heads * kv // a)
    if arch == "llama":
        f = max(8, int(round(size["h"] * float(get("f") / get("h")) / 8)) * 8)
    else:
        f = 4 * size["h"]
        kv_heads = heads
    shape = dict(arch="llama" if arch == "llama" else "gpt2", h=size["h"], a=heads, kv_heads=kv_heads, f=f,
                 L=size["L"], V=size["V"], b=size["b"], s=size["s"])
    _check_fits_memory(problem, shape)
    return shape


def _check_fits_memory(problem: Problem, shape: dict) -> None:
    """Refuse a run that would not fit in this machine's memory: the formulas' own peak of the
    scaled model's training step, in fp32 with eager attention (more than the bf16 runs need)."""
    need = int(_predict(problem, shape, "eager", ["weight_dtype=fp32", "framework=pytorch"])["peak_allocated_training"])
    try:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not on Linux
        return
    if need > available // 2:
        raise LimitExceeded[SpecError](f"this scale needs about {need / 2**30:.1f} GiB, more than half of this machine's "
                                       f"free memory ({available / 2**30:.1f} GiB)", Location("--scale"),
                                       hint="use --scale tiny", what="memory", limit=available // 2, amount=need)


def validate(problem: Problem, scale: str = "tiny") -> Validation:
    shape = scaled_shape(problem, scale)
    harness = _harness()
    rows: List[Tuple[str, int, int]] = []
    for attn in ("eager", "sdpa"):
        if shape["arch"] == "gpt2" and attn == "sdpa":
            continue  # GPT-2 with dropout takes the CPU math kernel there; CUDA fuses it (not comparable)
        measured = harness.run_case(shape["arch"], b=shape["b"], s=shape["s"], h=shape["h"], a=shape["a"],
                                    kv_heads=shape["kv_heads"], f=shape["f"], L=shape["L"], V=shape["V"],
                                    dtype="bf16", attn=attn, with_backward=False)["summary"]
        predicted = _predict(problem, shape, attn)
        layer = measured["per_layer_list"][-1]
        outside = measured["outside_bytes"] + measured["shared_bytes"]
        rows.append((f"activations per layer ({attn})", int(predicted["activations_per_layer"]), layer))
        rows.append((f"activations outside the layers ({attn})", int(predicted["outside_layers"]), outside))
        rows.append((f"activations, whole model ({attn})", int(predicted["activations"]),
                     sum(measured["per_layer_list"]) + outside))
    model = harness.build_model(shape["arch"], h=shape["h"], a=shape["a"], kv_heads=shape["kv_heads"], f=shape["f"],
                                L=shape["L"], V=shape["V"], dtype="bf16")
    counted = sum(p.numel() for p in model.parameters())
    rows.insert(0, ("parameters (count)", int(_predict(problem, shape, "eager")["params"]), counted))
    rows.append(_kv_row(problem, shape))
    rows += _peak_rows(problem, shape)
    return Validation(problem.spec_path, shape["arch"], shape, tuple(rows), harness.versions())


def _kv_row(problem: Problem, shape: dict) -> Tuple[str, int, int]:
    """The KV cache after a forward pass and 3 decode steps, fp16 (engine/lab/kv_cache.py)."""
    from .lab import kv_cache

    case = dict(arch=shape["arch"], dtype="fp16", b=shape["b"], s=shape["s"], h=shape["h"], a=shape["a"],
                kv_heads=shape["kv_heads"], head_dim=shape["h"] // shape["a"], L=shape["L"], V=shape["V"],
                f=shape["f"], s_max=1024, sliding_window=None)
    record = kv_cache.run_config(case)[-1]
    predicted = _predict(problem, shape, "eager", [f"s={record['tokens_in_cache']}", "kv_dtype=fp16"])
    return (f"KV cache, {record['tokens_in_cache']} tokens (fp16)", int(predicted["kv_cache"]), record["kv_bytes"])


def _peak_rows(problem: Problem, shape: dict) -> List[Tuple[str, int, int]]:
    """Peak live tensor bytes of a training step (two steps of plain bf16 AdamW, foreach) and of
    generation (prefill + 3 decode steps), measured op by op on the CPU (engine/lab/peaks.py).

    torch.optim keeps one fp32 `step` counter per parameter tensor; a GPU keeps it on the host,
    the CPU measured here holds it: the prediction binds device = cpu (peaks.formula)."""
    import warnings

    from .lab import peaks

    warnings.filterwarnings("ignore", category=FutureWarning, module="torch")  # transformers' renamings
    attn = "sdpa" if shape["arch"] == "llama" else "eager"
    base = dict(shape, dtype="bf16", attn=attn, optimizer="adamw", foreach=True, fused=False,
                logits_to_keep=None, context=None, amp=False)
    train = peaks.run_one(dict(base, mode="train"))
    predicted = _predict(problem, shape, attn, ["framework=pytorch", "device=cpu"])  # plain torch.optim AdamW, foreach
    rows = [(f"peak of a training step ({attn}, AdamW foreach)", int(predicted["peak_allocated_training"]),
             train["peak_bytes"])]
    steps = 3
    generation = peaks.run_one(dict(base, mode="inference", optimizer=None, foreach=None, logits_to_keep=1,
                                    context="no_grad"))
    predicted = _predict(problem, shape, attn, [f"s={shape['s'] + steps}", f"prompt_len={shape['s']}",
                                                "prefill_logits=1", "kv_dtype=bf16"])
    rows.append((f"peak of generation ({attn}, prefill + {steps} decode steps)", int(predicted["peak_allocated_inference"]),
                 generation["peak_bytes"]))
    return rows


def _predict(problem: Problem, shape: dict, attn: str, more=()):
    sets = [f"arch={'gpt' if shape['arch'] == 'gpt2' else 'llama'}", "activation_model=measured", "weight_dtype=bf16",
            f"h={shape['h']}", f"a={shape['a']}", f"kv_heads={shape['kv_heads']}", f"f={shape['f']}",
            f"L={shape['L']}", f"V={shape['V']}", f"b={shape['b']}", f"s={shape['s']}", "head_dim=" +
            str(shape["h"] // shape["a"]), f"flash_attention={'true' if attn == 'sdpa' else 'false'}",
            "recompute=none", "s_max=1024", "tp=1", "pp=1", "sequence_parallel=false"]
    if shape["arch"] == "gpt2":
        # On the CPU, dropout keeps its mask and LayerNorm its statistics in the activation dtype.
        sets += ["dropout=true", "mask_bytes=2", "ln_stat_bytes=2", "tie_embeddings=true",
                 "attention_bias=true", "mlp_bias=true", "pos_offset=0", "activation_function=gelu_new"]
    else:
        sets += ["tie_embeddings=false", "attention_bias=false", "qkv_bias=false", "mlp_bias=false"]
    sets += list(more)
    bindings = dict(problem.bindings)
    from .library import Library

    ruleset = Library().ruleset({"arch": sets[0].split("=")[1]})
    keep = {n: b for n, b in bindings.items() if n == GPU_MEMORY}
    keep.update(bind(ruleset, [parse_set(s) for s in sets]))
    return evaluate(ruleset, keep).values
