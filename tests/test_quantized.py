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


# AutoGPTQ's QuantLinear (auto_gptq/nn_modules/qlinear/qlinear_cuda_old.py, the format transformers'
# GPTQ integration loads): per nn.Linear(in, out) with bits b and group size g —
# qweight int32 [in·b/32, out], qzeros int32 [in/g, out·b/32], scales fp16 [in/g, out], g_idx int32 [in].
def _gptq_table(table, bits=4, group=128):
    out = []
    for name, shape in table:
        linear = name.endswith("_proj.weight") and ".layers." in name
        if not linear:
            out.append((name, shape, "F16"))
            continue
        rows, cols = shape  # PyTorch's [out, in]
        base = name[: -len(".weight")]
        out += [(f"{base}.qweight", [cols * bits // 32, rows], "I32"),
                (f"{base}.qzeros", [cols // group, rows * bits // 32], "I32"),
                (f"{base}.scales", [cols // group, rows], "F16"),
                (f"{base}.g_idx", [cols], "I32")]
    return out


def test_a_quantized_folders_inference_weights_are_its_bytes(tmp_path):
    folder = tmp_path / "Llama-2-7B-GPTQ"
    folder.mkdir()
    config = json.loads((DATA / "hf_configs" / "llama-2-7b.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(config, quantization_config=RULES[0][0])))
    write_safetensors(folder / "model.safetensors", _gptq_table(TABLES["llama-2-7b.json"]["tensors"]))
    result = _evaluate(folder)
    v = result.plain
    assert v["inference_weights_from_checkpoint"] and v["inference_weights"] == data_bytes(folder / "model.safetensors")
    # the int4 rule (group 128: an fp16 scale and a 4-bit zero per group) comes to the same bytes
    # but for g_idx (4 bytes per input row of each matrix)
    predicted = _evaluate(_config(tmp_path, RULES[0][0], config)).plain["inference_weights"]
    assert abs(predicted - v["inference_weights"]) / v["inference_weights"] < 0.002


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
