"""Pre-quantized checkpoints (issue 13.3, first part): a config.json's quantization_config binds
weight_format and, by the catalog's rules (specs/catalog/huggingface.toml [quantization]), the
inference_dtype whose rule predicts the weights; a model folder's headers give them to the byte."""

from __future__ import annotations

import json

import pytest

import vram_eval
from vram_eval.errors import SpecError, UnknownKey

from conftest import DATA
from test_checkpoint import TABLES, data_bytes, write_safetensors

QWEN2 = json.loads((DATA / "hf_configs" / "qwen2-7b.json").read_text())

# quantization_config (as transformers' quantizers write them) → (weight_format, inference_dtype)
RULES = [
    ({"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False, "sym": True}, "gptq", "int4"),
    ({"quant_method": "gptq", "bits": 8, "group_size": 128, "desc_act": False, "sym": True}, "gptq", "int8"),
    ({"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemm", "zero_point": True}, "awq", "int4"),
    ({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}, "bitsandbytes", "nf4"),
    ({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "fp4"}, "bitsandbytes", "fp4"),
    ({"quant_method": "bitsandbytes", "load_in_8bit": True}, "bitsandbytes", "int8"),
    ({"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}, "fp8",
     "fp8"),
]


def _config(tmp_path, quantization, base=QWEN2):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(dict(base, quantization_config=quantization)))
    return path


def _evaluate(spec, *sets):
    problem = vram_eval.load(str(spec), list(sets))
    return vram_eval.evaluate(problem)


@pytest.mark.parametrize("quantization, method, dtype", RULES, ids=[f"{m}-{d}" for _, m, d in RULES])
def test_a_quantization_config_names_the_format_and_its_rule(tmp_path, quantization, method, dtype):
    result = _evaluate(_config(tmp_path, quantization))
    assert (result.plain["weight_format"], result.plain["inference_dtype"]) == (method, dtype)
    assert result.warnings == []
    # not the 16-bit size (gpustack#645 sized a GPTQ-Int4 checkpoint as fp16): the linear layers in
    # 8 or 4 bits, the embeddings and head (1.09B of Qwen2-7B's 7.6B parameters) in 16
    fp16 = result.plain["params"] * 2
    assert result.plain["inference_weights"] < fp16 * (0.6 if dtype in ("int8", "fp8") else 0.4)


@pytest.mark.parametrize("method", ["compressed-tensors", "modelopt"])
def test_a_format_without_a_rule_keeps_the_configs_dtype_and_says_so(tmp_path, method):
    result = _evaluate(_config(tmp_path, {"quant_method": method}))
    assert result.plain["weight_format"] == method and result.plain["inference_dtype"] == "bf16"
    assert any("the checkpoint is quantized" in w for w in result.warnings)


def test_the_rule_gives_way_to_a_set(tmp_path):
    result = _evaluate(_config(tmp_path, RULES[0][0]), "inference_dtype=int8")
    assert result.plain["inference_dtype"] == "int8"


@pytest.mark.parametrize("quantization, words", [
    ({"quant_method": "gguf-ish"}, "quant_method 'gguf-ish' is not one vram-eval knows"),
    ({"bits": 4}, "quant_method None is not one vram-eval knows"),
    ([1, 2], '"quantization_config" must be an object'),
])
def test_a_quantization_config_vram_eval_cannot_read_is_a_located_error(tmp_path, quantization, words):
    path = _config(tmp_path, quantization)
    with pytest.raises(SpecError, match=words) as info:
        vram_eval.load(str(path))
    assert info.value.location.path == str(path) and info.value.location.line is not None
    if isinstance(info.value, UnknownKey):
        assert "gptq" in info.value.keys


# The stored layouts, written here from the quantizers' own code: AutoGPTQ's QuantLinear
# (auto_gptq/nn_modules/qlinear/qlinear_cuda_old.py, the format transformers' GPTQ integration
# loads) and AutoAWQ's WQLinear_GEMM (awq/modules/linear/gemm.py). Per nn.Linear(in, out), b bits,
# groups of g (g = -1: one group): GPTQ qweight int32 [in·b/32, out], AWQ qweight int32
# [in, out·b/32]; qzeros int32 [ceil(in/g), out·b/32]; scales fp16 [ceil(in/g), out]; GPTQ g_idx
# int32 [in]. Routers (mlp.gate) and everything outside the blocks' linear layers stay fp16.
def _packed_table(table, method="gptq", bits=4, group=128):
    def linear(base, rows, cols):  # PyTorch's [out, in]
        groups = 1 if group == -1 else -(-cols // group)
        qweight = [cols * bits // 32, rows] if method == "gptq" else [cols, rows * bits // 32]
        out = [(f"{base}.qweight", qweight, "I32"), (f"{base}.qzeros", [groups, rows * bits // 32], "I32"),
               (f"{base}.scales", [groups, rows], "F16")]
        return out + ([(f"{base}.g_idx", [cols], "I32")] if method == "gptq" else [])

    out = []
    for name, shape in table:
        base = name[: -len(".weight")] if name.endswith(".weight") else name
        if name.endswith("_proj.weight") and ".layers." in name:
            out += linear(base, *shape)
        elif name.endswith("experts.gate_up_proj"):  # transformers 5's fused experts: [E, 2f, h]
            e, f2, h = shape
            for k in range(e):
                out += linear(f"{base[:-len('gate_up_proj')]}{k}.w1", f2 // 2, h)
                out += linear(f"{base[:-len('gate_up_proj')]}{k}.w3", f2 // 2, h)
        elif name.endswith("experts.down_proj"):  # [E, h, f]
            e, h, f = shape
            for k in range(e):
                out += linear(f"{base[:-len('down_proj')]}{k}.w2", h, f)
        else:
            out.append((name, shape, "F16"))
    return out


PACKED = [("llama-2-7b.json", "gptq", 4, 128), ("llama-2-7b.json", "gptq", 8, 128), ("llama-2-7b.json", "gptq", 4, -1),
          ("llama-2-7b.json", "gptq", 3, 128), ("llama-2-7b.json", "gptq", 4, 96), ("qwen3-8b.json", "gptq", 4, 128),
          ("mixtral-8x7b-v0.1.json", "gptq", 4, 128), ("llama-2-7b.json", "awq", 4, 128),
          ("qwen3-8b.json", "awq", 4, 64), ("mixtral-8x7b-v0.1.json", "awq", 4, 128)]


@pytest.mark.parametrize("config, method, bits, group", PACKED, ids=[f"{c[:-5]}-{m}{b}-g{g}" for c, m, b, g in PACKED])
def test_gptq_and_awq_weights_are_their_checkpoints_bytes(tmp_path, config, method, bits, group):
    """From the config.json alone, to the byte the files' bytes; and a folder of those files
    gives the same as stored."""
    quantization = {"quant_method": method, "bits": bits, "group_size": group}
    if method == "gptq":
        quantization.update(desc_act=False, sym=True)
    else:
        quantization.update(version="gemm", zero_point=True)
    base = json.loads((DATA / "hf_configs" / config).read_text())
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(dict(base, quantization_config=quantization)))
    write_safetensors(folder / "model.safetensors", _packed_table(TABLES[config]["tensors"], method, bits, group))
    stored = data_bytes(folder / "model.safetensors")
    assert _evaluate(folder).plain["inference_weights"] == stored
    predicted = _evaluate(_config(tmp_path, quantization, base))
    assert predicted.plain["uses_packed_weights"] and predicted.warnings == []
    assert predicted.plain["inference_weights"] == stored


def test_the_same_layout_is_an_input_of_a_plain_spec():
    from conftest import SPECS

    result = _evaluate(SPECS / "llama2-7b.toml", "weight_format=gptq", "quant_bits=4", "quant_group_size=128")
    assert result.plain["uses_packed_weights"]
    assert result.plain["inference_weights"] == result.plain["packed_weights"]


def test_awqs_gemv_layout_is_estimated_and_said_so(tmp_path):
    result = _evaluate(_config(tmp_path, {"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemv"}))
    assert not result.plain["uses_packed_weights"] and result.plain["inference_dtype"] == "int4"
    assert any("GEMV" in w for w in result.warnings)


# transformers 5.24 integrations/mxfp4.py (Mxfp4GptOssExperts): per layer, for E experts of
# hidden size h and intermediate size f — gate_up_proj_blocks uint8 [E, 2f, h/32, 16] and
# gate_up_proj_scales uint8 [E, 2f, h/32], down_proj_blocks uint8 [E, h, f/32, 16] and
# down_proj_scales uint8 [E, h, f/32]; the biases, attention, router, embeddings and head in bf16
# (GPT-OSS's quantization_config modules_to_not_convert).
def _mxfp4_table(table):
    out = []
    for name, shape in table:
        if name.endswith("experts.gate_up_proj"):  # [E, h, 2f]
            e, h, f2 = shape
            out += [(f"{name}_blocks", [e, f2, h // 32, 16], "U8"), (f"{name}_scales", [e, f2, h // 32], "U8")]
        elif name.endswith("experts.down_proj"):  # [E, f, h]
            e, f, h = shape
            out += [(f"{name}_blocks", [e, h, f // 32, 16], "U8"), (f"{name}_scales", [e, h, f // 32], "U8")]
        else:
            out.append((name, shape, "BF16"))
    return out


MXFP4 = {"quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                                              "model.embed_tokens", "lm_head"]}


def test_mxfp4_quantises_the_experts_alone_to_the_byte(tmp_path):
    shape = TABLES["gpt-oss (shape)"]
    config = dict(shape["config"], torch_dtype="bfloat16", quantization_config=MXFP4)
    folder = tmp_path / "gpt-oss"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    write_safetensors(folder / "model.safetensors", _mxfp4_table(shape["tensors"]))
    stored = _evaluate(folder).plain["inference_weights"]
    assert stored == data_bytes(folder / "model.safetensors")
    predicted = _evaluate(_config(tmp_path, MXFP4, dict(shape["config"], torch_dtype="bfloat16")))
    assert predicted.plain["inference_dtype"] == "mxfp4" and predicted.warnings == []
    assert predicted.plain["inference_weights"] == stored


@pytest.mark.parametrize("method", ["mxfp4", "fp8"])
def test_a_checkpoint_dequantized_at_load_time_is_its_configs_dtype(tmp_path, method):
    """Mxfp4Config / FineGrainedFP8Config(dequantize=True): transformers loads the weights in the
    config's dtype, so the files' bytes are not what the GPU holds."""
    shape = TABLES["gpt-oss (shape)"]
    config = dict(shape["config"], torch_dtype="bfloat16", quantization_config=dict(MXFP4, quant_method=method,
                                                                                    dequantize=True))
    folder = tmp_path / "gpt-oss"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    write_safetensors(folder / "model.safetensors", _mxfp4_table(shape["tensors"]))
    result = _evaluate(folder)
    v = result.plain
    assert v["weight_dequantized"] and not v["inference_weights_from_checkpoint"]
    assert v["inference_weights"] == v["params"] * 2 and result.warnings == []


# transformers 5.24 integrations/finegrained_fp8.py (FP8Linear), the layout of DeepSeek-V3's and
# Qwen3-FP8's checkpoints: per nn.Linear(in, out) weight float8_e4m3fn [out, in] and weight_scale_inv
# float32 [ceil(out/128), ceil(in/128)]; routers (mlp.gate), norms, embeddings, head 16-bit (here all
# bf16; DeepSeek-V3 keeps e_score_correction_bias in fp32).
def _fp8_table(table, block=128):
    def linear(base, rows, cols):
        return [(f"{base}.weight", [rows, cols], "F8_E4M3"),
                (f"{base}.weight_scale_inv", [-(-rows // block), -(-cols // block)], "F32")]

    out = []
    for name, shape in table:
        base = name[: -len(".weight")]
        if name.endswith("_proj.weight") and ".layers." in name or name.endswith("kv_a_proj_with_mqa.weight"):
            out += linear(base, *shape)
        elif name.endswith("experts.gate_up_proj"):
            e, f2, h = shape
            stem = name[: -len("gate_up_proj")]
            for k in range(e):
                out += linear(f"{stem}{k}.gate_proj", f2 // 2, h) + linear(f"{stem}{k}.up_proj", f2 // 2, h)
        elif name.endswith("experts.down_proj"):
            e, h, f = shape
            stem = name[: -len("down_proj")]
            for k in range(e):
                out += linear(f"{stem}{k}.down_proj", h, f)
        else:
            out.append((name, shape, "BF16"))
    return out


FP8 = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}


@pytest.mark.parametrize("config", ["llama-2-7b.json", "qwen3-8b.json", "mixtral-8x7b-v0.1.json", "deepseek-v3 (shape)"])
def test_fp8_block_wise_weights_are_their_checkpoints_bytes(tmp_path, config):
    base = TABLES[config].get("config") or json.loads((DATA / "hf_configs" / config).read_text())
    base = dict(base, torch_dtype="bfloat16")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(dict(base, quantization_config=FP8)))
    write_safetensors(folder / "model.safetensors", _fp8_table(TABLES[config]["tensors"]))
    stored = data_bytes(folder / "model.safetensors")
    assert _evaluate(folder).plain["inference_weights"] == stored
    predicted = _evaluate(_config(tmp_path, FP8, base))
    assert predicted.plain["uses_fp8_blocks"] and predicted.warnings == []
    # DeepSeek-V3's router keeps e_score_correction_bias, a buffer (E numbers per MoE layer) that
    # the formulas' parameter count leaves out: the one difference, said here, not hidden
    buffers = sum(2 * s[0] for n, s in TABLES[config]["tensors"] if n.endswith("e_score_correction_bias"))
    assert predicted.plain["inference_weights"] + buffers == stored


def test_a_weight_block_size_that_is_not_two_numbers_is_a_located_error(tmp_path):
    path = _config(tmp_path, dict(FP8, weight_block_size=128))
    with pytest.raises(SpecError, match='"weight_block_size" must be a list of 2 numbers') as info:
        vram_eval.load(str(path))
    assert info.value.location.path == str(path)


GPT_OSS_NOT_CONVERTED = ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]


def test_mxfp4s_modules_to_not_convert_are_read_entry_by_entry(tmp_path):
    """openai/gpt-oss-20b's list (its config.json, validation/QUANT_RESEARCH.md A3) names parts MXFP4
    never converts; an entry naming some experts is a layout the formulas do not have, and said so."""
    oss = json.loads((DATA / "published" / "gpt-oss-20b.config.json").read_text())
    quantization = {"quant_method": "mxfp4", "modules_to_not_convert": GPT_OSS_NOT_CONVERTED}
    assert _evaluate(_config(tmp_path, quantization, oss)).warnings == []
    quantization["modules_to_not_convert"] = GPT_OSS_NOT_CONVERTED + ["model.layers.0.mlp.experts"]
    assert any("modules_to_not_convert" in w for w in _evaluate(_config(tmp_path, quantization, oss)).warnings)
