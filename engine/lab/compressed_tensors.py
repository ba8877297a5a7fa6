"""What a compressed-tensors checkpoint holds: each preset scheme llm-compressor writes, applied and
compressed by compressed-tensors itself, as the tensor table save_pretrained writes.

    python -m vram_eval.lab.compressed_tensors --out tests/data/measured/compressed_tensors.json

For each small model and each preset of compressed_tensors.quantization.quant_scheme.PRESET_SCHEMES
below (targets ["Linear"], ignore ["lm_head"], as llm-compressor's recipes write them): the model is
built in bf16 with random weights, the scheme applied (apply_quantization_config), the format
inferred as llm-compressor infers it (ModelCompressor.from_pretrained_model) and the model
compressed (compress_model). Recorded: the quantization_config as it would go into config.json
and every tensor of the state dict (name, safetensors dtype, shape). Two published configs
(tests/data/hf_configs) are compressed full size on the meta device for three presets, and
Meta-Llama-3-8B for MXFP4 (compressed-tensors' README example). Needs ``pip install
compressed-tensors`` besides the validation extra; runs on the CPU. Nothing runs at import time.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import script_arguments, write_cases

SMALL = dict(hidden_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=64,
             intermediate_size=512, vocab_size=1000, max_position_embeddings=4096,
             pad_token_id=0, bos_token_id=1, eos_token_id=2)
MODELS = {
    "llama": {"model_type": "llama"},
    "qwen2": {"model_type": "qwen2", "tie_word_embeddings": False},   # q, k, v biases
}
PRESETS = ["W4A16", "W4A16_ASYM", "W8A16", "W8A8", "FP8", "FP8_DYNAMIC", "FP8_BLOCK", "NVFP4A16", "NVFP4", "MXFP4A16", "MXFP4"]
FULL_SIZE = {"llama-2-7b.json": ["W4A16", "FP8_BLOCK", "NVFP4"], "qwen2-7b.json": ["W4A16", "FP8_BLOCK", "NVFP4"],
             "llama-3-8b.json": ["MXFP4"]}
DTYPES = {"bfloat16": "BF16", "float16": "F16", "float32": "F32", "int32": "I32", "int64": "I64", "int8": "I8",
          "uint8": "U8", "float8_e4m3fn": "F8_E4M3"}


def measure(model_case: dict, preset: str, meta: bool = False) -> dict:
    import torch
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import (QuantizationConfig, QuantizationScheme,
                                                 apply_quantization_config, preset_name_to_scheme)
    from transformers import AutoConfig, AutoModelForCausalLM

    keys = dict({} if meta else SMALL, **{k: v for k, v in model_case.items() if k != "model_type"})
    config = AutoConfig.for_model(model_case["model_type"], **keys)
    if meta:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    else:
        model = AutoModelForCausalLM.from_config(config).to(torch.bfloat16)
    scheme: QuantizationScheme = preset_name_to_scheme(preset, ["Linear"])
    apply_quantization_config(model, QuantizationConfig(config_groups={"group_0": scheme}, ignore=["lm_head"]))
    compressor = ModelCompressor.from_pretrained_model(model)
    compressor.compress_model(model)
    written = compressor.quantization_config.model_dump(mode="json", exclude_none=False)
    written["quant_method"] = "compressed-tensors"
    table = [[name, DTYPES[str(t.dtype).removeprefix("torch.")], list(t.shape)] for name, t in model.state_dict().items()]
    return {"model": dict(keys, model_type=model_case["model_type"]), "preset": preset, "device": "meta" if meta else "cpu",
            "quantization_config": written, "tensors": table}


def main(argv=None) -> int:
    args = script_arguments(__doc__, argv)
    cases = {}
    for model_name, model_case in MODELS.items():
        for preset in PRESETS:
            cases[f"{model_name}-{preset}"] = measure(model_case, preset)
    root = Path(__file__).resolve().parents[2] / "tests" / "data" / "hf_configs"
    for file, presets in FULL_SIZE.items():
        published = json.loads((root / file).read_text())
        published = {k: v for k, v in published.items() if k not in ("architectures", "torch_dtype", "dtype")}
        for preset in presets:
            cases[f"{file[:-5]}-{preset}"] = measure(published, preset, meta=True)
    write_cases(args.out, "tensor tables of compressed-tensors checkpoints, one per preset scheme "
                "(engine/lab/compressed_tensors.py)", cases, packages=("compressed_tensors",))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
