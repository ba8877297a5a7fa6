"""The tensors a model's checkpoint holds, as transformers' save_pretrained writes them: every
parameter (a tied one once) and every persistent buffer of the model, built on the meta device
(no weights) from a public config.json of tests/data/hf_configs/, with its shape.

    python -m vram_eval.lab.checkpoints --out tests/data/measured/checkpoints.json

tests/test_checkpoint.py writes these tables as safetensors files (headers exactly as the format
specifies, the data as sparse zeros) and checks that vram-eval reports their bytes.
"""
from __future__ import annotations

from pathlib import Path

from . import script_arguments, write_json

# config.json (tests/data/hf_configs) → why it is here.
CONFIGS = {
    "llama-2-7b.json": "a dense model with an untied LM head (float16 on the Hub)",
    "gpt2.json": "a tied LM head (stored once), Conv1D projections, learned positions, fp32",
    "mixtral-8x7b-v0.1.json": "experts and a router",
    "qwen3-8b.json": "norms inside attention (q_norm, k_norm)",
    "mamba-130m-hf.json": "Mamba mixers: no attention, no MLP",
    "gemma-3-27b-it.json": "a vision tower and its projector",
}
# shapes of tests/data/family_shapes.toml (no public config of that size is needed) → why
SHAPES = {
    "gpt-oss": "routed experts as 3-D tensors with biases: MXFP4 checkpoints quantise these alone",
    "deepseek-v3": "latent attention, shared experts and dense layers first: FP8 block-wise checkpoints",
}
ROOT = Path(__file__).resolve().parents[2]


def tensors(config: dict):
    """[(name, shape)] of the model's state as save_pretrained writes it, and its class."""
    from .families import build, make_config, model_classes

    cfg = make_config(config)
    label, cls = model_classes(cfg, config)[0]
    model = build(cls, cfg)
    params = dict(model.named_parameters())  # each parameter once: a tied head is the embedding
    every = dict(model.named_parameters(remove_duplicate=False))
    buffers = {n: b for n, b in model.state_dict().items() if n not in every}
    table = [(n, list(p.shape)) for n, p in params.items()] + [(n, list(b.shape)) for n, b in buffers.items()]
    return cls.__name__, table, sum(p.numel() for p in params.values())


def main(argv=None):
    import json

    from .families import versions

    args = script_arguments(__doc__, argv)
    models = {}
    for file, why in CONFIGS.items():
        config = json.loads((ROOT / "tests" / "data" / "hf_configs" / file).read_text())
        cls, table, count = tensors(config)
        models[file] = {"why": why, "class": cls, "num_params": count, "tensors": table}
        print(f"{file}: {cls}, {len(table)} tensors, {count:,} parameters")
    import tomllib

    shapes = tomllib.loads((ROOT / "tests" / "data" / "family_shapes.toml").read_text())
    for name, why in SHAPES.items():
        config = dict(shapes[name]["config"])
        cls, table, count = tensors(config)
        models[f"{name} (shape)"] = {"why": why, "class": cls, "num_params": count, "tensors": table, "config": config}
        print(f"{name}: {cls}, {len(table)} tensors, {count:,} parameters")
    write_json(args.out, {"what": "tensor tables of save_pretrained checkpoints (meta device)",
                          "versions": versions(), "models": models})


if __name__ == "__main__":
    main()
