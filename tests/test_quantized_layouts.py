"""GPTQ and AWQ (GEMM) checkpoints of models that are not plain llama/gpt blocks (issue 13): latent
attention (DeepSeek-V2/V3), an image-text model (Gemma-3: GPTQ quantises the language model's
blocks alone), and the layouts left to the dtype rule with a warning (Llama-4 image-text, Jamba,
falcon-mamba; AWQ on Gemma-3). Measured: tests/data/measured/packed_layouts.json
(engine/lab/packed_layouts.py: the loaders' own module selection — optimum 2.3.0's GPTQ
convert_model, transformers 5.24's replace_with_awq_linear — run on the model built on the meta
device, checked against GPTQModel 7.7.0's and AutoAWQ's module lists)."""

from __future__ import annotations

import json

import pytest

import vram_eval

from conftest import DATA
from test_checkpoint import data_bytes, write_safetensors

CASES = json.loads((DATA / "measured" / "packed_layouts.json").read_text())["cases"]


def _quantization(case):
    q = {"quant_method": case["method"], "bits": case["bits"], "group_size": case["group_size"]}
    q.update({"desc_act": False, "sym": True} if case["method"] == "gptq" else {"version": "gemm", "zero_point": True})
    return q


def _config(case):
    return dict(case["config"], torch_dtype="float16", quantization_config=_quantization(case))


def _evaluate(path):
    return vram_eval.evaluate(vram_eval.load(str(path), []))


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_config_alone_gives_the_loaded_layout_or_says_it_estimates(tmp_path, name):
    case = CASES[name]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_config(case)))
    result = _evaluate(path)
    v = result.plain
    assert v["uses_packed_weights"] == case["exact"], case.get("reason")
    if case["exact"]:
        assert v["inference_weights"] == case["bytes"] and result.warnings == []
    else:
        assert any("GPTQ/AWQ bytes" in w for w in result.warnings)


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c["exact"]])
def test_the_loader_converts_what_the_quantizer_quantised(name):
    """Exact only where both sides agree: the modules transformers' loader turns into quantised
    layers inside a decoder layer are the ones GPTQModel's module_tree (and AutoAWQ) quantise, and
    none outside the blocks (the vision tower, projector, head and routers stay 16-bit)."""
    case = CASES[name]
    assert case["converted_in_layers"] == case["quantizer_modules"] and case["converted_outside"] == []


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if "table" in c])
def test_a_folder_of_that_layout_gives_the_same_bytes(tmp_path, name):
    case = CASES[name]
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(_config(case)))
    write_safetensors(folder / "model.safetensors", [(t[0], t[2], t[1]) for t in case["table"]])
    assert data_bytes(folder / "model.safetensors") == case["bytes"]
    assert _evaluate(folder).plain["inference_weights"] == case["bytes"]


def test_what_stays_estimated_and_why():
    """The measured reasons the formulas keep the dtype rule: no block pattern for falcon-mamba's
    backbone.layers or Llama-4's language_model.model.layers; Jamba's x_proj and dt_proj converted by
    the loader but not by GPTQModel; AWQ converting Gemma-3's vision tower."""
    reasons = {n: c.get("reason", "") for n, c in CASES.items() if not c["exact"]}
    assert "Block pattern could not be match" in reasons["falcon-mamba (shape)-gptq4-g128"]
    assert "Block pattern could not be match" in reasons["llama4-small (shape)-gptq4-g128"]
    assert "mamba.dt_proj" in reasons["jamba (shape)-gptq4-g128"]
    assert "model.vision_tower" in reasons["gemma3-vision-head (shape)-awq4-g128"]


@pytest.mark.parametrize("engine,warned", [("transformers", True), ("vllm", False)])
def test_a_gptq_moes_fused_experts_are_said_to_be_unmeasured_under_transformers(cli, tmp_path, engine, warned):
    """transformers 5.24's fused 3-D experts are not converted by its GPTQ loader (packed_layouts.json):
    the report says the experts are counted packed, as the files hold them, unless the engine is vLLM's."""
    import json

    from conftest import DATA

    config = json.loads((DATA / "published" / "deepseek-v3.config.json").read_text())
    config["quantization_config"] = {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False, "sym": True}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    code, out, _ = cli(str(path), "--set", f"engine={engine}", "--format", "json")
    assert code == 0
    said = any("fuses them into 3-D tensors" in n for n in json.loads(out)["notes"])
    assert said is warned


def test_a_dense_gptq_model_has_no_fused_experts_to_warn_of(cli):
    import json

    from conftest import DATA

    code, out, _ = cli(str(DATA / "published" / "qwen2.5-72b-instruct-gptq-int4.config.json"), "--format", "json")
    assert code == 0 and not any("fuses them into 3-D tensors" in n for n in json.loads(out)["notes"])
