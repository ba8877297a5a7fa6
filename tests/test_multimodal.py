"""Image-text models (formulas/multimodal.formula) and the Llama-4 and PhiMoE text blocks, against
measurement (tests/data/measured/families.json, tests/data/family_shapes.toml: transformers 5.24 on
the meta device; `python -m vram_eval.lab.families`):

* a composite config.json's text_config is read as its own model_type and its vision_config
  through the catalog's [vision_keys]: the vision tower and the projector are counted exactly;
* their weights are in every regime's weights; bitsandbytes quantises the tower's nn.Linear layers;
* Llama-4's chunked layers cache like sliding ones, its dense layers are interleaved;
* a vision config or a per-layer list that contradicts the model is a located error.
"""

import json

import pytest

from conftest import DATA, ROOT, evaluate, value

MEASURED = json.loads((DATA / "measured" / "families.json").read_text())["cases"]
CONFIGS = DATA / "hf_configs"
IMAGE_TEXT = sorted(name for name, case in MEASURED.items() if case.get("breakdown", {}).get("multimodal"))


def test_the_published_image_text_configs_are_measured():
    assert {"gemma-3-27b-it", "llama-4-scout-17b-16e", "llama-4-maverick-17b-128e"} <= set(IMAGE_TEXT)


@pytest.mark.parametrize("name", IMAGE_TEXT)
def test_the_vision_tower_and_projector_count_as_the_meta_device_models(name):
    """The harness's "multimodal" kind: every parameter under vision_tower / vision_model and
    multi_modal_projector."""
    result = evaluate(ROOT / MEASURED[name]["file"])
    assert value(result, "multimodal_params") == MEASURED[name]["breakdown"]["multimodal"]


# (config, vision tower, projector): Gemma-3-27B's SigLIP-So400m tower, Llama-4's tower with its
# pixel-shuffle adapter (the same in Scout and Maverick), from the module tables of the meta models.
PARTS = [
    ("gemma-3-27b-it", 416_866_032, 1152 + 1152 * 5376),
    ("llama-4-scout-17b-16e", 850_960_896, 4096 * 5120),
    ("llama-4-maverick-17b-128e", 850_960_896, 4096 * 5120),
]


@pytest.mark.parametrize("name,tower,projector", PARTS, ids=[p[0] for p in PARTS])
def test_the_tower_and_the_projector_are_counted_apart(name, tower, projector):
    result = evaluate(CONFIGS / f"{name}.json")
    assert (value(result, "vision_params"), value(result, "projector_params")) == (tower, projector)


# Gemma-3-27B: 423,060,336 tower and projector parameters, of which bitsandbytes converts the 27
# layers' q, k, v, o, fc1 and fc2 (27 · (4 · 1152² + 2 · 1152 · 4304) = 411,070,464); the rest
# (Conv2d patches, positions, norms, biases, the bare projection matrix) stays bf16. nf4 with
# double-quantised constants: 0.5 + 0.126953125 / 8 bytes per converted parameter (precision.formula).
MULTIMODAL, QUANTISED = 423_060_336, 411_070_464
NF4 = QUANTISED * (0.5 + 0.126953125 / 8) + 2 * (MULTIMODAL - QUANTISED)
REGIMES = [
    ("weights", 2 * MULTIMODAL),                 # full training: bf16 weights (and their gradients, states)
    ("lora_weights", 2 * MULTIMODAL),            # LoRA: the frozen bf16 base
    ("inference_weights", NF4),                  # nf4 inference
    ("qlora_base_weights", NF4),                 # QLoRA: the 4-bit base
]


@pytest.mark.parametrize("output,extra", REGIMES, ids=[r[0] for r in REGIMES])
def test_every_regime_holds_the_vision_tower(output, extra):
    sets = ("weight_dtype=bf16", "inference_dtype=nf4")
    full = evaluate(CONFIGS / "gemma-3-27b-it.json", *sets)
    text_only = evaluate(CONFIGS / "gemma-3-27b-it.json", *sets, "vision_tower=none", "mm_projector=none")
    assert value(full, output) - value(text_only, output) == extra


@pytest.mark.parametrize("name,quantised", [
    ("gemma-3-27b-it", QUANTISED),
    # 34 layers, the patch Linear (3 · 14² · 1408), the adapter (5632 · 4096 + 4096²), linear_1 (4096 · 5120)
    ("llama-4-scout-17b-16e", 34 * (4 * 1408**2 + 2 * 1408 * 5632) + 3 * 14**2 * 1408 + 5632 * 4096 + 4096**2
     + 4096 * 5120),
], ids=["siglip", "llama4"])
def test_bitsandbytes_converts_the_towers_linear_layers(name, quantised):
    result = evaluate(CONFIGS / f"{name}.json")
    assert value(result, "multimodal_quantized_params") == quantised


def test_a_text_only_model_has_no_tower():
    result = evaluate(CONFIGS / "qwen3-8b.json")
    assert value(result, "multimodal_params") == 0 and value(result, "multimodal_quantized_params") == 0


def test_the_text_config_is_read_as_its_own_model_type():
    """gemma-3-27b-it's text_config states few keys; Gemma3TextConfig's defaults and gemma3_text's
    block (four norms per layer, q/k norms, one full layer in six) fill the rest."""
    result = evaluate(CONFIGS / "gemma-3-27b-it.json")
    assert (value(result, "L"), value(result, "V"), value(result, "norms_per_layer"), value(result, "sliding_layers")) \
        == (62, 262208, 4, 62 - 62 // 6)


@pytest.mark.parametrize("name,dense", [("llama-4-scout-17b-16e", 0), ("llama-4-maverick-17b-128e", 24)],
                         ids=["scout-every-layer-moe", "maverick-every-other"])
def test_llama4_has_dense_layers_between_its_moe_layers(name, dense):
    assert value(evaluate(CONFIGS / f"{name}.json"), "dense_layers") == dense


def test_llama4s_chunked_layers_cache_one_chunk():
    """Scout at 32k in bf16: 12 layers without RoPE keep every token, 36 chunked ones 8,192
    (transformers caches a chunked layer as a sliding window of attention_chunk_size)."""
    result = evaluate(CONFIGS / "llama-4-scout-17b-16e.json", "s=32768", "kv_dtype=bf16")
    assert value(result, "kv_cache") == (12 * 32768 + 36 * 8192) * 2 * 8 * 128 * 2


def test_phimoes_lm_head_has_a_bias():
    assert value(evaluate(CONFIGS / "phi-3.5-moe-instruct.json"), "lm_head_params") == 32064 * 4096 + 32064


def test_the_report_says_the_tower_is_not_measured(cli):
    status, out, _ = cli(CONFIGS / "gemma-3-27b-it.json")
    assert status == 0 and "the vision tower's activations and an image's tokens" in out


# A composite config.json that contradicts itself or the model: a located one-paragraph error.
GEMMA, SCOUT = "gemma-3-27b-it", "llama-4-scout-17b-16e"
BAD = [
    ("vision heads not dividing its hidden size", GEMMA, ("vision_config", "num_attention_heads"), 5,
     "num_attention_heads must divide its hidden_size", "num_attention_heads"),
    ("patches not tiling the image", GEMMA, ("vision_config", "patch_size"), 15,
     "patch_size must divide its image_size", "patch_size"),
    ("a non-square image size", GEMMA, ("vision_config", "image_size"), [896, 672],
     "'vision_config.image_size': expects a count", "image_size"),
    ("a text_config that is not an object", GEMMA, ("text_config",), 3,
     '"text_config" must be an object', "text_config"),
    ("a vision tower not modelled", GEMMA, ("vision_config", "model_type"), "clip_vision_model",
     "vision_config's model_type \"clip_vision_model\" is not one vram-eval knows", "model_type"),
    ("a text model type not known", GEMMA, ("text_config", "model_type"), "gemma4_text",
     "text_config's model_type \"gemma4_text\" is not one vram-eval knows", "model_type"),
    ("no_rope_layers of the wrong length", SCOUT, ("text_config", "no_rope_layers"), [1, 0],
     "no_rope_layers list must have one entry per layer", None),
    ("a no_rope_layers entry not 0 or 1", SCOUT, ("text_config", "no_rope_layers"), [2] * 48,
     'lists the layer kind "2"', "no_rope_layers"),
    ("more MoE layers than layers", SCOUT, ("text_config", "moe_layers"), list(range(49)),
     "moe_layers lists more MoE layers than the model has layers", None),
]


@pytest.mark.parametrize("case,name,path,change,phrase,key", BAD, ids=[b[0] for b in BAD])
def test_a_contradicting_composite_config_is_a_located_error(cli, tmp_path, case, name, path, change, phrase, key):
    config = json.loads((CONFIGS / f"{name}.json").read_text())
    where = config
    for part in path[:-1]:
        where = where[part]
    where[path[-1]] = change
    spec = tmp_path / "config.json"
    spec.write_text(json.dumps(config, indent=2) + "\n")
    status, _, err = cli(spec)
    assert status == 2 and err.startswith(f"{spec}:") and phrase in err
    if key is not None:  # located at the offending key, inside its sub-config
        line = int(err.split(":")[1])
        assert f'"{key}"' in spec.read_text().splitlines()[line - 1]
