"""Peak GPU memory of real training steps and real generations, for the accuracy table.

    python -m validation.gpu --out tests/data/measured/gpu_peaks.json   # needs CUDA (~2 min on an H100)
    python -m validation.gpu --list                                     # the cases and vram-eval's
                                                                        # predictions; no GPU, no torch

On a GPU, for each case: build a random-weight Hugging Face model from a config (nothing is
downloaded), run two training steps (forward with labels, backward, optimizer step,
zero_grad(set_to_none=True)) or a generation (a prefill and greedy decode steps with a
DynamicCache, as generate() runs them), and record torch.cuda.max_memory_allocated and
max_memory_reserved, plus the memory the process holds outside PyTorch's allocator (the CUDA
context: device memory in use minus memory_reserved). The file records the device, driver,
CUDA and library versions, so the figures stay checkable without a GPU; docs/ACCURACY.md
compares them with peak_training / peak_lora / peak_inference (validation/cases.py gpu_sets).

No session has had a GPU yet: this script has run only as `--list`. The first run on a GPU
should be read critically (kernel workspaces, cuBLAS's workspace, SDPA's CUDA kernels are not
in the CPU measurements the formulas were derived from; see validation/PEAKS.md).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from validation import write_json

# A ~1B-parameter Llama (Llama-3.2-1B's width, fewer layers) keeps every case on one 80 GB GPU.
SHAPE = dict(h=2048, a=32, kv_heads=8, f=8192, L=8, V=128256)
CASES = (
    [dict(mode=mode, optimizer_impl=impl, b=b, s=s, **SHAPE)
     for mode in ("train", "train_ckpt") for impl in ("fused", "foreach") for b, s in ((1, 2048), (4, 1024))]
    + [dict(mode=mode, lora=True, optimizer_impl="fused", b=b, s=s, **SHAPE)
       for mode in ("train", "train_ckpt") for b, s in ((1, 2048), (4, 1024))]
    + [dict(mode="inference", b=b, s=s, decode_steps=16, **SHAPE) for b, s in ((1, 4096), (8, 1024))]
)


def _versions(torch):
    import peft
    import transformers

    driver = "unknown"
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=30, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    props = torch.cuda.get_device_properties(0)
    return {"torch": torch.__version__, "cuda": torch.version.cuda, "transformers": transformers.__version__,
            "peft": peft.__version__, "device": props.name, "device_memory": props.total_memory,
            "driver": driver, "python": sys.version.split()[0]}


def _run(torch, c):
    from validation.saved_bytes import apply_lora, build_model

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = build_model("llama", h=c["h"], a=c["a"], kv_heads=c["kv_heads"], f=c["f"], L=c["L"], V=c["V"],
                        dtype="bf16", attn="sdpa").to("cuda")
    if c.get("lora"):
        model = apply_lora(model)
    ids = torch.randint(0, c["V"], (c["b"], c["s"]), device="cuda", generator=torch.Generator(device="cuda").manual_seed(1))
    trainable = [p for p in model.parameters() if p.requires_grad]
    if c["mode"] == "inference":
        from transformers import DynamicCache

        model.eval()
        with torch.no_grad():
            cache, step_ids = DynamicCache(config=model.config), ids
            for _ in range(c["decode_steps"] + 1):
                out = model(input_ids=step_ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
                step_ids = out.logits[:, -1, :].float().argmax(-1, keepdim=True)
                del out
    else:
        if c["mode"] == "train_ckpt":
            model.gradient_checkpointing_enable()
        model.train()
        fused = c["optimizer_impl"] == "fused"
        opt = torch.optim.AdamW(trainable, lr=1e-5, fused=fused, foreach=not fused)
        for _ in range(2):
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
            loss.backward()
            del loss
            opt.step()
            opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    result = dict(c, peak_allocated=torch.cuda.max_memory_allocated(), peak_reserved=torch.cuda.max_memory_reserved(),
                  outside_allocator=(total - free) - torch.cuda.memory_reserved(),
                  n_trainable_tensors=len(trainable))
    del model
    return result


def list_cases() -> int:
    import engine
    from validation.cases import gpu_prediction, gpu_sets

    for c in CASES:
        problem = engine.load(None, gpu_sets(c))
        values = engine.evaluate(problem.ruleset, problem.bindings)
        print(f"{c['mode']:10s} {'LoRA ' if c.get('lora') else ''}{c.get('optimizer_impl', ''):7s} b={c['b']} s={c['s']}: "
              f"predicted {int(gpu_prediction(c, values)):,} bytes")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the measurements here (JSON)")
    parser.add_argument("--list", action="store_true", help="print the cases and the predictions; no GPU needed")
    args = parser.parse_args(argv)
    if args.list:
        return list_cases()
    try:
        import torch
    except ImportError:
        print("validation.gpu needs PyTorch with CUDA: pip install torch '.[validate]'", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("validation.gpu needs a CUDA GPU (torch.cuda.is_available() is False); "
              "`--list` shows the cases without one", file=sys.stderr)
        return 2
    if not args.out:
        parser.error("--out is required to measure")
    import transformers

    transformers.logging.set_verbosity_error()
    t0, results = time.time(), []
    for c in CASES:
        results.append(_run(torch, c))
        print(f"{c}: peak allocated {results[-1]['peak_allocated']:,}", file=sys.stderr)
    write_json(args.out, {
        "description": "torch.cuda.max_memory_allocated / max_memory_reserved of two training steps or a "
                       "generation of a random-weight bf16 Llama (SDPA), by `python -m validation.gpu`.",
        "versions": _versions(torch), "elapsed_s": round(time.time() - t0, 1), "cases": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
