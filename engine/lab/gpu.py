"""Peak GPU memory of real training steps and real generations, at three levels, for the accuracy
table and the calibration of the runtime overhead (formulas/overhead.formula).

    python -m vram_eval.lab.gpu --out tests/data/measured/gpu_peaks.json   # needs CUDA (~5 min on an H100)
    python -m vram_eval.lab.gpu --list                                     # the cases and vram-eval's
                                                                        # predictions; no GPU, no torch
    python -m vram_eval.lab.gpu --calibrate tests/data/measured/gpu_peaks.json   # the defaults it measured

On a GPU, each case runs in a fresh Python process (so that one case's loaded kernels and cached
blocks are not the next one's), once with PyTorch's default caching allocator and once with
PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True. The child builds a random-weight Hugging Face
Llama from a config (nothing is downloaded), measures the bare CUDA context and the cuBLAS
workspace, runs two training steps (forward with labels, backward, optimizer step,
zero_grad(set_to_none=True)) or a generation (a prefill and greedy decode steps with a
DynamicCache, as generate() runs them), and records:

  peak_allocated      torch.cuda.max_memory_allocated            vs peak_allocated_<job> + cuBLAS
  peak_reserved       torch.cuda.max_memory_reserved             vs peak_reserved_<job>
  device_used         the process's device memory (NVML) after the job, reserved blocks kept
  outside_allocator   device_used - memory_reserved: the CUDA context (+ NCCL), after the job
  context_at_start    the same before the model was built: the bare context
  cublas_workspace    memory_allocated grown by one bf16 matmul (the cuBLAS/cuBLASLt workspaces)

The device's peak is peak_reserved + outside_allocator (the context only grows and nothing is
released during a case), compared with peak_<job>. NVML is read through nvidia-ml-py (pynvml)
for this process's pid, else `nvidia-smi --query-compute-apps`, else the device's used memory
(torch.cuda.mem_get_info); `device_used_basis` says which. The file records the device, compute
capability, driver, CUDA and library versions, so the figures stay checkable without a GPU;
docs/ACCURACY.md compares them (validation/accuracy.py gpu_rows) and `--calibrate` derives the
overhead defaults from them (cuda_context, cublas_workspace, allocator_fragmentation).

No session has had a GPU yet: this script has run only as `--list` (and its record format is
tested on the CPU: tests/test_overhead.py). The first run on a GPU should be read critically
(kernel workspaces, SDPA's CUDA kernels are not in the CPU measurements the formulas were
derived from; see validation/PEAKS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

from . import write_json

# A ~1B-parameter Llama (Llama-3.2-1B's width, fewer layers) keeps every case on one 80 GB GPU.
SHAPE = dict(h=2048, a=32, kv_heads=8, f=8192, L=8, V=128256)
CASES = (
    [dict(mode=mode, optimizer_impl=impl, b=b, s=s, **SHAPE)
     for mode in ("train", "train_ckpt") for impl in ("fused", "foreach") for b, s in ((1, 2048), (4, 1024))]
    + [dict(mode=mode, lora=True, optimizer_impl="fused", b=b, s=s, **SHAPE)
       for mode in ("train", "train_ckpt") for b, s in ((1, 2048), (4, 1024))]
    + [dict(mode="inference", b=b, s=s, decode_steps=16, **SHAPE) for b, s in ((1, 4096), (8, 1024))]
)
ALLOCATORS = {"default": None, "expandable": "expandable_segments:True"}

# The record of one case: what the child measures, besides the case's own keys. Everything that
# reads gpu_peaks.json (validation/accuracy.py, calibrate below, tests/test_overhead.py) relies
# on these names; make_record is the one place that writes them.
MEASURED_FIELDS = ("allocator", "peak_allocated", "peak_reserved", "device_used", "device_used_basis",
                   "memory_reserved", "outside_allocator", "context_at_start", "cublas_workspace",
                   "n_trainable_tensors")
VERSION_FIELDS = ("torch", "cuda", "transformers", "peft", "device", "compute_capability", "device_memory",
                  "driver", "python", "cuda_module_loading")


def make_record(case: dict, allocator: str, stats: Dict[str, object]) -> dict:
    """One case's record: the case, the allocator setting and the measured figures (bytes)."""
    missing = [k for k in MEASURED_FIELDS if k not in ("allocator", "outside_allocator") and k not in stats]
    if missing:
        raise ValueError(f"measurement lacks {', '.join(missing)}")
    record = dict(case, allocator=allocator)
    record.update({k: stats[k] for k in MEASURED_FIELDS if k in stats})
    record["outside_allocator"] = int(stats["device_used"]) - int(stats["memory_reserved"])
    return record


def check_document(doc: dict) -> None:
    """Raise ValueError unless doc is a gpu_peaks.json document every reader can use."""
    for key in ("description", "versions", "cases"):
        if key not in doc:
            raise ValueError(f"gpu_peaks.json: no '{key}'")
    lacking = [k for k in VERSION_FIELDS if k not in doc["versions"]]
    if lacking:
        raise ValueError(f"gpu_peaks.json: versions lack {', '.join(lacking)}")
    for i, c in enumerate(doc["cases"]):
        lacking = [k for k in MEASURED_FIELDS + ("mode", "b", "s") + tuple(SHAPE) if k not in c]
        if lacking:
            raise ValueError(f"gpu_peaks.json: case {i} lacks {', '.join(lacking)}")
        if c["allocator"] not in ALLOCATORS:
            raise ValueError(f"gpu_peaks.json: case {i}: allocator {c['allocator']!r} is not one of {', '.join(ALLOCATORS)}")
        if not c["peak_allocated"] <= c["peak_reserved"]:
            raise ValueError(f"gpu_peaks.json: case {i}: peak_reserved below peak_allocated")


def gpu_arch(compute_capability: str) -> str:
    """formulas/overhead.formula's gpu_arch for a compute capability "major.minor"."""
    major, minor = (int(x) for x in str(compute_capability).split(".")[:2])
    if major >= 10:
        return "blackwell"
    return {(7, 0): "volta", (7, 2): "volta", (7, 5): "turing", (8, 9): "ada", (9, 0): "hopper"}.get(
        (major, minor), "ampere" if major == 8 else ("hopper" if major == 9 else "unknown"))


def calibrate(doc: dict) -> Dict[str, object]:
    """The overhead defaults the measurements support: medians over the single-GPU cases."""
    check_document(doc)
    cases = doc["cases"]

    def frag(allocator):
        rs = [(c["peak_reserved"] - c["peak_allocated"]) / c["peak_allocated"] for c in cases if c["allocator"] == allocator]
        return round(statistics.median(rs), 3) if rs else None

    return {"gpu_arch": gpu_arch(doc["versions"]["compute_capability"]),
            "cuda_context": int(statistics.median(c["outside_allocator"] for c in cases)),
            "cuda_context_bare": int(statistics.median(c["context_at_start"] for c in cases)),
            "cublas_workspace": int(statistics.median(c["cublas_workspace"] for c in cases)),
            "allocator_fragmentation": frag("default"),
            "allocator_fragmentation_expandable": frag("expandable"),
            "device": doc["versions"]["device"], "cases": len(cases)}


# --- on the GPU ------------------------------------------------------------------------------


def _device_used(torch) -> tuple:
    """(bytes this process holds on device 0, basis)."""
    pid = os.getpid()
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if p.pid == pid and p.usedGpuMemory is not None:
                return int(p.usedGpuMemory), "nvml process"
    except Exception:  # noqa: BLE001 — no NVML bindings, or no per-process figure in this container
        pass
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30, check=False).stdout
        for line in out.splitlines():
            fields = [x.strip() for x in line.split(",")]
            if len(fields) == 2 and fields[0] == str(pid):
                return int(fields[1]) * 2**20, "nvidia-smi process"
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    free, total = torch.cuda.mem_get_info()
    return total - free, "device used (mem_get_info)"


def _versions(torch) -> dict:
    import peft
    import transformers

    driver = "unknown"
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=30, check=False).stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        pass
    props = torch.cuda.get_device_properties(0)
    return {"torch": torch.__version__, "cuda": torch.version.cuda, "transformers": transformers.__version__,
            "peft": peft.__version__, "device": props.name, "compute_capability": f"{props.major}.{props.minor}",
            "device_memory": props.total_memory, "driver": driver, "python": sys.version.split()[0],
            "cuda_module_loading": os.environ.get("CUDA_MODULE_LOADING", "LAZY (PyTorch's default)")}


def _run(torch, c: dict, allocator: str) -> dict:
    from .saved_bytes import apply_lora, build_model

    torch.zeros(1, device="cuda")  # the context, nothing else
    torch.cuda.synchronize()
    used, _ = _device_used(torch)
    context_at_start = used - torch.cuda.memory_reserved()
    before = torch.cuda.memory_allocated()
    x = torch.ones(64, 64, device="cuda", dtype=torch.bfloat16)
    y = x @ x
    torch.cuda.synchronize()
    cublas = torch.cuda.memory_allocated() - before - 2 * x.numel() * x.element_size()
    del x, y
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

        model.train(False)  # inference mode: dropout off
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
    used, basis = _device_used(torch)
    return make_record(c, allocator, dict(
        peak_allocated=torch.cuda.max_memory_allocated(), peak_reserved=torch.cuda.max_memory_reserved(),
        device_used=used, device_used_basis=basis, memory_reserved=torch.cuda.memory_reserved(),
        context_at_start=context_at_start, cublas_workspace=cublas, n_trainable_tensors=len(trainable)))


def _child(index: int, allocator: str) -> int:
    """Measure one case in this (fresh) process; print its record as one JSON line."""
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    record = _run(torch, CASES[index], allocator)
    if index == 0:
        record["versions"] = _versions(torch)
    print("RECORD " + json.dumps(record))
    return 0


def _measure(allocators: List[str], timeout: int) -> dict:
    results, versions, t0 = [], None, time.time()
    for allocator in allocators:
        env = dict(os.environ)
        env.pop("PYTORCH_CUDA_ALLOC_CONF", None)
        env.pop("PYTORCH_ALLOC_CONF", None)
        if ALLOCATORS[allocator]:
            env["PYTORCH_CUDA_ALLOC_CONF"] = ALLOCATORS[allocator]
        for i, c in enumerate(CASES):
            proc = subprocess.run([sys.executable, "-m", "validation.gpu", "--child", str(i), "--allocator", allocator],
                                  capture_output=True, text=True, timeout=timeout, env=env, check=False)
            lines = [x for x in proc.stdout.splitlines() if x.startswith("RECORD ")]
            if proc.returncode != 0 or not lines:
                print(f"case {i} ({allocator}) failed:\n{proc.stderr[-4000:]}", file=sys.stderr)
                continue
            record = json.loads(lines[-1][len("RECORD "):])
            versions = record.pop("versions", versions)
            results.append(record)
            print(f"{allocator:10s} {c}: allocated {record['peak_allocated']:,} reserved {record['peak_reserved']:,} "
                  f"outside {record['outside_allocator']:,}", file=sys.stderr)
    return {"description": "torch.cuda.max_memory_allocated / max_memory_reserved and the process's device memory "
                           "(NVML) of two training steps or a generation of a random-weight bf16 Llama (SDPA), one "
                           "fresh process per case and allocator setting, by `python -m vram_eval.lab.gpu`.",
            "versions": versions, "elapsed_s": round(time.time() - t0, 1), "cases": results}


def list_cases() -> int:
    from ..forward import evaluate
    from ..problem import load
    from .cases import gpu_prediction, gpu_sets

    for c in CASES:
        problem = load(None, gpu_sets(c))
        p = gpu_prediction(c, evaluate(problem.ruleset, problem.bindings))
        print(f"{c['mode']:10s} {'LoRA ' if c.get('lora') else ''}{c.get('optimizer_impl', ''):7s} b={c['b']} s={c['s']}: "
              f"predicted allocated {p['allocated']:,}, reserved {p['reserved']:,}, device {p['device']:,} bytes")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the measurements here (JSON)")
    parser.add_argument("--list", action="store_true", help="print the cases and the predictions; no GPU needed")
    parser.add_argument("--calibrate", metavar="JSON", help="print the overhead defaults a measurement file supports")
    parser.add_argument("--allocator", choices=sorted(ALLOCATORS) + ["both"], default="both",
                        help="the caching allocator settings to measure (default: both)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per case (default 300)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.list:
        return list_cases()
    if args.calibrate:
        with open(args.calibrate) as fh:
            print(json.dumps(calibrate(json.load(fh)), indent=1))
        return 0
    try:
        import torch
    except ImportError:
        print("validation.gpu needs PyTorch with CUDA: pip install torch '.[validate]'", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("validation.gpu needs a CUDA GPU (torch.cuda.is_available() is False); "
              "`--list` shows the cases without one", file=sys.stderr)
        return 2
    if args.child is not None:
        return _child(args.child, args.allocator)
    if not args.out:
        parser.error("--out is required to measure")
    doc = _measure(sorted(ALLOCATORS) if args.allocator == "both" else [args.allocator], args.timeout)
    check_document(doc)
    write_json(args.out, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
