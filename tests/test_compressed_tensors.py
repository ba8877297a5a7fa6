"""compressed-tensors checkpoints (issue 13.3): a config.json's config_groups, ignore and
kv_cache_scheme give the weights to the byte (formulas/compressed_tensors.formula), checked against
the tensor tables compressed-tensors itself writes for each preset scheme
(tests/data/measured/compressed_tensors.json, engine/lab/compressed_tensors.py)."""

from __future__ import annotations

import copy
import json

import pytest

import vram_eval
from vram_eval import spec_hf
from vram_eval.errors import SpecError

from conftest import DATA
from test_checkpoint import data_bytes, write_safetensors

MEASURED = json.loads((DATA / "measured" / "compressed_tensors.json").read_text())["cases"]
CLASSES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}


def _config(case: dict, quantization: dict | None = None) -> dict:
    """The config.json of a measured case: its model in bf16 (the dtype it was compressed from)."""
    model = dict(case["model"])
    return dict(model, architectures=[CLASSES[model["model_type"]]], torch_dtype="bfloat16",
                tie_word_embeddings=model.get("tie_word_embeddings", False),
                quantization_config=quantization or case["quantization_config"])


def _evaluate(path, *sets):
    return vram_eval.evaluate(vram_eval.load(str(path), list(sets)))


def _write(tmp_path, config: dict, name="config.json"):
    path = tmp_path / name
    path.write_text(json.dumps(config))
    return path


@pytest.mark.parametrize("case", sorted(MEASURED))
def test_the_config_alone_gives_the_bytes_compressed_tensors_writes(tmp_path, case):
    folder = tmp_path / "model"
    folder.mkdir()
    write_safetensors(folder / "model.safetensors", [(n, shape, dt) for n, dt, shape in MEASURED[case]["tensors"]])
    stored = data_bytes(folder / "model.safetensors")
    predicted = _evaluate(_write(tmp_path, _config(MEASURED[case])))
    assert predicted.plain["uses_ct_weights"] and predicted.warnings == []
    assert predicted.plain["inference_weights"] == stored


def test_a_folder_of_those_files_gives_the_same_as_stored(tmp_path):
    case = MEASURED["llama-W4A16"]
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(_config(case)))
    write_safetensors(folder / "model.safetensors", [(n, shape, dt) for n, dt, shape in case["tensors"]])
    assert _evaluate(folder).plain["inference_weights"] == data_bytes(folder / "model.safetensors")


def test_a_quantised_checkpoint_is_smaller_than_its_16_bit_self(tmp_path):
    """Not the bf16 size (gpustack#645's mistake): W4A16 about a quarter of the blocks' bytes."""
    w4 = _evaluate(_write(tmp_path, _config(MEASURED["llama-2-7b-W4A16"]))).plain
    assert w4["inference_weights"] < 0.6 * 2 * w4["params"]


def _edited(change) -> dict:
    quantization = copy.deepcopy(MEASURED["llama-W4A16"]["quantization_config"])
    change(quantization)
    return quantization


def _second_group(q):
    q["config_groups"]["group_1"] = dict(q["config_groups"]["group_0"], targets=["re:.*down_proj$"],
                                         weights=dict(q["config_groups"]["group_0"]["weights"], num_bits=8))


# a layout the config does not give vram-eval exactly: the dtype rule estimates, and it says so
UNREAD = {
    "two schemes": _second_group,
    "targets by pattern": lambda q: q["config_groups"]["group_0"].update(targets=["re:.*proj$"]),
    "output activations": lambda q: q["config_groups"]["group_0"].update(
        output_activations={"num_bits": 8, "type": "float", "strategy": "tensor", "dynamic": False}),
    "an ignore entry it cannot place": lambda q: q.update(ignore=["lm_head", "re:.*layers\\.0\\..*"]),
    "the head quantised": lambda q: q.update(ignore=[]),
    "a scale dtype of its own": lambda q: q["config_groups"]["group_0"]["weights"].update(scale_dtype="torch.float32"),
    "a legacy sparse format": lambda q: q.update(format="marlin-24") or q["config_groups"]["group_0"].pop("format"),
}


@pytest.mark.parametrize("change", UNREAD.values(), ids=UNREAD)
def test_a_layout_it_cannot_read_is_estimated_and_said_so(tmp_path, change):
    result = _evaluate(_write(tmp_path, _config(MEASURED["llama-W4A16"], _edited(change))))
    assert not result.plain["uses_ct_weights"]
    assert any("compressed-tensors layout of this checkpoint is not modelled" in w for w in result.warnings)


def test_a_moe_whose_routers_are_quantised_too_is_estimated(tmp_path):
    mixtral = json.loads((DATA / "hf_configs" / "mixtral-8x7b-v0.1.json").read_text())
    quantization = MEASURED["llama-W4A16"]["quantization_config"]
    plain = _evaluate(_write(tmp_path, dict(mixtral, quantization_config=quantization))).plain
    assert not plain["uses_ct_weights"]
    ignored = dict(quantization, ignore=["lm_head", "re:.*block_sparse_moe.gate$"])
    assert _evaluate(_write(tmp_path, dict(mixtral, quantization_config=ignored))).plain["uses_ct_weights"]


def test_a_per_layer_router_list_is_read_as_the_routers():
    parts = spec_hf._hf_catalog()["quantization"]["ignore"]
    assert [spec_hf._ignored_part(e, parts) for e in ["model.layers.0.mlp.gate", "model.layers.47.mlp.gate"]] \
        == ["routers", "routers"]


# ignore entries as published configs spell them → the part they name (None: not placed)
IGNORED = [
    ("lm_head", "head"), ("re:.*lm_head", "head"), ("re:.*mlp.gate$", "routers"),
    ("model.layers.3.mlp.shared_expert_gate", "shared_gates"), ("re:visual.*", "vision"),
    ("re:vision_tower.*", "vision"), ("model.visual.blocks.0.attn.qkv", "vision"),
    ("re:multi_modal_projector.*", "vision"), ("re:.*embed_tokens.*", "harmless"),
    ("*self_attn*", "attention"), ("*mlp.gate*", "routers"), ("model.embed_tokens", "harmless"),
    ("model.layers.0.self_attn.q_proj", None), ("re:.*", None), ("re:(a+)+$", None),
]


@pytest.mark.parametrize("entry, part", IGNORED)
def test_each_ignore_entry_names_its_part_as_text(entry, part):
    parts = spec_hf._hf_catalog()["quantization"]["ignore"]
    assert spec_hf._ignored_part(entry, parts) == part


def test_a_kv_cache_scheme_adds_two_scales_per_attention_layer(tmp_path):
    case = MEASURED["llama-FP8"]
    base = _evaluate(_write(tmp_path, _config(case))).plain
    kv = dict(case["quantization_config"],
              kv_cache_scheme={"num_bits": 8, "type": "float", "strategy": "tensor", "dynamic": False, "symmetric": True})
    plain = _evaluate(_write(tmp_path, _config(case, kv))).plain
    assert plain["inference_weights"] - base["inference_weights"] == 2 * 2 * case["model"]["num_hidden_layers"]


def test_the_same_layout_is_an_input_of_a_plain_spec():
    from conftest import SPECS

    plain = _evaluate(SPECS / "llama2-7b.toml", "weight_format=compressed-tensors", "ct_format=float-quantized",
                      "ct_strategy=channel", "quant_group_size=0", "quant_bits=8").plain
    assert plain["uses_ct_weights"] and plain["inference_weights"] == plain["ct_weights"]


BAD = {
    "config_groups not an object": (lambda q: q.update(config_groups=["group_0"]), '"config_groups" must be an object'),
    "weights not an object": (lambda q: q["config_groups"]["group_0"].update(weights=4),
                              '"weights" must be an object'),
    "ignore not a list": (lambda q: q.update(ignore="lm_head"), '"ignore" must be a list'),
    "block_structure not two numbers": (
        lambda q: q["config_groups"]["group_0"]["weights"].update(strategy="block", block_structure=[128]),
        '"block_structure" must be a list of 2'),
    "num_bits a word": (lambda q: q["config_groups"]["group_0"]["weights"].update(num_bits="four"), "num_bits"),
}


@pytest.mark.parametrize("change, words", BAD.values(), ids=BAD)
def test_a_config_group_it_cannot_read_is_a_located_error(tmp_path, change, words):
    path = _write(tmp_path, _config(MEASURED["llama-W4A16"], _edited(change)))
    with pytest.raises(SpecError) as caught:
        _evaluate(path)
    assert words in str(caught.value) and caught.value.location.line >= 1


# compressed-tensors' own README (github.com/vllm-project/compressed-tensors, README.md, "the
# config.json will have the following quantization_config" for ./Meta-Llama-3-8B-MXFP4), verbatim
README_MXFP4 = json.loads("""{
    "config_groups": {
      "group_0": {
        "format": "mxfp4-pack-quantized",
        "input_activations": {"actorder": null, "block_structure": null, "dynamic": true, "group_size": 32,
          "num_bits": 4, "observer": null, "observer_kwargs": {}, "scale_dtype": "torch.uint8",
          "strategy": "group", "symmetric": true, "type": "float", "zp_dtype": null},
        "output_activations": null,
        "targets": ["Linear"],
        "weights": {"actorder": null, "block_structure": null, "dynamic": false, "group_size": 32, "num_bits": 4,
          "observer": "memoryless_minmax", "observer_kwargs": {}, "scale_dtype": "torch.uint8",
          "strategy": "group", "symmetric": true, "type": "float", "zp_dtype": null}
      }
    },
    "format": "mxfp4-pack-quantized",
    "global_compression_ratio": null,
    "ignore": ["lm_head"],
    "kv_cache_scheme": null,
    "quant_method": "compressed-tensors",
    "quantization_status": "compressed",
    "sparsity_config": {},
    "transform_config": {},
    "version": "0.18.1.dev0+gac8e2ba.d20260813"
}""")


def test_the_published_mxfp4_example_gives_the_bytes_of_its_checkpoint(tmp_path):
    """The README's block on Meta-Llama-3-8B's config.json: the bytes compressed-tensors writes for it
    (the MXFP4 preset compressed full size on the meta device)."""
    case = MEASURED["llama-3-8b-MXFP4"]
    llama3 = json.loads((DATA / "hf_configs" / "llama-3-8b.json").read_text())
    result = _evaluate(_write(tmp_path, dict(llama3, torch_dtype="bfloat16", quantization_config=README_MXFP4)))
    assert result.plain["uses_ct_weights"] and result.warnings == []
    assert result.plain["inference_weights"] == _stored(tmp_path, case)


def _stored(tmp_path, case: dict) -> int:
    folder = tmp_path / "stored"
    folder.mkdir()
    write_safetensors(folder / "model.safetensors", [(n, shape, dt) for n, dt, shape in case["tensors"]])
    return data_bytes(folder / "model.safetensors")
