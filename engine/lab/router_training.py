"""What an fp32 router costs in training: a shrunken DeepSeek-V3 (and DeepSeek-V2, GLM-4.5) loaded
by from_pretrained in bf16 keeps its routers' weights in fp32 (_keep_in_fp32_modules_strict
"gate.weight"); one forward, backward and torch.optim.AdamW step then give each tensor's bytes —
weights, gradients, the optimizer's moments — for full training, and for LoRA (peft, the
attention and MLP projections as targets: the router is frozen, so only its weight counts).

    python -m vram_eval.lab.router_training --out tests/data/measured/router_training.json

Recorded per case: the bytes of the parameters, of their .grad and of the optimizer's state
(exp_avg, exp_avg_sq; step counters left out), split into the routers, the other trained
parameters and the frozen ones (LoRA's base), with each router tensor's dtype. On the CPU, random weights (saved once to a temporary folder and loaded
back, as a checkpoint is). Needs torch, transformers and peft; nothing runs at import time.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from . import script_arguments, write_cases

ROOT = Path(__file__).resolve().parents[2]
SHAPES = ["deepseek-v3", "deepseek-v2"]
GLM = {"model_type": "glm4_moe", "hidden_size": 256, "num_hidden_layers": 3, "num_attention_heads": 8,
       "num_key_value_heads": 2, "head_dim": 32, "intermediate_size": 512, "moe_intermediate_size": 64,
       "n_routed_experts": 8, "n_shared_experts": 1, "num_experts_per_tok": 2, "first_k_dense_replace": 1,
       "n_group": 1, "topk_group": 1, "vocab_size": 1000, "max_position_embeddings": 4096, "pad_token_id": 0,
       "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": False}
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj",
                "gate_proj", "up_proj", "down_proj"]


def _bytes(tensors):
    return sum(t.numel() * t.element_size() for t in tensors)


def measure(config: dict, lora: bool) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from .families import build, make_config, model_classes

    cfg = make_config(config)
    cls = model_classes(cfg, config)[0][1]
    torch.manual_seed(0)
    model = build(cls, cfg, device="cpu", dtype=torch.bfloat16)
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
    router = {n for n, _ in model.named_parameters() if n.endswith("mlp.gate.weight")}
    if lora:
        from peft import LoraConfig, get_peft_model

        targets = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
                         & set(LORA_TARGETS))
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=targets))
        router = {n for n, _ in model.named_parameters() if n.endswith("mlp.gate.weight")}
    model.train()
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=1e-4, foreach=False)
    ids = torch.randint(3, config.get("vocab_size", 1000), (2, 16))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    named = dict(model.named_parameters())
    is_router = {id(named[n]) for n in router}
    split = {}
    for part, pick in (("router", lambda p: id(p) in is_router),
                       ("trained", lambda p: id(p) not in is_router and p.requires_grad),
                       ("frozen", lambda p: id(p) not in is_router and not p.requires_grad)):
        params = [p for p in named.values() if pick(p)]
        split[part] = {
            "params": sum(p.numel() for p in params),
            "weights": _bytes(params),
            "gradients": _bytes([p.grad for p in params if p.grad is not None]),
            "optimizer_states": _bytes([v for p in params for k, v in optimizer.state.get(p, {}).items()
                                        if k != "step"]),
        }
    dtypes = sorted({(str(named[n].dtype), str(named[n].grad.dtype) if named[n].grad is not None else None)
                     for n in router})
    return {"model": config, "lora": lora, "router_tensors": len(router), "router_dtypes": dtypes, **split}


def main(argv=None) -> int:
    import tomllib

    args = script_arguments(__doc__, argv)
    shapes = tomllib.loads((ROOT / "tests" / "data" / "family_shapes.toml").read_text())
    models = {name: dict(shapes[name]["config"]) for name in SHAPES}
    models["glm4-moe"] = GLM
    cases = {}
    for name, config in models.items():
        for lora in (False, True):
            case = measure(config, lora)
            cases[f"{name}-{'lora' if lora else 'full'}"] = case
            print(name, "lora" if lora else "full", json.dumps(case["router"]), case["router_dtypes"])
    write_cases(args.out, "an fp32 router's weights, gradients and AdamW moments in bf16 training "
                "(engine/lab/router_training.py)", cases, packages=("peft",))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
