"""The four jobs vram-eval reports side by side, as data: their totals, the
components that make up each total, and the changes worth trying when a job
does not fit. The report prints them; solve explains a failure with them."""

from __future__ import annotations

from typing import Dict, List, Tuple

__all__ = ["REGIMES", "ROWS", "OVERHEAD_ROW", "OVERHEAD_PARTS", "OVERHEAD_INPUTS", "HEADROOM", "PEAKS", "TOTAL_OF_PEAK", "components", "REMEDIES", "SMALLEST"]

# (heading, total, {row: output}) — the report's columns.
REGIMES: Tuple[Tuple[str, str, Dict[str, str]], ...] = (
    ("full training", "total_training", {
        "weights": "weights", "gradients": "gradients", "optimizer states": "optimizer_states",
        "activations": "activations_on_gpu", "recompute workspace": "recompute_workspace",
        "I/O buffers": "io_buffers", "sharding buffers": "framework_buffers", "runtime overhead": "overhead_training"}),
    ("LoRA", "total_lora", {
        "weights": "lora_weights", "gradients": "lora_gradients", "optimizer states": "lora_optimizer_states",
        "activations": "lora_activations_on_gpu", "recompute workspace": "lora_recompute_workspace",
        "I/O buffers": "io_buffers", "sharding buffers": "lora_framework_buffers", "runtime overhead": "overhead_lora"}),
    ("QLoRA", "total_qlora", {
        "weights": "qlora_weights", "gradients": "lora_gradients", "optimizer states": "lora_optimizer_states",
        "activations": "lora_activations_on_gpu", "recompute workspace": "lora_recompute_workspace",
        "I/O buffers": "io_buffers", "sharding buffers": "qlora_framework_buffers",
        "runtime overhead": "overhead_qlora"}),
    ("inference", "total_inference", {
        "weights": "inference_weights", "KV cache": "kv_cache", "recurrent state": "recurrent_state",
        "I/O buffers": "io_buffers", "runtime overhead": "overhead_inference"}),
)
ROWS = ("weights", "gradients", "optimizer states", "activations", "recompute workspace", "KV cache",
        "recurrent state", "I/O buffers", "sharding buffers", "runtime overhead")
# The inputs behind the runtime overhead row (formulas/overhead.formula): while one of them keeps
# its published default the row reads "runtime overhead (uncalibrated)". `overhead` set stands
# for its three parts.
OVERHEAD_ROW = "runtime overhead"
OVERHEAD_PARTS = ("cuda_context", "cublas_workspace", "nccl_buffers")
OVERHEAD_INPUTS = ("overhead",) + OVERHEAD_PARTS + ("allocator_fragmentation",)
HEADROOM = {"total_training": "headroom_training", "total_lora": "headroom_lora",
            "total_qlora": "headroom_qlora", "total_inference": "headroom_inference"}

# total → (peak over phases, its headroom, [(phase, output)]) — formulas/peaks.formula.
PEAKS: Dict[str, Tuple[str, str, Tuple[Tuple[str, str], ...]]] = {
    "total_training": ("peak_training", "peak_headroom_training", (
        ("start of backward", "training_at_backward_start"),
        ("top layer", "training_at_top_layer"),
        ("lowest layer", "training_at_bottom_layer"),
        ("end of backward", "training_at_backward_end"),
        ("optimizer step", "training_at_optimizer_step"))),
    "total_lora": ("peak_lora", "peak_headroom_lora", (
        ("start of backward", "lora_at_backward_start"),
        ("top layer", "lora_at_top_layer"),
        ("optimizer step", "lora_at_optimizer_step"))),
    "total_qlora": ("peak_qlora", "peak_headroom_qlora", (
        ("start of backward", "qlora_at_backward_start"),
        ("top layer", "qlora_at_top_layer"),
        ("optimizer step", "qlora_at_optimizer_step"))),
    "total_inference": ("peak_inference", "peak_headroom_inference", (
        ("prefill", "inference_at_prefill"),
        ("decode", "inference_at_decode"))),
}


# peak over phases → the total (sum of parts) of its regime.
TOTAL_OF_PEAK: Dict[str, str] = {peak: total for total, (peak, _, _) in PEAKS.items()}


def components(total: str) -> Dict[str, str]:
    """row → output for a regime's total ({} for any other output)."""
    for _, name, rows in REGIMES:
        if name == total:
            return rows
    return {}


# Changes to try, in order, when nothing fits: (input, value) pairs set with --set. The value
# SMALLEST asks solve for the input's smallest value that fits (tensor parallelism: the fewest
# GPUs to split the model over), the question's input held at the spec's value.
SMALLEST = "smallest"
REMEDIES: Dict[str, List[Tuple[str, str]]] = {
    "total_training": [("recompute", "full"), ("flash_attention", "true"), ("loss_impl", "liger"),
                       ("zero_stage", "3"), ("optimizer", "adam8bit"), ("offload_optimizer", "cpu"),
                       ("activation_offloading", "true"), ("tp", SMALLEST)],
    "total_lora": [("recompute", "full"), ("flash_attention", "true"), ("loss_impl", "liger"), ("regime", "qlora"),
                   ("activation_offloading", "true"), ("tp", SMALLEST)],
    "total_qlora": [("recompute", "full"), ("flash_attention", "true"), ("loss_impl", "liger"),
                    ("activation_offloading", "true"), ("tp", SMALLEST)],
    "total_inference": [("kv_dtype", "fp8"), ("inference_dtype", "int8"), ("inference_dtype", "int4"),
                        ("tp", SMALLEST)],
}
# The same changes help a regime's peak over phases.
REMEDIES.update({peak: REMEDIES[total] for total, (peak, _, _) in PEAKS.items()})
