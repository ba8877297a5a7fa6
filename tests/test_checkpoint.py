"""Model folders, Hub snapshots and their safetensors headers (issue 13.1, 13.2; engine/checkpoint.py,
engine/hub.py, formulas/checkpoint.formula).

The folders are written here: a real config.json of tests/data/hf_configs, and safetensors files
whose headers are exactly what the format specifies (8-byte little-endian length, the JSON table,
the data) for the tensors transformers' save_pretrained writes of that model
(tests/data/measured/checkpoints.json, engine/lab/checkpoints.py); the data is sparse zeros, so a
13 GiB checkpoint costs no disk.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

import vram_eval
from vram_eval.checkpoint import read_safetensors
from vram_eval.errors import DuplicateDefinition, LimitExceeded, SpecError, UnreadableFile

from conftest import DATA

TABLES = json.loads((DATA / "measured" / "checkpoints.json").read_text())["models"]
CONFIGS = DATA / "hf_configs"

# Bits per element of each safetensors dtype, from the format's own definition
# (safetensors/src/tensor.rs, Dtype::bitsize, v0.8.0): the test's table, not the engine's.
BITS = {"BOOL": 8, "U8": 8, "I8": 8, "F8_E4M3": 8, "F8_E5M2": 8, "F8_E8M0": 8, "F4": 4, "F6_E2M3": 6,
        "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64, "U64": 64}
HF_DTYPE = {"float16": "F16", "bfloat16": "BF16", "float32": "F32"}


def _elements(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def write_safetensors(path: Path, tensors, dtype: str = "BF16", metadata=None) -> int:
    """A safetensors file of ``tensors`` ([(name, shape)] or [(name, shape, dtype)]), the data as
    sparse zeros; returns the bytes of its data."""
    header, offset = {}, 0
    for t in tensors:
        name, shape, kind = (t[0], t[1], t[2] if len(t) > 2 else dtype)
        size = _elements(shape) * BITS[kind] // 8
        header[name] = {"dtype": kind, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the writers pad the header to 8 bytes
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        fh.truncate(8 + len(raw) + offset)
    return offset


def data_bytes(path: Path) -> int:
    """The bytes of a safetensors file after its header: what its tensors hold."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
    return path.stat().st_size - 8 - n


def model_folder(folder: Path, config: str, shards: int = 1, dtype=None) -> Path:
    """A save_pretrained-style folder of a public config and its checkpoint's tensor table."""
    folder.mkdir(parents=True, exist_ok=True)
    # a public config.json, or a shape of tests/data/family_shapes.toml (its table carries it)
    text = json.dumps(TABLES[config]["config"]) if "config" in TABLES[config] else (CONFIGS / config).read_text()
    (folder / "config.json").write_text(text)
    cfg = json.loads(text)
    kind = dtype or HF_DTYPE[cfg.get("torch_dtype") or cfg.get("dtype") or "float32"]
    table = TABLES[config]["tensors"]
    if shards == 1:
        write_safetensors(folder / "model.safetensors", table, kind, {"format": "pt"})
        return folder
    per = -(-len(table) // shards)
    weight_map, total = {}, 0
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = table[i * per:(i + 1) * per]
        total += write_safetensors(folder / name, part, kind, {"format": "pt"})
        weight_map.update({t[0]: name for t in part})
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return folder


def evaluate(spec, *sets):
    problem = vram_eval.load(str(spec), list(sets))
    return problem, vram_eval.evaluate(problem)


# --- the bytes of the files ---------------------------------------------------------------


@pytest.mark.parametrize("config", sorted(TABLES))
@pytest.mark.parametrize("shards", [1, 3])
def test_the_checkpoint_bytes_are_the_bytes_in_the_files(tmp_path, config, shards):
    folder = model_folder(tmp_path / "model", config, shards)
    problem, result = evaluate(folder)
    in_files = sum(data_bytes(p) for p in folder.glob("*.safetensors"))
    assert result.plain["checkpoint_bytes"] == in_files
    assert result.plain["checkpoint_files"] == shards
    assert problem.spec.checkpoint.bytes == in_files


@pytest.mark.parametrize("config", sorted(TABLES))
def test_the_weights_row_is_the_checkpoints_bytes_in_its_dtype(tmp_path, config):
    folder = model_folder(tmp_path / "model", config)
    _, result = evaluate(folder)
    v = result.plain
    assert v["weights_from_checkpoint"] and v["inference_weights_from_checkpoint"]
    assert v["weights"] == v["checkpoint_bytes"] and v["inference_weights"] == v["checkpoint_bytes"]


@pytest.mark.parametrize("config", sorted(TABLES))
def test_a_count_the_formulas_disagree_with_is_a_warning(tmp_path, config):
    """The tables are the parameters transformers builds (plus persistent buffers): where the
    formulas count as many, nothing is said; where not, the warning says so."""
    folder = model_folder(tmp_path / "model", config)
    _, result = evaluate(folder)
    counted = result.plain["params"]
    elements = sum(_elements(t[1]) for t in TABLES[config]["tensors"])
    warned = [w for w in result.warnings if "checkpoint" in w]
    assert bool(warned) == (counted != elements), (counted, elements, warned)


def test_tensors_the_model_does_not_build_are_a_warning_and_still_counted(tmp_path, cli):
    """An old checkpoint that saved rotary buffers: 32 × 64 more elements than the model has."""
    folder = model_folder(tmp_path / "model", "llama-2-7b.json")
    table = TABLES["llama-2-7b.json"]["tensors"] + [
        (f"model.layers.{i}.self_attn.rotary_emb.inv_freq", [64]) for i in range(32)]
    write_safetensors(folder / "model.safetensors", table, "F16")
    _, result = evaluate(folder)
    v = result.plain
    assert v["checkpoint_params"] == v["params"] + 32 * 64
    assert v["weights"] == v["checkpoint_bytes"] == v["params"] * 2 + 32 * 64 * 2
    assert result.warnings == ["the checkpoint's tensors hold a different number of elements than the formulas' "
                               "parameter count (a part the formulas do not model, or tensors the model does not "
                               "build) (here checkpoint_files = 1, checkpoint_params = 6,738,417,664, "
                               "params = 6,738,415,616, weight_format = \"none\")"]
    status, out, _ = cli(folder)
    assert status == 0 and "warning: the checkpoint's tensors hold a different number" in out


def test_loaded_in_another_dtype_the_weights_are_the_formulas_count(tmp_path, cli):
    folder = model_folder(tmp_path / "model", "llama-2-7b.json")  # float16 on the Hub
    _, result = evaluate(folder, "weight_dtype=bf16", "inference_dtype=int4")
    v = result.plain
    assert not v["weights_from_checkpoint"] and v["weights"] == v["params"] * 2
    assert not v["inference_weights_from_checkpoint"] and v["inference_weights"] < v["checkpoint_bytes"] / 3
    _, out, _ = cli(folder, "--set", "weight_dtype=bf16")
    assert "weights (full training, LoRA): the formulas' count in bf16, not the checkpoint's bytes in fp16" in out


# Which group each tensor of the measured tables goes to, by its name (specs/catalog/checkpoints.toml).
@pytest.mark.parametrize("name, group", [
    ("model.embed_tokens.weight", "embeddings"),
    ("lm_head.weight", "LM head"),
    ("model.norm.weight", "norms"),
    ("model.layers.0.input_layernorm.weight", "norms"),
    ("model.layers.3.self_attn.q_norm.weight", "norms"),
    ("model.layers.0.self_attn.o_proj.weight", "attention"),
    ("transformer.h.0.attn.c_attn.bias", "attention"),
    ("transformer.wpe.weight", "embeddings"),
    ("transformer.ln_f.weight", "norms"),
    ("model.layers.0.mlp.experts.gate_up_proj", "MLP and experts"),
    ("model.layers.0.block_sparse_moe.gate.weight", "MLP and experts"),
    ("backbone.layers.0.mixer.A_log", "other"),
    ("model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight", "vision tower"),
    ("model.multi_modal_projector.mm_input_projection_weight", "vision tower"),
])
def test_each_tensor_goes_to_its_group(name, group):
    from vram_eval.checkpoint import group_of

    assert group_of(name) == group


def test_the_groups_of_llama_are_its_parts(tmp_path):
    folder = model_folder(tmp_path / "model", "llama-2-7b.json")
    _, result = evaluate(folder)
    v, h, L, vocab, f = result.plain, 4096, 32, 32000, 11008
    assert v["checkpoint_embedding_bytes"] == v["checkpoint_lm_head_bytes"] == vocab * h * 2
    assert v["checkpoint_norm_bytes"] == (2 * L + 1) * h * 2
    assert v["checkpoint_attention_bytes"] == L * 4 * h * h * 2
    assert v["checkpoint_mlp_bytes"] == L * 3 * h * f * 2
    assert v["checkpoint_other_bytes"] == v["checkpoint_vision_bytes"] == 0
    assert v["checkpoint_dtype"] == "fp16" and v["checkpoint_params"] == v["params"]


def test_the_json_gives_the_bytes_by_group_and_dtype(tmp_path, cli):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text((CONFIGS / "gpt2.json").read_text())
    table = TABLES["gpt2.json"]["tensors"]
    mixed = [(n, s, "F32" if "ln" in n else "BF16") for n, s in table]
    write_safetensors(folder / "model.safetensors", mixed)
    status, out, _ = cli(folder, "--format", "json")
    data = json.loads(out)["checkpoint"]
    assert status == 0 and data["dtype"] == "mixed" and data["files"] == ["model.safetensors"]
    assert data["bytes"] == data_bytes(folder / "model.safetensors")
    assert set(data["groups"]["norms"]) == {"F32"} and set(data["groups"]["attention"]) == {"BF16"}
    assert sum(b for g in data["groups"].values() for b in g.values()) == data["bytes"]


def test_the_report_shows_the_checkpoint_beside_the_count(tmp_path, cli):
    folder = model_folder(tmp_path / "Llama-2-7b-hf", "llama-2-7b.json")
    status, out, _ = cli(folder)
    assert status == 0
    assert out.startswith("meta-llama/Llama-2-7b-hf — 6.74B parameters (6,738,415,616)")
    assert "checkpoint: 12.55 GiB, 6,738,415,616 parameters in fp16 (safetensors headers, files: 1) — embeddings" in out
    assert "weights (full training, LoRA): the checkpoint's bytes (stored in fp16)" in out
    assert "weights (inference): the checkpoint's bytes (stored in fp16)" in out


def test_a_folder_with_only_a_config_is_a_config_json(tmp_path, cli):
    (tmp_path / "config.json").write_text((CONFIGS / "qwen3-8b.json").read_text())
    status, out, _ = cli(tmp_path, "--format", "json")
    data = json.loads(out)
    assert status == 0 and data["checkpoint"] is None and data["outputs"]["checkpoint_bytes"] == 0
    assert data["outputs"]["weights"] == data["outputs"]["params"] * 2


# --- the reader against the format's reference implementation -----------------------------


def test_the_reader_agrees_with_the_safetensors_package(tmp_path):
    np = pytest.importorskip("numpy")
    numpy_io = pytest.importorskip("safetensors.numpy")
    arrays = {"a.weight": np.zeros((3, 5), np.float16), "b": np.zeros((7,), np.float32), "c": np.zeros((2, 2, 2), np.int8),
              "d": np.zeros((0, 4), np.float64), "e": np.zeros((9,), np.bool_), "f": np.zeros((4, 1), np.int64)}
    path = tmp_path / "x.safetensors"
    numpy_io.save_file(arrays, str(path), metadata={"format": "np"})
    tensors = {t.name: t for t in read_safetensors(path, str(path))}
    assert set(tensors) == set(arrays)
    for name, array in arrays.items():
        assert tensors[name].shape == array.shape and tensors[name].nbytes == array.nbytes
    assert tensors["a.weight"].dtype == "F16" and tensors["e"].dtype == "BOOL"
    # and this test's writer is what the reference implementation reads
    write_safetensors(tmp_path / "y.safetensors", [("w", [4, 6], "F16"), ("v", [3], "F32")], metadata={"format": "pt"})
    back = numpy_io.load_file(str(tmp_path / "y.safetensors"))
    assert {k: v.shape for k, v in back.items()} == {"w": (4, 6), "v": (3,)}


# --- damaged and hostile weight files -----------------------------------------------------


def _raw(header: dict, data: int, length=None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + b"\0" * data


_OK = {"w": {"dtype": "F16", "shape": [2, 3], "data_offsets": [0, 12]}}

# id → (the file's bytes, the error's class, words of its message)
DAMAGED = {
    "five_bytes": (b"\x01\x02\x03\x04\x05", UnreadableFile, "too short for a safetensors header"),
    "length_lies": (_raw(_OK, 12, length=10_000), UnreadableFile, "the header says it is 10,000 bytes long"),
    "length_absurd": (struct.pack("<Q", 2**62) + b"{}", LimitExceeded, "more than the 100,000,000"),
    "not_json": (struct.pack("<Q", 4) + b"{{{{", UnreadableFile, "the header is not JSON"),
    "not_an_object": (_raw([1, 2], 0), UnreadableFile, "not a JSON object"),
    "unknown_dtype": (_raw({"w": {"dtype": "F12", "shape": [2], "data_offsets": [0, 3]}}, 3), UnreadableFile,
                      "which safetensors does not define"),
    "negative_shape": (_raw({"w": {"dtype": "F16", "shape": [-2], "data_offsets": [0, 4]}}, 4), UnreadableFile,
                       "not a list of sizes"),
    "float_shape": (_raw({"w": {"dtype": "F16", "shape": [2.5], "data_offsets": [0, 5]}}, 5), UnreadableFile,
                    "not a list of sizes"),
    "offsets_disagree": (_raw({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 12]}}, 12), UnreadableFile,
                         "takes 24 bytes, but its offsets span 12"),
    "offsets_reversed": (_raw({"w": {"dtype": "F16", "shape": [0], "data_offsets": [5, 0]}}, 5), UnreadableFile,
                         "not [begin, end]"),
    "a_gap": (_raw({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
                    "b": {"dtype": "U8", "shape": [2], "data_offsets": [4, 6]}}, 6), UnreadableFile,
              "starts at byte 4 of the data, not where the one before it ends (2)"),
    "truncated_data": (_raw(_OK, 7), UnreadableFile, "the file has 7 after its header: it is truncated"),
    "extra_data": (_raw(_OK, 20), UnreadableFile, "the tensors take 12 bytes, but the file has 20"),
    "duplicate_tensor": (struct.pack("<Q", 2 * 64) + (b'{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
                                                       b'"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}'
                                                       ).ljust(128) + b"\0", DuplicateDefinition, "twice"),
    "odd_bits": (_raw({"w": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}, 2), UnreadableFile,
                 "takes 1.5 bytes"),
    "extra_key": (_raw({"w": dict(_OK["w"], extra=1)}, 12), UnreadableFile, "is not {dtype, shape, data_offsets}"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_a_damaged_weight_file_is_a_located_error(tmp_path, case):
    content, kind, words = DAMAGED[case]
    (tmp_path / "config.json").write_text((CONFIGS / "gpt2.json").read_text())
    (tmp_path / "model.safetensors").write_bytes(content)
    with pytest.raises(kind) as info:
        vram_eval.load(str(tmp_path))
    assert isinstance(info.value, SpecError) and words in info.value.message, info.value.message
    assert info.value.location.path == f"{tmp_path}/model.safetensors"


def test_a_damaged_file_on_the_command_line_is_one_paragraph(tmp_path, cli):
    (tmp_path / "config.json").write_text((CONFIGS / "gpt2.json").read_text())
    (tmp_path / "model.safetensors").write_bytes(DAMAGED["truncated_data"][0])
    status, out, err = cli(tmp_path)
    assert status == 2 and out == ""
    assert err.startswith(f"{tmp_path}/model.safetensors: error: the tensors take 12 bytes")
    assert "Traceback" not in err and "\n\n" not in err.strip()


# --- shards and their index ---------------------------------------------------------------


def _sharded(tmp_path) -> Path:
    return model_folder(tmp_path / "model", "gpt2.json", shards=3)


def _edit_index(folder: Path, change) -> None:
    path = folder / "model.safetensors.index.json"
    index = json.loads(path.read_text())
    change(index)
    path.write_text(json.dumps(index, indent=2))


def test_an_index_naming_a_missing_shard_is_located_at_its_line(tmp_path):
    folder = _sharded(tmp_path)
    (folder / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(UnreadableFile, match="the index names the shard model-00002-of-00003.safetensors, which is "
                                             "not in the folder") as info:
        vram_eval.load(str(folder))
    where = info.value.location
    assert where.path == f"{folder}/model.safetensors.index.json" and where.line is not None
    assert "model-00002-of-00003.safetensors" in where.source_line


def test_an_index_and_shards_of_different_revisions_disagree(tmp_path):
    folder = _sharded(tmp_path)
    _edit_index(folder, lambda i: i["weight_map"].update({"transformer.wte.weight": "model-00003-of-00003.safetensors"}))
    with pytest.raises(UnreadableFile, match="the index puts 'transformer.wte.weight' in model-00003-of-00003"):
        vram_eval.load(str(folder))


def test_a_tensor_the_index_does_not_name_is_an_error(tmp_path):
    folder = _sharded(tmp_path)
    _edit_index(folder, lambda i: i["weight_map"].pop("transformer.wte.weight"))
    with pytest.raises(UnreadableFile, match="holds 'transformer.wte.weight', which the index does not name"):
        vram_eval.load(str(folder))


@pytest.mark.parametrize("name", ["../model-00001-of-00003.safetensors", "/etc/passwd", "sub/x.safetensors",
                                  "model.bin", ""])
def test_an_index_names_only_files_beside_it(tmp_path, name):
    folder = _sharded(tmp_path)
    _edit_index(folder, lambda i: i["weight_map"].update({"transformer.wte.weight": name}))
    with pytest.raises(UnreadableFile, match="which is not a .safetensors file of the folder"):
        vram_eval.load(str(folder))


@pytest.mark.parametrize("content, words", [
    ("{", "the index is not JSON"), ('{"weight_map": []}', 'no "weight_map"'),
    ('{"weight_map": {"a": 1}}', 'no "weight_map"'), ('{"weight_map": {"a": "x.safetensors", "a": "y.safetensors"}}',
                                                      "names 'a' twice"),
])
def test_a_broken_index_is_a_located_error(tmp_path, content, words):
    folder = _sharded(tmp_path)
    (folder / "model.safetensors.index.json").write_text(content)
    with pytest.raises(SpecError, match=words) as info:
        vram_eval.load(str(folder))
    assert info.value.location.path == f"{folder}/model.safetensors.index.json"


def test_shards_without_their_index_are_an_error(tmp_path):
    folder = _sharded(tmp_path)
    (folder / "model.safetensors.index.json").unlink()
    with pytest.raises(UnreadableFile, match="weight shards .* but not their index"):
        vram_eval.load(str(folder))


def test_other_safetensors_files_of_the_folder_are_not_the_model(tmp_path):
    """Mistral's repositories hold consolidated.safetensors beside the transformers shards; a PEFT
    output holds adapter_model.safetensors: transformers loads neither as the model."""
    folder = model_folder(tmp_path / "model", "gpt2.json")
    write_safetensors(folder / "consolidated.safetensors", [("x", [1000, 1000])])
    write_safetensors(folder / "adapter_model.safetensors", [("y", [10, 10])])
    _, result = evaluate(folder)
    assert result.plain["checkpoint_bytes"] == data_bytes(folder / "model.safetensors")


# --- only the headers are read, nothing is written ----------------------------------------


def _bytes_read() -> int:
    with open("/proc/self/io") as fh:
        return int(next(line for line in fh if line.startswith("rchar:")).split()[1])


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="Linux's per-process I/O counters")
def test_a_64_gib_checkpoint_is_read_by_its_header_alone(tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "config.json").write_text((CONFIGS / "llama-2-7b.json").read_text())
    size = write_safetensors(folder / "model.safetensors", [("model.embed_tokens.weight", [2**17, 2**18])], "F16")
    assert size == 64 * 2**30 and (folder / "model.safetensors").stat().st_blocks * 512 < 2**20  # sparse
    header = (folder / "model.safetensors").stat().st_size - size
    vram_eval.load(str(folder))  # the formula files' cache and the catalog, read once
    before = _bytes_read()
    _, result = evaluate(folder)
    assert _bytes_read() - before < header + 2**20  # the header and the config, not the data
    assert result.plain["checkpoint_bytes"] == 64 * 2**30


def test_reading_a_folder_writes_nothing(tmp_path, cli):
    folder = _sharded(tmp_path)
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")}
    status, _, _ = cli(folder, "--format", "json")
    assert status == 0
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")} == before


# --- Hub ids, from the local Hugging Face cache -------------------------------------------

COMMIT = "8a0442e81540efaeb1a0fe3e95477b5e0edfd423"
OTHER = "0123456789abcdef0123456789abcdef01234567"


def hub_cache(root: Path, repo: str = "meta-llama/Llama-2-7b-hf") -> Path:
    """huggingface_hub's cache layout: blobs/, refs/main, snapshots/COMMIT/ linking into blobs/."""
    org, name = repo.split("/")
    base = root / f"models--{org}--{name}"
    (base / "blobs").mkdir(parents=True)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(COMMIT)
    for commit in (COMMIT, OTHER):
        snap = model_folder(base / "snapshots" / commit, "llama-2-7b.json" if commit == COMMIT else "gpt2.json")
        for f in list(snap.iterdir()):  # each file a link to its blob, as huggingface_hub writes them
            blob = base / "blobs" / f"{commit[:8]}-{f.name}"
            f.rename(blob)
            f.symlink_to(os.path.relpath(blob, snap))
    (base / "refs" / "v2").write_text(OTHER)
    return root


@pytest.mark.parametrize("env", ["HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "HOME"])
def test_a_hub_id_is_read_from_the_local_cache(tmp_path, monkeypatch, env):
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    where = {"HF_HUB_CACHE": "", "HUGGINGFACE_HUB_CACHE": "", "HF_HOME": "hub", "XDG_CACHE_HOME": "huggingface/hub",
             "HOME": ".cache/huggingface/hub"}[env]
    hub_cache(tmp_path / where if where else tmp_path)
    monkeypatch.setenv(env, str(tmp_path))
    problem, result = evaluate("meta-llama/Llama-2-7b-hf")
    assert problem.title == "meta-llama/Llama-2-7b-hf" and result.plain["arch"] == "llama"
    assert result.plain["checkpoint_bytes"] == result.plain["params"] * 2


@pytest.mark.parametrize("revision, arch", [("", "llama"), ("@main", "llama"), ("@v2", "gpt"), (f"@{OTHER}", "gpt")])
def test_a_revision_is_a_branch_a_tag_or_a_commit(tmp_path, monkeypatch, revision, arch):
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache(tmp_path)))
    _, result = evaluate(f"meta-llama/Llama-2-7b-hf{revision}")
    assert result.plain["arch"] == arch


@pytest.mark.parametrize("spec, words", [
    ("meta-llama/Llama-3.1-8B", "'meta-llama/Llama-3.1-8B' is not in the local Hugging Face cache"),
    ("meta-llama/Llama-2-7b-hf@v9", "not its revision 'v9'"),
    (f"meta-llama/Llama-2-7b-hf@{'f' * 40}", "not its revision"),
])
def test_a_hub_id_the_cache_does_not_hold_says_how_to_get_it(tmp_path, monkeypatch, cli, spec, words):
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache(tmp_path)))
    status, out, err = cli(spec)
    assert status == 2 and words in err and "hf download" in err and "never downloads" in err
    assert err.startswith(f"{spec}: error:") and "\n\n" not in err.strip()


@pytest.mark.parametrize("spec", ["specs/nope.toml", "specs/nope", "nope/model.json", "tests/data"])
def test_a_missing_path_is_not_taken_for_a_hub_id(cli, spec):
    status, _, err = cli(spec)
    assert status == 2 and "Hugging Face cache" not in err


def test_the_cache_is_not_written(tmp_path, monkeypatch, cli):
    cache = hub_cache(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    before = sorted((str(p), p.lstat().st_mtime_ns) for p in cache.rglob("*"))
    assert cli("meta-llama/Llama-2-7b-hf")[0] == 0
    assert sorted((str(p), p.lstat().st_mtime_ns) for p in cache.rglob("*")) == before


@pytest.mark.parametrize("name", ["model.safetensors", "model.gguf"])
def test_a_fifo_for_a_weight_file_is_refused_without_blocking(tmp_path, name):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text((CONFIGS / "gpt2.json").read_text())
    os.mkfifo(folder / name)  # nobody writes to it: opening it to read would wait for ever
    spec = folder / name if name.endswith(".gguf") else folder
    if name.endswith(".gguf"):
        pytest.importorskip("gguf")
    with pytest.raises(UnreadableFile, match="named pipe") as info:
        vram_eval.load(str(spec))
    assert info.value.reason == "not regular"
