"""What a pre-quantized FP8 checkpoint's model holds once transformers loads it: quant_method "fp8"
(FineGrainedFP8Config: per-tensor with weight_block_size null, or block-wise; dynamic or static
activations; float or ue8m0 scales) and "fbgemm_fp8" (FbgemmFp8Config: per-channel).

    python -m vram_eval.lab.fp8_checkpoints --out tests/data/measured/fp8_checkpoints.json

transformers 5.24 loads both only on a GPU of compute capability 8.9 (fp8) or 9.0 (fbgemm_fp8):
elsewhere fp8 dequantizes to bf16 and fbgemm_fp8 refuses. The layout does not depend on the device,
so this script builds it on the CPU the way from_pretrained does on a GPU: the model class on the
meta device inside from_pretrained's own init context (``get_init_context``: the config's dtype
as torch's default), the quantizer's ``preprocess_model`` (``replace_with_fp8_linear``,
``replace_with_fbgemm_fp8_linear``) with its device check and fbgemm's kernel lookup bypassed;
that skeleton's state dict is written as model.safetensors (zeros), and ``from_pretrained`` loads
that folder as a pre-quantized checkpoint — it refuses any tensor whose name, shape or dtype the
modules do not declare, so the file is exactly the layout the modules take. Recorded per case:
the config.json, the file's tensor table [name, dtype, shape, bytes], the loading report (missing,
unexpected, mismatched keys: empty), and every tensor the loaded model holds [name, dtype, shape,
bytes, kind] (kind parameter, buffer, or unsaved buffer: fbgemm's input_scale_ub, rotary inv_freq).

Published checkpoints name some tensors otherwise (per-expert ``experts.N.w1.weight``, which
transformers' conversion mapping fuses; AutoFP8's ``weight_scale`` / ``input_scale``, which the
quantizer renames where it can): the memory the loaded model takes is what the modules declare,
recorded here. Nothing runs at import time.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from . import script_arguments, write_cases
from .bnb_checkpoints import DTYPES, SMALL, header

MODELS = {
    "llama": {"model_type": "llama"},
    "qwen2": {"model_type": "qwen2", "tie_word_embeddings": False},
    "mixtral": {"model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2},
    "qwen2-moe": {"model_type": "qwen2_moe", "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 128,
                  "shared_expert_intermediate_size": 256},
    "deepseek-v3": {"model_type": "deepseek_v3", "n_routed_experts": 4, "num_experts_per_tok": 2,
                    "moe_intermediate_size": 128, "first_k_dense_replace": 1, "kv_lora_rank": 64, "q_lora_rank": 96,
                    "qk_rope_head_dim": 16, "qk_nope_head_dim": 32, "v_head_dim": 32, "num_key_value_heads": 8,
                    "n_group": 1, "topk_group": 1},
}
# name → quantization_config as config.json carries it
CONFIGS = {
    "fp8-tensor": {"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": None},
    "fp8-tensor-static": {"quant_method": "fp8", "activation_scheme": "static", "weight_block_size": None},
    "fp8-block": {"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": [128, 128]},
    "fp8-block-static": {"quant_method": "fp8", "activation_scheme": "static", "weight_block_size": [128, 128]},
    "fp8-block-ue8m0": {"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": [128, 128],
                        "scale_fmt": "ue8m0"},
    "fp8-default": {"quant_method": "fp8", "activation_scheme": "dynamic"},  # no weight_block_size: (128, 128)
    "fbgemm": {"quant_method": "fbgemm_fp8", "activation_scale_ub": 1200.0},
}
SKIP = {("deepseek-v3", "fbgemm")}  # fbgemm_fp8 converts nn.Linear alike; its MoE case is Mixtral's


def _bypass_device_checks():
    """The quantizers' GPU checks and fbgemm's kernel lookup, which decide nothing of the layout."""
    from transformers.integrations import fbgemm_fp8
    from transformers.quantizers import quantizer_fbgemm_fp8, quantizer_finegrained_fp8

    quantizer_finegrained_fp8.FineGrainedFP8HfQuantizer.validate_environment = lambda self, *a, **k: None
    quantizer_fbgemm_fp8.FbgemmFp8HfQuantizer.validate_environment = lambda self, *a, **k: None
    fbgemm_fp8.get_quantize_fp8_per_row = lambda: None


def memory_table(model) -> list:
    """Every tensor the loaded model holds, each storage once: [name, dtype, shape, bytes, kind]."""
    out, saved = [], set(model.state_dict())
    for name, p in model.named_parameters():
        out.append([name, DTYPES[str(p.dtype).removeprefix("torch.")], list(p.shape), p.numel() * p.element_size(),
                    "parameter"])
    for name, b in model.named_buffers():
        out.append([name, DTYPES[str(b.dtype).removeprefix("torch.")], list(b.shape), b.numel() * b.element_size(),
                    "buffer" if name in saved else "unsaved buffer"])
    return out


def measure(model_name: str, config_name: str) -> dict:
    import torch
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING
    from transformers.quantizers import AutoHfQuantizer

    keys = dict(SMALL, **{k: v for k, v in MODELS[model_name].items() if k != "model_type"})
    cfg = AutoConfig.for_model(MODELS[model_name]["model_type"], **keys)
    quantization = CONFIGS[config_name]
    cfg.quantization_config = dict(quantization)
    cls = MODEL_FOR_CAUSAL_LM_MAPPING[type(cfg)]
    quantizer = AutoHfQuantizer.from_config(dict(quantization), pre_quantized=True)
    with torch.device("meta"):
        from contextlib import ExitStack

        with ExitStack() as stack:
            for context in cls.get_init_context(torch.bfloat16, True, False, False):
                stack.enter_context(context)
            skeleton = cls(cfg)
            quantizer.preprocess_model(model=skeleton, dtype=torch.bfloat16, device_map={"": "cpu"},
                                       checkpoint_files=None, use_kernels=False)
    state = {name: torch.zeros(t.shape, dtype=t.dtype) for name, t in skeleton.state_dict().items()}
    with tempfile.TemporaryDirectory() as folder:
        config = json.loads(cfg.to_json_string())
        config["dtype"] = "bfloat16"
        config["quantization_config"] = dict(quantization)
        Path(folder, "config.json").write_text(json.dumps(config))
        save_file(state, f"{folder}/model.safetensors", metadata={"format": "pt"})
        table = header(Path(folder) / "model.safetensors")
        table.pop("__metadata__", None)
        file = [[name, t["dtype"], t["shape"], t["data_offsets"][1] - t["data_offsets"][0]] for name, t in table.items()]
        loaded, info = AutoModelForCausalLM.from_pretrained(folder, device_map="cpu", output_loading_info=True)
    report = {k: sorted(str(x) for x in v) for k, v in info.items() if k != "error_msgs"}
    return {"model": model_name, "quantization": config_name, "config": config, "file": file, "loading": report,
            "memory": memory_table(loaded)}


def main(argv=None) -> int:
    args = script_arguments(__doc__, argv)
    _bypass_device_checks()
    cases = {}
    for model_name in MODELS:
        for config_name in CONFIGS:
            if (model_name, config_name) in SKIP:
                continue
            try:
                cases[f"{model_name}-{config_name}"] = measure(model_name, config_name)
            except Exception as exc:  # what transformers refuses is recorded, not hidden
                cases[f"{model_name}-{config_name}"] = {"model": model_name, "quantization": config_name,
                                                        "error": f"{type(exc).__name__}: {exc}"[:500]}
            print(f"{model_name}-{config_name}", file=sys.stderr)
    write_cases(args.out, "tensors of pre-quantized FP8 (fp8, fbgemm_fp8) models as transformers builds and loads them "
                "(engine/lab/fp8_checkpoints.py)", cases, device="cpu (device checks bypassed: see the script)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
