"""Pre-quantized checkpoints (issue 13.3, first part): a config.json's quantization_config binds
weight_format and, by the catalog's rules (specs/catalog/huggingface.toml [quantization]), the
inference_dtype whose rule predicts the weights; a model folder's headers give them to the byte."""

from __future__ import annotations

import json
import math

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


# Each quantised matrix of a checkpoint's tensor table through `linear(name, out, in)`: the blocks'
# projections, and transformers 5's fused experts ([E, 2f, h] gate_up, [E, h, f] down) as the
# per-expert w1, w3, w2 the quantizers store; everything else stays fp16.
def _per_linear(table, linear):
    out = []
    for name, shape in table:
        base = name[: -len(".weight")] if name.endswith(".weight") else name
        if name.endswith("_proj.weight") and ".layers." in name:
            out += linear(base, *shape)
        elif name.endswith("experts.gate_up_proj"):
            e, f2, h = shape
            for k in range(e):
                out += linear(f"{base[:-len('gate_up_proj')]}{k}.w1", f2 // 2, h)
                out += linear(f"{base[:-len('gate_up_proj')]}{k}.w3", f2 // 2, h)
        elif name.endswith("experts.down_proj"):
            e, h, f = shape
            for k in range(e):
                out += linear(f"{base[:-len('down_proj')]}{k}.w2", h, f)
        else:
            out.append((name, shape, "F16"))
    return out


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

    return _per_linear(table, linear)


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
    # DeepSeek-V3's router weight and e_score_correction_bias buffer, stored here in bf16, are held in fp32
    assert predicted.plain["inference_weights"] == stored + _held_in_fp32(TABLES[config]["tensors"])


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


# --- bitsandbytes, per-tensor FP8, fbgemm FP8 and AWQ GEMV (issue 13.3) ---------------------------
# Measured: engine/lab/bnb_checkpoints.py and engine/lab/fp8_checkpoints.py (transformers 5.24,
# bitsandbytes 0.50.2, torch 2.13, CPU): each checkpoint's tensor table as its files hold it, and
# every tensor the loaded model holds ("memory"). The config.json alone and a folder of those files
# must both give the memory (the weights row); the files' bytes are stored_weights.
BNB = json.loads((DATA / "measured" / "bnb_checkpoints.json").read_text())["cases"]
FP8_CASES = json.loads((DATA / "measured" / "fp8_checkpoints.json").read_text())["cases"]
BNB_READ = [name for name, case in BNB.items() if "error" not in case and case.get("skip_modules") != ["model.embed_tokens"]]


def _held(case, quantizer_buffers=("input_scale_ub",)):
    """Bytes the loaded model holds, less the unsaved buffers no weights row counts (rotary
    inv_freq); a quantizer's own (fbgemm's input_scale_ub) stay."""
    return sum(t[3] for t in case["memory"] if t[4] != "unsaved buffer" or t[0].rsplit(".", 1)[-1] in quantizer_buffers)


def _held_in_fp32(table):
    """What DeepSeek-V3's router weight and score-bias buffer add once loaded over a table that
    stores them in bf16: 2 more bytes an element (transformers keeps both in fp32)."""
    if not any(name.endswith("e_score_correction_bias") for name, _ in table):
        return 0  # a router transformers holds in the model's dtype (Mixtral, Qwen-MoE)
    return sum(2 * math.prod(shape) for name, shape in table
               if name.endswith(("mlp.gate.e_score_correction_bias", "mlp.gate.weight")))


def _router_difference(tensors):
    """DeepSeek-V3's router as the model holds and saves it: an fp32 weight
    (DeepseekV3PreTrainedModel._keep_in_fp32_modules_strict) and an fp32 e_score_correction_bias
    buffer, where the parameter count has a 16-bit weight and no buffer: the one difference, said
    here, not hidden (model.formula counts parameters in the config's dtype)."""
    return sum(t[3] // 2 for t in tensors if t[0].endswith("mlp.gate.weight") and t[1] == "F32") + sum(
        t[3] for t in tensors if t[0].endswith("e_score_correction_bias"))


def _folder(tmp_path, config, table, name="model"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    write_safetensors(folder / "model.safetensors", [(t[0], t[2], t[1]) for t in table])
    return folder


@pytest.mark.parametrize("name", BNB_READ)
def test_bitsandbytes_checkpoints_as_transformers_saves_and_loads_them(tmp_path, name):
    case = BNB[name]
    held, stored = _held(case), sum(t[3] for t in case["file"])
    folder = _evaluate(_folder(tmp_path, case["config"], case["file"])).plain
    assert folder["checkpoint_bytes"] == stored and folder["inference_weights"] == held
    predicted = _evaluate(_config(tmp_path, case["config"]["quantization_config"], case["config"]))
    v = predicted.plain
    assert v["uses_bnb_weights"] and predicted.warnings == []
    assert v["inference_weights"] == held
    # the files: exact without double quant; with it every nested_offset counted at 22 characters,
    # the most a float32's repr takes, so the bound is above the files by exactly the measured slack
    slack = sum(22 - len(offset) for offset in case["offsets"].values())
    assert v["bnb_checkpoint_bytes"] + _router_difference(case["file"]) == stored + slack
    assert v["bnb_checkpoint_exact"] == (slack == 0 and not case["config"]["quantization_config"].get(
        "bnb_4bit_use_double_quant"))


def test_a_skip_list_without_the_head_converts_it_and_says_so(tmp_path):
    """llm_int8_skip_modules replaces transformers' defaults: listing only the embeddings leaves the
    head to bitsandbytes (measured: lm_head.weight int8 + lm_head.SCB), a layout the formulas leave
    to the dtype rule, with a warning; the folder still gives the bytes."""
    case = BNB["llama-int8-bfloat16-skip-model.embed_tokens"]
    assert any(t[0] == "lm_head.SCB" for t in case["file"])
    predicted = _evaluate(_config(tmp_path, case["config"]["quantization_config"], case["config"]))
    assert not predicted.plain["uses_bnb_weights"] and any("bitsandbytes layout" in w for w in predicted.warnings)
    assert _evaluate(_folder(tmp_path, case["config"], case["file"])).plain["inference_weights"] == _held(case)


# The layout, written from bitsandbytes 0.50.2's and transformers 5.24's code (bitsandbytes.formula
# cites each line): every 2-D weight in the blocks but the routers (mlp.gate, block_sparse_moe.gate)
# and routed experts, GPT-2's Conv1D transposed to [out, in]; DeepSeek-V3's router kept in fp32
# (_keep_in_fp32_modules_strict), as transformers loads it before quantizing.
ROUTERS = ("mlp.gate.weight", "block_sparse_moe.gate.weight")


def _bnb_table(base, quantization, offsets=None, fp32=()):
    four = quantization.get("load_in_4bit", False)
    dq = quantization.get("bnb_4bit_use_double_quant", False)
    kind = quantization.get("bnb_4bit_quant_type", "fp4")
    storage = {"uint8": ("U8", 1), "int8": ("I8", 1), "float16": ("F16", 2), "bfloat16": ("BF16", 2),
               "float32": ("F32", 4), "float64": ("F64", 8)}[quantization.get("bnb_4bit_quant_storage", "uint8")]
    names = {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}
    out = []
    for name, dtype, shape in base:
        if not (name.endswith(".weight") and len(shape) == 2 and (".layers." in name or ".h." in name)
                and not name.endswith(ROUTERS) and ".experts." not in name):
            out.append([name, "F32" if name.endswith(fp32) else dtype, shape])
            continue
        rows, cols = shape[::-1] if name.rsplit(".", 2)[-2] in ("c_attn", "c_proj", "c_fc") else shape
        n, stem = rows * cols, name[: -len(".weight")]
        if not four:
            out += [[name, "I8", [rows, cols]], [f"{stem}.SCB", "F32", [rows]], [f"{stem}.weight_format", "U8", []]]
            continue
        blocks = -(-n // 64)
        state = json.dumps({"quant_type": kind, "blocksize": 64, "dtype": names[dtype], "shape": [rows, cols]})
        out += [[name, storage[0], [(n + 1) // (2 * storage[1]), 1]], [f"{name}.absmax", "U8" if dq else "F32", [blocks]],
                [f"{name}.quant_map", "F32", [16]]]
        if dq:
            offset = (offsets or {}).get(f"{name}.quant_state.bitsandbytes__{kind}", "0.00012345678901234567")
            state = state[:-1] + ', "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": ' + offset + "}"
            out += [[f"{name}.nested_absmax", "F32", [-(-blocks // 256)]], [f"{name}.nested_quant_map", "F32", [256]]]
        out.append([f"{name}.quant_state.bitsandbytes__{kind}", "U8", [len(state)]])
    return out


@pytest.mark.parametrize("name", [n for n in BNB_READ if BNB[n].get("skip_modules") is None])
def test_the_bitsandbytes_layout_written_from_the_code_is_the_measured_one(name):
    case = BNB[name]
    fp32 = ("mlp.gate.weight", "e_score_correction_bias") if case["config"]["model_type"] == "deepseek_v3" else ()
    written = _bnb_table(case["base"], case["config"]["quantization_config"], case["offsets"], fp32)
    assert sorted(written) == sorted(t[:3] for t in case["file"])


# unsloth/meta-llama-3.1-8b-instruct-bnb-4bit's block, as a derivative that kept it shows it
# (https://huggingface.co/caomingpei/fcl-code/blob/main/config.json; validation/QUANT_RESEARCH.md A5),
# and the older unsloth form without quant_storage (QUANT_RESEARCH.md A5, the anwesh/... config).
UNSLOTH = {"_load_in_4bit": True, "_load_in_8bit": False, "bnb_4bit_compute_dtype": "bfloat16",
           "bnb_4bit_quant_storage": "uint8", "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
           "llm_int8_enable_fp32_cpu_offload": False, "llm_int8_has_fp16_weight": False, "llm_int8_skip_modules": None,
           "llm_int8_threshold": 6.0, "load_in_4bit": True, "load_in_8bit": False, "quant_method": "bitsandbytes"}
BNB_FULL = [("unsloth", UNSLOTH),
            ("nf4", {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}),
            ("fp4-bf16-storage", {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "fp4",
                                  "bnb_4bit_quant_storage": "bfloat16", "bnb_4bit_use_double_quant": True}),
            ("int8", {"quant_method": "bitsandbytes", "load_in_8bit": True})]


@pytest.mark.parametrize("config", ["llama-2-7b.json", "qwen3-8b.json", "mixtral-8x7b-v0.1.json", "deepseek-v3 (shape)"])
@pytest.mark.parametrize("label, quantization", BNB_FULL, ids=[label for label, _ in BNB_FULL])
def test_bitsandbytes_weights_of_full_size_models_to_the_byte(tmp_path, config, label, quantization):
    base = TABLES[config].get("config") or json.loads((DATA / "hf_configs" / config).read_text())
    base = dict(base, torch_dtype="bfloat16")
    table = _bnb_table([(n, "BF16", s) for n, s in TABLES[config]["tensors"]], quantization)
    folder = _evaluate(_folder(tmp_path, dict(base, quantization_config=quantization), table)).plain
    predicted = _evaluate(_config(tmp_path, quantization, base))
    assert predicted.plain["uses_bnb_weights"] and predicted.warnings == []
    buffers = sum(2 * s[0] for n, s in TABLES[config]["tensors"] if n.endswith("e_score_correction_bias"))
    assert predicted.plain["inference_weights"] == folder["inference_weights"] + _held_in_fp32(TABLES[config]["tensors"])
    assert predicted.plain["bnb_checkpoint_bytes"] + buffers == folder["checkpoint_bytes"]


def test_bitsandbytes_on_a_plain_spec(tmp_path):
    from conftest import SPECS

    result = _evaluate(SPECS / "llama2-7b.toml", "weight_format=bitsandbytes", "inference_dtype=nf4",
                       "bnb_double_quant=true")
    assert result.plain["uses_bnb_weights"] and result.plain["inference_weights"] == result.plain["bnb_weights"]


@pytest.mark.parametrize("name", [n for n, c in FP8_CASES.items() if "error" not in c])
def test_fp8_and_fbgemm_weights_as_transformers_holds_them(tmp_path, name):
    """Per-tensor and block-wise FP8 (dynamic, static, ue8m0 scales, the default block) and fbgemm's
    per-channel FP8: the config.json alone, and a folder of the layout the modules accept, give
    what the loaded model holds."""
    case = FP8_CASES[name]
    held = _held(case)
    predicted = _evaluate(_config(tmp_path, case["config"]["quantization_config"], case["config"]))
    v = predicted.plain
    assert (v["uses_fbgemm_weights"] if "fbgemm" in name else v["uses_fp8_tensor_scales"] or v["uses_fp8_blocks"])
    assert v["uses_fp8_tensor_scales"] == (case["config"]["quantization_config"].get("weight_block_size", 0) is None)
    assert predicted.warnings == []
    assert v["inference_weights"] == held
    assert _evaluate(_folder(tmp_path, case["config"], case["file"])).plain["inference_weights"] == held


# amd/Llama-3.1-8B-Instruct-FP8-KV's block (https://huggingface.co/amd/Llama-3.1-8B-Instruct-FP8-KV/blame/
# refs%2Fpr%2F6/config.json, a Quark export): no weight_block_size, which transformers 5.24's
# FineGrainedFP8Config reads as (128, 128); static activations; MiniMax's alias ignored_layers.
AMD_FP8 = {"activation_scheme": "static", "ignored_layers": ["lm_head"], "kv_cache_scheme": "static",
           "quant_method": "fp8"}


def test_an_fp8_config_without_a_block_size_takes_transformers_default(tmp_path):
    base = json.loads((DATA / "hf_configs" / "llama-3-8b.json").read_text())
    v = _evaluate(_config(tmp_path, AMD_FP8, base)).plain
    assert (v["fp8_block_out"], v["fp8_block_in"], v["fp8_activation"]) == (128, 128, "static")
    assert v["uses_fp8_blocks"] and v["quant_ignores_head"]
    # one fp32 activation_scale per Linear beside the block-wise layout
    dynamic = _evaluate(_config(tmp_path, dict(AMD_FP8, activation_scheme="dynamic"), base)).plain
    assert v["inference_weights"] - dynamic["inference_weights"] == 4 * 7 * base["num_hidden_layers"]
    per_tensor = _evaluate(_config(tmp_path, dict(AMD_FP8, weight_block_size=None, scale_fmt="float"), base)).plain
    assert per_tensor["uses_fp8_tensor_scales"] and per_tensor["fp8_scale_fmt"] == "fp32"


def test_fp8_on_an_ampere_gpu_is_dequantized_and_said_so(tmp_path):
    result = _evaluate(_config(tmp_path, FP8), "gpu_arch=ampere")
    assert any("compute capability 8.9" in w for w in result.warnings)


def test_fp4_experts_of_an_fp8_checkpoint_are_estimated_and_said_so(tmp_path):
    """FineGrainedFP8Config's expert_dtype fp4 (DeepSeek-V4's packed experts) is a layout the
    formulas do not have."""
    base = json.loads((DATA / "hf_configs" / "mixtral-8x7b-v0.1.json").read_text())
    result = _evaluate(_config(tmp_path, dict(FP8, expert_dtype="fp4"), base))
    assert not result.plain["uses_fp8_blocks"] and any("fp4 experts" in w for w in result.warnings)


# AutoAWQ's GEMV and GEMV_fast layouts (casper-hansen/AutoAWQ @ 88e4c76, awq/modules/linear/gemv.py
# WQLinear_GEMV, gemv_fast.py WQLinear_GEMVFast; GPTQModel's AwqGEMVQuantLinear and
# AwqGEMVFastQuantLinear register the same): W = calculate_zeros_width(in, g); GEMV qweight int32
# [out, in/8], qzeros int32 [out, W], scales fp16 [out, 8 W]; GEMV_fast qweight int16 [out/4, in],
# scales and qzeros fp16 [8 W, out]. Derived from the source, not measured (AutoAWQ builds them
# with its CUDA kernels).
def _zeros_width(cols, group):
    group = cols if group == -1 else group
    multiple = 1 if group >= 128 else {64: 2, 32: 4}[group]
    return -(-(-(-(cols // group) // 8)) // multiple) * multiple


def _gemv_table(table, version, group):
    def linear(base, rows, cols):
        width = _zeros_width(cols, group)
        if version == "gemv":
            return [(f"{base}.qweight", [rows, cols // 8], "I32"), (f"{base}.qzeros", [rows, width], "I32"),
                    (f"{base}.scales", [rows, 8 * width], "F16")]
        return [(f"{base}.qweight", [rows // 4, cols], "I16"), (f"{base}.qzeros", [8 * width, rows], "F16"),
                (f"{base}.scales", [8 * width, rows], "F16")]

    return _per_linear(table, linear)


GEMV = [("llama-2-7b.json", "gemv", 128), ("llama-2-7b.json", "gemv", 64), ("llama-2-7b.json", "gemv", 32),
        ("llama-2-7b.json", "gemv", -1), ("qwen3-8b.json", "gemv", 128), ("mixtral-8x7b-v0.1.json", "gemv", 128),
        ("llama-2-7b.json", "gemv_fast", 128), ("qwen3-8b.json", "gemv_fast", 64),
        ("mixtral-8x7b-v0.1.json", "gemv_fast", 32)]


@pytest.mark.parametrize("config, version, group", GEMV, ids=[f"{c[:-5]}-{v}-g{g}" for c, v, g in GEMV])
def test_awqs_gemv_layouts_are_their_checkpoints_bytes(tmp_path, config, version, group):
    quantization = {"quant_method": "awq", "bits": 4, "group_size": group, "version": version, "zero_point": True}
    base = json.loads((DATA / "hf_configs" / config).read_text())
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(dict(base, quantization_config=quantization)))
    write_safetensors(folder / "model.safetensors", _gemv_table(TABLES[config]["tensors"], version, group))
    stored = data_bytes(folder / "model.safetensors")
    assert _evaluate(folder).plain["inference_weights"] == stored
    predicted = _evaluate(_config(tmp_path, quantization, base))
    assert predicted.plain["uses_packed_weights"] and predicted.warnings == []
    assert predicted.plain["inference_weights"] == stored


def test_a_gemv_group_size_autoawq_refuses_is_estimated_and_said_so(tmp_path):
    result = _evaluate(_config(tmp_path, {"quant_method": "awq", "bits": 4, "group_size": 96, "version": "gemv"}))
    assert not result.plain["uses_packed_weights"] and result.plain["inference_dtype"] == "int4"
    assert any("GEMV" in w for w in result.warnings)


@pytest.mark.parametrize("entries, exact", [(None, True), (["visual"], True), (["gate"], True),
                                            (["model.layers.0.self_attn.q_proj"], False)])
def test_awqs_modules_to_not_convert_are_read_entry_by_entry(tmp_path, entries, exact):
    """AutoAWQ's lists name the vision tower (Qwen2-VL) or the routers (Mixtral), which its layout
    leaves in 16 bits anyway; an entry naming a quantised layer is a layout the formulas lack."""
    quantization = {"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemm", "zero_point": True,
                    "modules_to_not_convert": entries}
    result = _evaluate(_config(tmp_path, quantization))
    assert result.plain["uses_packed_weights"] is exact
    assert (result.warnings == []) is exact
