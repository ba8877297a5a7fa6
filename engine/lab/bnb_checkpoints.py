"""What a pre-quantized bitsandbytes checkpoint holds, in its files and in memory once loaded.

    python -m vram_eval.lab.bnb_checkpoints --out tests/data/measured/bnb_checkpoints.json

For each small model below and each BitsAndBytesConfig: the model is built with random weights
(in bf16 unless the case says otherwise) and saved; transformers quantizes it as it loads it
(``from_pretrained(quantization_config=BitsAndBytesConfig(...))``, on the CPU: bitsandbytes 0.50
quantizes there with its default backend, and transformers' ``replace_with_bnb_linear`` decides
which modules convert from their types alone, on every device) and ``save_pretrained`` writes the
pre-quantized checkpoint. Recorded per case:

- ``config``: the config.json save_pretrained wrote (its ``quantization_config`` as transformers
  writes it);
- ``base``: the unquantized checkpoint's tensors [name, dtype, shape];
- ``file``: every tensor of model.safetensors as its header gives it: [name, dtype, shape, bytes];
- ``memory``: that checkpoint loaded back (the pre-quantized path: ``Bnb4bitDeserialize`` /
  ``Bnb8bitDeserialize``), every tensor the model then holds, each storage once: parameters,
  buffers and the bitsandbytes quant state (``weight.quant_state``: absmax, code, offset and the
  nested state; ``weight.SCB``), [name, dtype, shape, bytes, kind] with kind parameter,
  quant_state, buffer (saved with the model) or unsaved buffer (non-persistent: rotary inv_freq,
  which no weights row counts);
- ``offsets``: each double-quantized weight's ``nested_offset`` as its quant_state JSON writes it
  (the one part of the files a config.json cannot give: a float's repr).

Nothing here touches a GPU: the CPU kernels of bitsandbytes 0.50 allocate what its CUDA kernels
do (bitsandbytes/_ops.py register_fake for quantize_4bit: ``(n + 1) // (itemsize * 2)`` elements of
quant_storage, ceil(n / blocksize) fp32 absmax), and the repacking for AVX512-BF16 CPUs
(functional._convert_weight_packed_for_cpu) happens only at a forward, which this script never
runs. Needs ``pip install bitsandbytes`` (0.50 runs on the CPU) besides the validation extra.
Nothing runs at import time.
"""
from __future__ import annotations

import json
import platform
import struct
import sys
import tempfile
from pathlib import Path

from . import script_arguments, write_cases

SMALL = dict(hidden_size=256, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
             intermediate_size=512, vocab_size=1000, max_position_embeddings=4096,
             pad_token_id=0, bos_token_id=1, eos_token_id=2)
# model → (model_type and keys over SMALL, why it is here)
MODELS = {
    "llama": ({"model_type": "llama"}, "a dense model, widths the blocks divide"),
    "llama-odd": ({"model_type": "llama", "hidden_size": 201, "num_attention_heads": 3, "num_key_value_heads": 1,
                   "head_dim": 32,
                   "intermediate_size": 301},
                  "widths no block divides: 201 x 301 weights (odd), ceil(n / 64) blocks, ceil(blocks / 256)"),
    "qwen2": ({"model_type": "qwen2", "tie_word_embeddings": False}, "q, k and v biases"),
    "phi3": ({"model_type": "phi3"}, "fused qkv_proj and gate_up_proj"),
    "gpt2": ({"model_type": "gpt2", "n_embd": 256, "n_layer": 2, "n_head": 8, "n_positions": 1024, "vocab_size": 1000,
              "bos_token_id": 1, "eos_token_id": 2, "alone": True},
             "Conv1D projections (transposed before quantizing), biases, a tied head, learned positions"),
    "mixtral": ({"model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2},
                "routed experts (transformers 5's 3-D tensors) and a router"),
    "qwen2-moe": ({"model_type": "qwen2_moe", "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 128,
                   "shared_expert_intermediate_size": 256},
                  "shared experts and their Linear(h, 1) gate"),
    "deepseek-v3": ({"model_type": "deepseek_v3", "n_routed_experts": 4, "num_experts_per_tok": 2,
                     "moe_intermediate_size": 128, "first_k_dense_replace": 1, "kv_lora_rank": 64, "q_lora_rank": 96,
                     "qk_rope_head_dim": 16, "qk_nope_head_dim": 32, "v_head_dim": 32, "num_key_value_heads": 8,
                     "n_group": 1, "topk_group": 1},
                    "latent attention, a dense first layer, shared experts, the router's score-correction buffer"),
}
# name → BitsAndBytesConfig keywords (the dtype names are torch's)
CONFIGS = {
    "nf4-dq": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True},
    "nf4": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": False},
    "fp4-dq": {"load_in_4bit": True, "bnb_4bit_quant_type": "fp4", "bnb_4bit_use_double_quant": True},
    "fp4": {"load_in_4bit": True, "bnb_4bit_quant_type": "fp4", "bnb_4bit_use_double_quant": False},
    "int8": {"load_in_8bit": True},
}
# (model, config, model dtype, bnb_4bit_quant_storage, llm_int8_skip_modules) beyond every model ×
# every config in bf16
EXTRA = [("llama", "nf4-dq", "float16", None, None), ("llama", "nf4", "float32", None, None),
         ("llama", "nf4-dq", "bfloat16", "bfloat16", None), ("llama", "nf4", "bfloat16", "float32", None),
         ("llama", "nf4-dq", "bfloat16", "int8", None), ("llama", "nf4-dq", "bfloat16", "float16", None),
         ("llama", "nf4", "bfloat16", "float64", None), ("qwen2", "int8", "float16", None, None),
         ("llama", "nf4-dq", "bfloat16", None, ["lm_head"]),
         ("llama", "nf4-dq", "bfloat16", None, ["lm_head", "model.layers.*.self_attn"]),
         ("qwen2-moe", "nf4", "bfloat16", None, ["lm_head", "mlp.shared_expert_gate"]),
         ("llama", "int8", "bfloat16", None, ["model.embed_tokens"])]
DTYPES = {"bfloat16": "BF16", "float16": "F16", "float32": "F32", "float64": "F64", "int32": "I32",
          "int64": "I64", "int8": "I8", "uint8": "U8", "float8_e4m3fn": "F8_E4M3",
          "float8_e8m0fnu": "F8_E8M0"}


def header(path: Path) -> dict:
    """The JSON header of a safetensors file."""
    with open(path, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        return json.loads(fh.read(size))


def memory_table(model) -> list:
    """Every tensor the loaded model holds, each storage once: [name, dtype, shape, bytes]."""
    import torch

    seen, out = set(), []

    def add(name, t, kind):
        if t is None or not isinstance(t, torch.Tensor):
            return
        key = (t.untyped_storage().data_ptr(), t.dtype, tuple(t.shape))
        if key in seen:
            return
        seen.add(key)
        out.append([name, DTYPES[str(t.dtype).removeprefix("torch.")], list(t.shape), t.numel() * t.element_size(), kind])

    for name, p in model.named_parameters():
        add(name, p.data, "parameter")
        state = getattr(p, "quant_state", None)
        if state is not None:  # Params4bit
            add(f"{name}.quant_state.absmax", state.absmax, "quant_state")
            add(f"{name}.quant_state.code", state.code, "quant_state")
            if state.nested:
                add(f"{name}.quant_state.offset", state.offset, "quant_state")
                add(f"{name}.quant_state.state2.absmax", state.state2.absmax, "quant_state")
                add(f"{name}.quant_state.state2.code", state.state2.code, "quant_state")
        if getattr(p, "SCB", None) is not None:  # Int8Params
            add(f"{name}.SCB", p.SCB, "quant_state")
    saved = set(model.state_dict())
    for name, b in model.named_buffers():
        add(name, b, "buffer" if name in saved else "unsaved buffer")
    return out


def measure(model_name: str, config_name: str, dtype: str = "bfloat16", storage: str = None, skip=None) -> dict:
    import torch
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModelForCausalLM, BitsAndBytesConfig

    keys, why = MODELS[model_name]
    # GPT-2 takes its own keys alone (SMALL's intermediate_size is not one: its MLP is n_inner or 4h)
    keys = dict({} if keys.get("alone") else SMALL, **{k: v for k, v in keys.items() if k not in ("model_type", "alone")})
    cfg = AutoConfig.for_model(MODELS[model_name][0]["model_type"], **keys)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).to(getattr(torch, dtype))
    bnb = dict(CONFIGS[config_name], bnb_4bit_compute_dtype=getattr(torch, dtype))
    if storage:
        bnb["bnb_4bit_quant_storage"] = getattr(torch, storage)
    if skip is not None:
        bnb["llm_int8_skip_modules"] = skip
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(f"{folder}/base")
        base = header(Path(folder) / "base" / "model.safetensors")
        base.pop("__metadata__", None)
        quantised = AutoModelForCausalLM.from_pretrained(f"{folder}/base", dtype=getattr(torch, dtype), device_map="cpu",
                                                         quantization_config=BitsAndBytesConfig(**bnb))
        quantised.save_pretrained(f"{folder}/quantized")
        saved = Path(folder) / "quantized"
        table = header(saved / "model.safetensors")
        table.pop("__metadata__", None)
        file = [[name, t["dtype"], t["shape"], t["data_offsets"][1] - t["data_offsets"][0]] for name, t in table.items()]
        offsets = {}
        with safe_open(str(saved / "model.safetensors"), "pt") as fh:
            for name in fh.keys():
                if ".quant_state.bitsandbytes__" in name:
                    text = bytes(fh.get_tensor(name).tolist()).decode()
                    state = json.loads(text)
                    if "nested_offset" in state:
                        offsets[name] = text[text.rindex('"nested_offset": ') + len('"nested_offset": '):-1]
        config = json.loads((saved / "config.json").read_text())
        loaded = AutoModelForCausalLM.from_pretrained(str(saved), device_map="cpu")
        memory = memory_table(loaded)
    return {"model": model_name, "why": why, "quantization": config_name, "dtype": dtype, "quant_storage": storage,
            "skip_modules": skip,
            "params": sum(p.numel() for p in model.parameters()), "config": config,
            "base": [[name, t["dtype"], t["shape"]] for name, t in base.items()],
            "file": file, "memory": memory, "offsets": offsets}


def main(argv=None) -> int:
    args = script_arguments(__doc__, argv)
    import torch

    cases = {}
    for model_name in MODELS:
        for config_name in CONFIGS:
            cases[f"{model_name}-{config_name}"] = measure(model_name, config_name)
            print(f"{model_name}-{config_name}", file=sys.stderr)
    for model_name, config_name, dtype, storage, skip in EXTRA:
        name = (f"{model_name}-{config_name}-{dtype}" + (f"-storage-{storage}" if storage else "")
                + (f"-skip-{'+'.join(skip)}" if skip is not None else ""))
        try:
            cases[name] = measure(model_name, config_name, dtype, storage, skip)
        except Exception as exc:  # what transformers + bitsandbytes refuse is recorded, not hidden
            cases[name] = {"model": model_name, "quantization": config_name, "dtype": dtype, "quant_storage": storage,
                           "skip_modules": skip, "error": f"{type(exc).__name__}: {exc}"[:500]}
        print(name, file=sys.stderr)
    write_cases(args.out, "tensor tables of pre-quantized bitsandbytes checkpoints as transformers saves them, and the "
                "tensors the loaded model holds (engine/lab/bnb_checkpoints.py)", cases, packages=("bitsandbytes",),
                machine=f"{platform.machine()}, {torch.get_num_threads()} threads")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
