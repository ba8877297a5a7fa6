"""What a GPTQ or AWQ (GEMM) checkpoint of a model that is not a plain llama/gpt block holds once
transformers has loaded it: latent attention (DeepSeek-V2/V3), an image-text model (Gemma-3), and
the models whose layout is left to the dtype rule (Llama-4 image-text, Mamba, Jamba), with why.

    python -m vram_eval.lab.packed_layouts --out tests/data/measured/packed_layouts.json

Each model is built on the meta device (no weights) with transformers. The modules each loader
turns into a quantised linear layer are then chosen by the loaders' own code, run here:
- GPTQ: optimum's GPTQQuantizer.convert_model (the path transformers' quantizer_gptq.py takes for
  a pre-quantized checkpoint): get_block_name_with_pattern(model), then get_layers(model, prefix=
  block) — exactly nn.Linear, Conv1D or Conv2d modules under the first of optimum.gptq.constants'
  BLOCK_PATTERNS that the model has (ValueError when none: the checkpoint does not load);
- AWQ: transformers' replace_with_awq_linear (integrations/awq.py): every nn.Linear (subclasses
  too) that quantizers_utils.should_convert_module keeps, given get_modules_to_not_convert(model,
  modules_to_not_convert, model._keep_in_fp32_modules, add_default_skips=True).
The quantizer's side is compared with it: the modules GPTQModel 7.7.0 quantizes
(gptqmodel/models/definitions/<model>.py module_tree, copied below) and, for DeepSeek, AutoAWQ's
(awq/models/deepseek_v3.py: every nn.Linear of a decoder layer, get_named_linears). A layout is
recorded as exact only where both sides name the same modules.

transformers 5 holds the routed experts as 3-D parameters (gate_up_proj [E, 2f, h], down_proj
[E, h, f]); the quantizers store them per expert (GPTQModel "experts.#", AutoAWQ mlp.experts[i]),
so each is written as E gate, up and down linear layers here, as tests/test_quantized.py does for
Mixtral. (optimum's get_layers does not list those 3-D parameters: noted in each case as
`fused_experts_not_converted_by_loader`.)

Per quantised nn.Linear(in, out), b bits, groups of g (GPTQModel's BaseQuantLinear buffers;
AutoGPTQ qlinear_cuda_old.QuantLinear; AutoAWQ WQLinear_GEMM): GPTQ qweight int32 [in·b/32, out],
AWQ qweight int32 [in, out·b/32]; qzeros int32 [ceil(in/g), out·b/32]; scales fp16 [ceil(in/g),
out]; GPTQ g_idx int32 [in]; a bias fp16 [out]. Every other tensor is held in fp16, but the
_keep_in_fp32_modules_strict ones (DeepSeek's router weight and score-correction bias) in fp32.
Needs optimum (pure Python; ``pip install --no-deps optimum``); no GPU, no weights.
"""
from __future__ import annotations

import math
from pathlib import Path

from . import script_arguments, write_cases

ROOT = Path(__file__).resolve().parents[2]

# GPTQModel 7.7.0 (PyPI sdist gptqmodel-7.7.0.tar.gz), gptqmodel/models/definitions: the module
# names each module_tree quantises inside one decoder layer (":!" entries, the norms and routers, are
# not quantised; layer_modules_strict = False: a name the layer lacks is skipped).
GPTQMODEL = {
    # deepseek_v2.py / deepseek_v3.py: "self_attn": q_a_proj, q_b_proj, q_proj, kv_a_proj_with_mqa,
    # kv_b_proj, o_proj; "mlp:moe": "" gate/up/down (dense layers), experts.# gate/up/down,
    # shared_experts gate/up/down
    "deepseek": {"self_attn.q_a_proj", "self_attn.q_b_proj", "self_attn.q_proj", "self_attn.kv_a_proj_with_mqa",
                 "self_attn.kv_b_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
                 "mlp.experts.#.gate_proj", "mlp.experts.#.up_proj", "mlp.experts.#.down_proj",
                 "mlp.shared_experts.gate_proj", "mlp.shared_experts.up_proj", "mlp.shared_experts.down_proj"},
    # gemma3.py Gemma3ForConditionalGenerationGPTQ: module_tree "model", "language_model", "layers", "#"
    "gemma3": {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"},
    # jamba.py: self_attn q/k/v/o, mamba in_proj and out_proj (x_proj, dt_proj not listed),
    # feed_forward gate/up/down (the dense MLPs; the MoE layers' experts are not listed)
    "jamba": {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mamba.in_proj",
              "mamba.out_proj", "feed_forward.gate_proj", "feed_forward.up_proj", "feed_forward.down_proj"},
    # falcon_mamba.py: module_tree "backbone", "layers", "#", mixer in_proj, x_proj, out_proj
    "falcon_mamba": {"mixer.in_proj", "mixer.x_proj", "mixer.out_proj"},
    # llama4.py Llama4QModel: module_tree "language_model", "model", "layers", "#"; router "router:!"
    "llama4": {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "feed_forward.gate_proj", "feed_forward.up_proj", "feed_forward.down_proj",
               "feed_forward.experts.#.gate_proj", "feed_forward.experts.#.up_proj", "feed_forward.experts.#.down_proj",
               "feed_forward.shared_expert.gate_proj", "feed_forward.shared_expert.up_proj",
               "feed_forward.shared_expert.down_proj"},
}

# (case name, where its config is, GPTQModel's definition, methods)
SHAPES = [("deepseek-v3", "deepseek", ("gptq", "awq")), ("deepseek-v3-no-q-lora", "deepseek", ("gptq", "awq")),
          ("deepseek-v2", "deepseek", ("gptq", "awq")), ("gemma3-vision-head", "gemma3", ("gptq", "awq")),
          ("llama4-small", "llama4", ("gptq",)), ("jamba", "jamba", ("gptq",)), ("falcon-mamba", "falcon_mamba", ("gptq",))]
FULL_SIZE = [("deepseek-v3-671b", "deepseek", ("gptq",)), ("gemma-3-27b-it.json", "gemma3", ("gptq",))]
SETTINGS = {"gptq": [(4, 128), (8, 32), (3, 128)], "awq": [(4, 128)]}
DTYPE_BYTES = {"F16": 2, "F32": 4, "I32": 4}


def _strip_layer(name: str, block: str) -> str:
    """`model.layers.3.self_attn.q_proj` → `self_attn.q_proj` (the name inside the layer)."""
    return name[len(block) + 1:].split(".", 1)[1]


def _linear_buffers(base, rows, cols, bias, method, bits, group):
    groups = 1 if group == -1 else -(-cols // group)
    qweight = [cols * bits // 32, rows] if method == "gptq" else [cols, rows * bits // 32]
    out = [[f"{base}.qweight", "I32", qweight], [f"{base}.qzeros", "I32", [groups, rows * bits // 32]],
           [f"{base}.scales", "F16", [groups, rows]]]
    if method == "gptq":
        out.append([f"{base}.g_idx", "I32", [cols]])
    if bias:
        out.append([f"{base}.bias", "F16", [rows]])
    return out


def measure(config: dict, tree: str, method: str, bits: int, group: int, table: bool) -> dict:
    import torch
    from torch import nn

    from .families import build, make_config, model_classes

    cfg = make_config(config)
    cls = model_classes(cfg, config)[0][1]
    model = build(cls, cfg)
    case = {"class": cls.__name__, "method": method, "bits": bits, "group_size": group,
            "main_input_name": model.main_input_name}
    modules = dict(model.named_modules())
    if method == "gptq":
        from optimum.gptq.utils import get_block_name_with_pattern, get_layers

        try:
            block = get_block_name_with_pattern(model)
        except ValueError as error:
            case.update(exact=False, reason=f"optimum get_block_name_with_pattern: {error}",
                        block=None, converted=[])
            return case
        converted = sorted(get_layers(model, prefix=block))
    else:
        from transformers.quantizers.base import HfQuantizer
        from transformers.quantizers.quantizers_utils import should_convert_module

        skip = HfQuantizer.get_modules_to_not_convert(model, None, model._keep_in_fp32_modules, add_default_skips=True)
        converted = sorted(n for n, m in modules.items() if isinstance(m, nn.Linear) and should_convert_module(n, skip))
        block = next(p for p in ("model.language_model.layers", "model.layers") if any(n.startswith(p) for n in modules))
    # the loader's modules inside the blocks, by their name inside a layer, and what lies outside
    inside = {_strip_layer(n, block) for n in converted if n.startswith(block + ".")}
    outside = sorted(n for n in converted if not n.startswith(block + "."))
    fused = sorted({_strip_layer(n, block).rsplit(".", 1)[0] for n, p in model.named_parameters()
                    if n.startswith(block + ".") and n.endswith(("experts.gate_up_proj", "experts.down_proj"))})
    quantizer = {n for n in GPTQMODEL[tree] if ".#." not in n}
    present = {_strip_layer(n, block) for n in modules if n.startswith(block + ".") and "." in n[len(block) + 1:]}
    wanted = quantizer & present
    case.update(block=block, converted_in_layers=sorted(inside), converted_outside=outside,
                quantizer_modules=sorted(wanted), fused_experts=fused)
    if fused:
        case["fused_experts_not_converted_by_loader"] = True
    if inside != wanted or outside:
        extra, missing = sorted(inside - wanted), sorted(wanted - inside)
        case.update(exact=False, reason=f"the loader converts {extra + outside} that GPTQModel's module_tree leaves in "
                    f"16 bits, and leaves {missing} it quantises" if extra or outside or missing else "")
        return case
    unpacked = sorted(n for n in converted if (modules[n].in_features * bits % 32 or modules[n].out_features * bits % 32))
    if unpacked:  # qweight and qzeros hold whole int32 words along these widths
        case.update(exact=False, reason=f"widths {bits}-bit values do not fill int32 words: {unpacked[:3]}")
        return case
    case["exact"] = True
    # the tensor table as loaded: state dict entries, quantised linears replaced by their buffers
    strict = tuple(getattr(model, "_keep_in_fp32_modules_strict", None) or ())
    rows, total = [], 0
    params = dict(model.named_parameters())
    every = dict(model.named_parameters(remove_duplicate=False))  # a tied head is the embedding: held once
    state = dict(params, **{n: b for n, b in model.state_dict().items() if n not in every})
    quantised = set(converted)
    for name, tensor in state.items():
        module, _, leaf = name.rpartition(".")
        shape = list(tensor.shape)
        if module in quantised:
            if leaf == "weight":
                m = modules[module]
                rows += _linear_buffers(module, m.out_features, m.in_features, m.bias is not None, method, bits, group)
            continue
        if name.endswith("experts.gate_up_proj") or name.endswith("experts.down_proj"):
            stem = name.rsplit(".", 1)[0]
            e = shape[0]
            if name.endswith("gate_up_proj"):
                f2, h = shape[1], shape[2]
                for k in range(e):
                    rows += _linear_buffers(f"{stem}.{k}.gate_proj", f2 // 2, h, False, method, bits, group)
                    rows += _linear_buffers(f"{stem}.{k}.up_proj", f2 // 2, h, False, method, bits, group)
            else:
                h, f = shape[1], shape[2]
                for k in range(e):
                    rows += _linear_buffers(f"{stem}.{k}.down_proj", h, f, False, method, bits, group)
            continue
        dtype = "F32" if any(name.endswith(s) for s in strict) else "F16"
        rows.append([name, dtype, shape])
    total = sum(DTYPE_BYTES[d] * math.prod(s) for _, d, s in rows)
    case.update(bytes=total, tensors=len(rows), params=sum(p.numel() for p in params.values()))
    if table:
        case["table"] = rows
    del torch
    return case


def main(argv=None) -> int:
    import importlib.metadata
    import json
    import tomllib

    args = script_arguments(__doc__, argv)
    shapes = tomllib.loads((ROOT / "tests" / "data" / "family_shapes.toml").read_text())
    cases = {}
    for name, tree, methods in SHAPES + FULL_SIZE:
        if name.endswith(".json"):
            config = json.loads((ROOT / "tests" / "data" / "hf_configs" / name).read_text())
            config = {k: v for k, v in config.items() if k not in ("torch_dtype", "dtype")}
            key, table = name[:-5], False
        else:
            config = dict(shapes[name]["config"])
            for null in shapes[name].get("nulls", ()):
                config[null] = None
            key, table = f"{name} (shape)", not name.endswith("671b")
        for method in methods:
            for bits, group in SETTINGS[method]:
                case = measure(config, tree, method, bits, group, table and bits == 4)
                case["config"] = config
                cases[f"{key}-{method}{bits}-g{group}"] = case
                print(f"{key} {method}{bits} g{group}: exact={case['exact']} {case.get('bytes', case.get('reason'))}")
    write_cases(args.out, "GPTQ / AWQ-GEMM layouts as transformers' loaders build them, checked against the "
                "quantizers' module lists (engine/lab/packed_layouts.py)", cases,
                optimum=importlib.metadata.version("optimum"), gptqmodel_definitions="7.7.0 (sdist, read)", autoawq="casper-hansen/AutoAWQ awq/models/deepseek_v3.py")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
