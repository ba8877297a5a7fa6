"""Exact parameter counts of public model configs, built on the meta device (no weights).

    python -m vram_eval.lab.param_counts --out tests/data/measured/param_counts.json

Each config is written inline from the public config.json values of the model; the counts are
sum(p.numel() for p in model.parameters()) (tied parameters are counted once).
"""
from __future__ import annotations

import sys

from . import script_arguments, write_json

CONFIGS = {
    "LLaMA-13B": ("llama", dict(
        hidden_size=5120, num_hidden_layers=40, num_attention_heads=40, num_key_value_heads=40,
        intermediate_size=13824, vocab_size=32000, max_position_embeddings=2048,
        rms_norm_eps=1e-6, tie_word_embeddings=False, hidden_act="silu")),
    "LLaMA-65B": ("llama", dict(
        hidden_size=8192, num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=64,
        intermediate_size=22016, vocab_size=32000, max_position_embeddings=2048,
        rms_norm_eps=1e-5, tie_word_embeddings=False, hidden_act="silu")),
    "Llama-2-7B": ("llama", dict(
        hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
        intermediate_size=11008, vocab_size=32000, max_position_embeddings=4096,
        rms_norm_eps=1e-5, tie_word_embeddings=False, hidden_act="silu")),
    "Llama-2-70B": ("llama", dict(
        hidden_size=8192, num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=8,
        intermediate_size=28672, vocab_size=32000, max_position_embeddings=4096,
        rms_norm_eps=1e-5, tie_word_embeddings=False, hidden_act="silu")),
    "Llama-3-8B": ("llama", dict(
        hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
        intermediate_size=14336, vocab_size=128256, max_position_embeddings=8192,
        rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=False, hidden_act="silu")),
    "Llama-3-70B": ("llama", dict(
        hidden_size=8192, num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=8,
        intermediate_size=28672, vocab_size=128256, max_position_embeddings=8192,
        rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=False, hidden_act="silu")),
    "Llama-3.2-1B": ("llama", dict(
        hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
        head_dim=64, intermediate_size=8192, vocab_size=128256, max_position_embeddings=131072,
        rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=True, hidden_act="silu")),
    "Mistral-7B-v0.1": ("mistral", dict(
        hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
        intermediate_size=14336, vocab_size=32000, max_position_embeddings=32768,
        sliding_window=4096, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
        hidden_act="silu")),
    "Mixtral-8x7B": ("mixtral", dict(
        hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
        intermediate_size=14336, vocab_size=32000, max_position_embeddings=32768,
        num_local_experts=8, num_experts_per_tok=2, rms_norm_eps=1e-5, rope_theta=1000000.0,
        tie_word_embeddings=False, hidden_act="silu")),
    "Qwen2-7B": ("qwen2", dict(
        hidden_size=3584, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
        intermediate_size=18944, vocab_size=152064, max_position_embeddings=32768,
        rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False, hidden_act="silu")),
    "GPT-2": ("gpt2", dict(
        n_embd=768, n_layer=12, n_head=12, vocab_size=50257, n_positions=1024,
        activation_function="gelu_new", tie_word_embeddings=True)),
    "OPT-13B": ("opt", dict(
        hidden_size=5120, num_hidden_layers=40, num_attention_heads=40, ffn_dim=20480,
        vocab_size=50272, max_position_embeddings=2048, word_embed_proj_dim=5120,
        do_layer_norm_before=True, activation_function="relu", enable_bias=True,
        tie_word_embeddings=True)),
}


def count(model_type, cfg_kwargs):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(model_type, **cfg_kwargs)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    params = dict(model.named_parameters())  # tied parameters appear once
    total = sum(p.numel() for p in params.values())
    emb = model.get_input_embeddings().weight
    out = model.get_output_embeddings()
    tied = out is not None and out.weight is emb
    layers = None
    for m in model.modules():
        for name in ("layers", "h"):
            lst = getattr(m, name, None)
            if isinstance(lst, torch.nn.ModuleList) and len(lst) > 0:
                layers = lst
                break
        if layers is not None:
            break
    per_layer = sum(p.numel() for p in layers[0].parameters())
    assert all(sum(p.numel() for p in lay.parameters()) == per_layer for lay in layers)
    return {
        "model_type": model_type,
        "config": cfg_kwargs,
        "model_class": type(model).__name__,
        "num_params": total,
        "input_embedding_params": emb.numel(),
        "lm_head_params": 0 if tied or out is None else out.weight.numel(),
        "tied_embeddings": tied,
        "num_layers": len(layers),
        "per_layer_params": per_layer,
        "other_params": total - per_layer * len(layers) - emb.numel()
        - (0 if tied or out is None else out.weight.numel()),
    }


def main(argv=None):
    args = script_arguments(__doc__, argv)
    from .saved_bytes import versions

    models = {}
    for name, (mt, kw) in CONFIGS.items():
        models[name] = count(mt, kw)
        print(f"{name}: {models[name]['num_params']:,}", file=sys.stderr)
    doc = {
        "description": ("Exact parameter counts, sum(p.numel()) over model.parameters() of "
                        "AutoModelForCausalLM.from_config(config) built on the meta device "
                        "(tied weights counted once). other_params = final norm (+ learned "
                        "position embeddings, OPT/GPT-2). Generated by "
                        "`python -m vram_eval.lab.param_counts --out tests/data/measured/param_counts.json`."),
        "versions": {k: v for k, v in versions().items() if k in ("torch", "transformers", "python")},
        "models": models,
    }
    write_json(args.out, doc)


if __name__ == "__main__":
    main()
