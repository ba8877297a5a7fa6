"""What a TensorRT Model Optimizer (modelopt) checkpoint holds: each quantization recipe hf_ptq.py
applies, calibrated and exported by modelopt itself, as the tensor table of its safetensors.

    python -m vram_eval.lab.modelopt --out tests/data/measured/modelopt.json

For each small model and recipe below (modelopt.torch.quantization's *_CFG, a KV-cache recipe
appended to its quant_cfg list as examples/llm_ptq/hf_ptq.py does): the model is built in bf16 with
random weights, quantized with mtq.quantize (one calibration batch of 16 random tokens) and written
by modelopt.torch.export.export_hf_checkpoint on the CPU. Recorded: the config.json's
quantization_config, hf_quant_config.json, and every tensor of the files (name, dtype, shape, read
from the headers). Needs ``pip install nvidia-modelopt`` besides the validation extra. Nothing runs
at import time.
"""
from __future__ import annotations

import copy
import json
import os
import tempfile

from . import script_arguments, write_cases
from .compressed_tensors import SMALL

MODELS = {
    "llama": {"model_type": "llama", "architectures": ["LlamaForCausalLM"]},
    "qwen2": {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "tie_word_embeddings": False},
}
RECIPES = {  # name → (weights-and-activations recipe, KV-cache recipe or None)
    "FP8": ("FP8_DEFAULT_CFG", None),
    "FP8-kv_fp8": ("FP8_DEFAULT_CFG", "FP8_KV_CFG"),
    "NVFP4": ("NVFP4_DEFAULT_CFG", None),
    "NVFP4-kv_fp8": ("NVFP4_DEFAULT_CFG", "FP8_KV_CFG"),
    "INT4_AWQ": ("INT4_AWQ_CFG", None),
    "W4A8_AWQ": ("W4A8_AWQ_BETA_CFG", None),
    "INT8_SQ": ("INT8_SMOOTHQUANT_CFG", None),
    "FP8_PER_CHANNEL": ("FP8_PER_CHANNEL_PER_TOKEN_CFG", None),
}


def measure(model_case: dict, recipe: str, kv: str | None) -> dict:
    import modelopt.torch.quantization as mtq
    import torch
    from modelopt.torch.export import export_hf_checkpoint
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModelForCausalLM

    keys = dict(SMALL, **{k: v for k, v in model_case.items() if k != "model_type"})
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_case["model_type"], **keys)).to(torch.bfloat16)
    config = copy.deepcopy(getattr(mtq, recipe))
    if kv is not None:
        config["quant_cfg"] = list(config["quant_cfg"]) + list(getattr(mtq, kv)["quant_cfg"])
    torch.manual_seed(0)
    model = mtq.quantize(model, config, lambda m: m(torch.randint(0, SMALL["vocab_size"], (1, 16))))
    with tempfile.TemporaryDirectory() as folder:
        export_hf_checkpoint(model, export_dir=folder)
        written = json.load(open(os.path.join(folder, "config.json")))
        hf_quant = json.load(open(os.path.join(folder, "hf_quant_config.json")))
        table = []
        for file in sorted(f for f in os.listdir(folder) if f.endswith(".safetensors")):
            with safe_open(os.path.join(folder, file), "pt") as fh:
                for name in fh.keys():
                    part = fh.get_slice(name)
                    table.append([name, part.get_dtype(), list(part.get_shape())])
    return {"model": dict(keys, model_type=model_case["model_type"]), "recipe": [recipe, kv],
            "quantization_config": written.get("quantization_config"), "hf_quant_config": hf_quant, "tensors": table}


def main(argv=None) -> int:
    args = script_arguments(__doc__, argv)
    cases = {f"{m}-{r}": measure(case, *RECIPES[r]) for m, case in MODELS.items() for r in RECIPES}
    write_cases(args.out, "tensor tables of modelopt checkpoints, one per recipe (engine/lab/modelopt.py)", cases,
                packages=("modelopt",))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
