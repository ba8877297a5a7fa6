"""What bitsandbytes converts to 4 bits when transformers loads a model with load_in_4bit.

    python -m vram_eval.lab.bnb --out tests/data/measured/bnb.json

For each small config below: the model is built with random weights in bf16, saved, and loaded
back with ``BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")`` on the CPU (the
conversion — which modules become ``bnb.nn.Linear4bit`` — is the same on every device: transformers'
``replace_with_bnb_linear`` decides it from the module types). Recorded: the parameters left in
16 bits and the parameters stored in 4 bits (two per byte of a ``Params4bit``), split into the
routed experts and the rest, and which module classes were converted.

Needs ``pip install bitsandbytes`` (0.50 runs 4-bit on the CPU) besides the validation extra.
Nothing runs at import time.
"""
from __future__ import annotations

import argparse
import collections
import tempfile
import warnings

from . import write_cases

SMALL = dict(hidden_size=256, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
             intermediate_size=512, vocab_size=1000, max_position_embeddings=4096,
             pad_token_id=0, bos_token_id=1, eos_token_id=2)
CASES = {
    "llama": {"model_type": "llama"},
    "mixtral": {"model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2},
    "qwen2-moe": {"model_type": "qwen2_moe", "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 128,
                  "shared_expert_intermediate_size": 256},
    "llama4-text": {"model_type": "llama4_text", "num_local_experts": 4, "num_experts_per_tok": 1,
                    "intermediate_size_mlp": 512, "head_dim": 32},
    "deepseek-v3": {"model_type": "deepseek_v3", "n_routed_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 128,
                    "first_k_dense_replace": 1, "kv_lora_rank": 64, "q_lora_rank": 96, "qk_rope_head_dim": 16,
                    "qk_nope_head_dim": 32, "v_head_dim": 32, "num_key_value_heads": 8, "n_group": 1, "topk_group": 1},
}


def measure(config: dict) -> dict:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, BitsAndBytesConfig

    keys = dict(SMALL, **{k: v for k, v in config.items() if k != "model_type"})
    cfg = AutoConfig.for_model(config["model_type"], **keys)
    model = AutoModelForCausalLM.from_config(cfg).to(torch.bfloat16)
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        quantised = AutoModelForCausalLM.from_pretrained(
            folder, dtype=torch.bfloat16, device_map="cpu",
            quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                   bnb_4bit_compute_dtype=torch.bfloat16))
    counts = collections.Counter()
    for name, p in quantised.named_parameters():
        four_bit = type(p).__name__ == "Params4bit"
        expert = ".experts." in name and "shared" not in name
        counts[("4bit" if four_bit else "16bit") + ("_experts" if expert else "_other")] += p.numel() * (2 if four_bit else 1)
    converted = sorted({type(m).__name__ for m in quantised.modules() if type(m).__name__ == "Linear4bit"})
    kept = sorted({f"{type(m).__name__}" for n, m in quantised.named_modules()
                   if ".experts" in n and n.endswith("experts")})
    return {"config": dict(SMALL, **config), "params": sum(p.numel() for p in model.parameters()),
            "elements": dict(sorted(counts.items())), "converted_classes": converted, "expert_classes": kept}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    cases = {name: measure(config) for name, config in CASES.items()}
    write_cases(args.out, "parameters bitsandbytes 4-bit leaves in 16 bits and converts, per small model (engine/lab/bnb.py)",
                cases, packages=("bitsandbytes",))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
