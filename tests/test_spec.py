"""Specs: TOML, YAML and config.json bind inputs by name or alias, with units, or fail located."""

import json

import pytest

import vram_eval
from vram_eval.units import parse_quantity

from conftest import DATA, evaluate, value

MODEL = 'arch = "llama"\n[model]\nhidden_size = 4096\nL = 32\na = 32\nf = 11008\nV = 32000\n'


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, expected", [
    ("24GiB", 24 * 2**30), ("80GB", 80 * 10**9), ("80 GB", 80 * 10**9), ("512MiB", 512 * 2**20),
    ("1.5TB", 15 * 10**11), ("13B", 13 * 10**9), ("7.5B", 75 * 10**8), ("70M", 70 * 10**6), ("4K", 4000),
    ("1e3", 1000), ("0.5", 0.5), ("2048", 2048),
])
def test_quantities_parse_exactly(text, expected):
    assert parse_quantity(text)[0] == expected


def test_sections_are_for_people_and_aliases_bind(tmp_path):
    result = evaluate(write(tmp_path, "m.toml", MODEL))
    assert value(result, "h") == 4096
    assert value(result, "params") == 6_738_415_616  # Llama-2-7B's shape


def test_yaml_spec_binds_the_same(tmp_path):
    text = "arch: llama\nmodel:\n  hidden_size: 4096\n  L: 32\n  a: 32\n  f: 11008\n  V: 32000\n"
    assert value(evaluate(write(tmp_path, "m.yaml", text)), "params") == 6_738_415_616


def test_values_with_units_and_counts(tmp_path):
    spec = write(tmp_path, "m.toml", 'params = "7.5B"\ngpu_memory = "32GB"\n')
    result = evaluate(spec)
    assert value(result, "params") == 7_500_000_000
    assert value(result, "gpu_memory") == 32 * 10**9


def test_set_overrides_the_spec(tmp_path):
    spec = write(tmp_path, "m.toml", MODEL + "[workload]\ns = 1024\n")
    assert value(evaluate(spec, "s=4096"), "s") == 4096
    assert value(evaluate(spec, "seq_len=2K"), "s") == 2000


def test_set_accepts_lists():
    assert vram_eval.load(None, ["lora_targets=q,k,v,o"]).bindings["lora_targets"].value.values == ["q", "k", "v", "o"]


def test_gpu_from_the_catalog():
    result = evaluate(None, "gpu=h100")
    assert value(result, "gpu_memory") == 81559 * 2**20  # what its driver reports, not the marketed 80 GiB


# (spec text, substring of the message, line) — every error names the key and where it is
BAD = [
    ("hiden_size = 5120\n", "unknown key 'hiden_size'", 1),
    ("[model]\nh = 5120\n[other]\nh = 4096\n", "'h' is set twice", 4),
    ('weight_dtype = "fp17"\n', "'fp17' is not one of", 1),
    ('optimizer = "adam9"\n', "is not one of", 1),
    ('gpu_memory = "13B"\n', "is a count", 1),
    ('gpu_memory = "24 GiBs"\n', "is not a memory size", 1),
    ('h = "24GiB"\n', "is memory, but this is a count", 1),
    ("flash_attention = 3\n", "expects true or false", 1),
    ('lora_targets = ["q", "x"]\n', "'x' is not one of", 1),
    ("h = \n", "TOML syntax", 1),
    ('arch = "transformer"\n', "is not one of: gpt, llama", 1),
    ('gpu = "h1000"\n', "unknown GPU", 1),
    ("dtype_bytes = 3\n", "is a table", 1),
]


@pytest.mark.parametrize("text, words, line", BAD, ids=[b[1] for b in BAD])
def test_bad_spec_values_are_located(tmp_path, text, words, line):
    spec = write(tmp_path, "bad.toml", text)
    with pytest.raises(vram_eval.EngineError) as info:
        evaluate(spec)
    err = info.value
    assert words in err.message, err.render()
    assert err.path == str(spec) and err.line == line


# Impossible or contradictory values: a located error naming the key and what is allowed
IMPOSSIBLE = [
    ("h=5000", "a=48", "give head_dim"),
    ("kv_heads=7", "a=32", "kv_heads must divide a"),
    ("zero_stage=5", "a=32", "zero_stage must be 0, 1, 2 or 3"),
    ("tp=3", "a=32", "tp must divide"),
    ("h=-4096", "a=32", "a count is a whole number, at least 0"),
    ("h=0", "a=32", "must be positive"),
    ("b=0", "a=32", "b must be a whole number, at least 1"),
    ("recompute=some", "a=32", "is not one of: full, none, selective"),
]


@pytest.mark.parametrize("bad, other, words", IMPOSSIBLE, ids=[i[0] for i in IMPOSSIBLE])
def test_impossible_values_are_refused_not_clamped(tmp_path, bad, other, words):
    spec = write(tmp_path, "m.toml", MODEL.replace("a = 32\n", ""))
    with pytest.raises(vram_eval.EngineError) as info:
        evaluate(spec, other, bad)
    assert words in info.value.message, info.value.render()


def test_requirement_points_at_the_spec_line(tmp_path):
    spec = write(tmp_path, "m.toml", MODEL + "kv_heads = 5\n")
    with pytest.raises(vram_eval.SpecError) as info:
        evaluate(spec)
    assert (info.value.path, info.value.line) == (str(spec), 8)
    assert any("formulas/model.formula" in n for n in info.value.notes)


def test_hf_config_ignores_unknown_keys_and_picks_arch(tmp_path):
    config = json.loads((DATA / "hf_configs" / "mistral-7b-v0.1.json").read_text())
    config["some_new_field"] = {"nested": [1, 2]}
    path = write(tmp_path, "config.json", json.dumps(config))
    result = evaluate(path)
    assert value(result, "params") == 7_241_732_096
    assert result["arch"].value == "llama"


def test_hf_config_with_unknown_model_type(tmp_path):
    path = write(tmp_path, "config.json", '{\n  "model_type": "rwkv",\n  "hidden_size": 768\n}\n')
    with pytest.raises(vram_eval.SpecError) as info:
        evaluate(path)
    assert info.value.line == 2 and "rwkv" in info.value.message


def test_hf_config_with_no_usable_fields(tmp_path):
    with pytest.raises(vram_eval.SpecError, match="none of the fields"):
        evaluate(write(tmp_path, "config.json", '{"foo": 1}'))


@pytest.mark.parametrize("name, data, words", [
    ("missing.toml", None, "no such file"),
    ("dir.toml", "DIR", "directory"),
    ("latin1.toml", b"name = \"caf\xe9\"\n", "not UTF-8"),
    ("junk.toml", b"\x00\x01\x02\xff\xfe", "not UTF-8"),
    ("spec.txt", b"h = 1", "unknown spec format"),
    ("list.yaml", b"- 1\n- 2\n", "table of keys"),
    ("broken.json", b"{\"a\": }", "JSON syntax"),
])
def test_unreadable_specs(tmp_path, name, data, words):
    path = tmp_path / name
    if data == "DIR":
        path.mkdir()
    elif data is not None:
        path.write_bytes(data)
    with pytest.raises(vram_eval.SpecError) as info:
        evaluate(path)
    assert words in info.value.message


@pytest.mark.parametrize("config, window", [
    ("mistral-7b-v0.1.json", 4096),   # "sliding_window": 4096
    ("mixtral-8x7b-v0.1.json", 0),    # "sliding_window": null
    ("qwen2-7b.json", 0),             # "sliding_window": 131072 with "use_sliding_window": false
])
def test_a_config_json_binds_the_sliding_window_only_where_it_is_used(config, window):
    from conftest import DATA, evaluate

    assert evaluate(DATA / "hf_configs" / config)["sliding_window"] == window


def test_a_config_json_is_named_after_its_file_or_its_snapshot_directory(tmp_path):
    import shutil

    from conftest import DATA, evaluate

    assert evaluate(DATA / "hf_configs" / "mistral-7b-v0.1.json").title == "mistral-7b-v0.1"
    snapshot = tmp_path / "Mistral-7B-v0.1"
    snapshot.mkdir()
    shutil.copy(DATA / "hf_configs" / "mistral-7b-v0.1.json", snapshot / "config.json")
    assert evaluate(snapshot / "config.json").title == "Mistral-7B-v0.1"


def test_a_tied_llama_config_counts_as_transformers_builds_it(tmp_path):
    """Llama-3.2-1B's shape with "tie_word_embeddings": true (the model type's default is untied):
    1,235,814,400 = LlamaForCausalLM(config).num_parameters() on the meta device, measured with
    transformers 5.24.0 / torch 2.13.0 (CPU). Before the config's own keys won, 1,498,482,688."""
    config = {"architectures": ["LlamaForCausalLM"], "head_dim": 64, "hidden_size": 2048,
              "intermediate_size": 8192, "max_position_embeddings": 131072, "model_type": "llama",
              "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
              "tie_word_embeddings": True, "torch_dtype": "bfloat16", "vocab_size": 128256}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config, indent=2) + "\n")
    assert value(evaluate(path), "params") == 1_235_814_400
