"""GGUF files as specs (issue 13.1, 13.2; engine/gguf_header.py, specs/catalog/gguf.toml).

The files are written here with the gguf package's own writer (llama.cpp's gguf-py GGUFWriter)
and, for damaged ones, byte by byte as llama.cpp's docs/gguf.md specifies; their tensor bytes are
checked against the package's own reader (GGUFReader) and its size table.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

import conftest
import vram_eval
from vram_eval.errors import LimitExceeded, MissingDependency, SpecError, UnreadableFile

gguf = pytest.importorskip("gguf")
np = pytest.importorskip("numpy")
from gguf import GGMLQuantizationType as T  # noqa: E402
from gguf.constants import GGML_QUANT_SIZES  # noqa: E402

H, F, V, A, KV = (conftest.GGUF_SHAPE[k] for k in ("H", "F", "V", "A", "KV"))
L = 2


def write_gguf(path: Path, types=None, tied=False, experts=0, arch="llama", name="tiny") -> Path:
    """A Llama-shaped GGUF of zeros (conftest.write_gguf, L layers): every linear layer in
    ``types`` (by name part) or Q8_0."""
    return conftest.write_gguf(path, layers=L, types=types, tied=tied, experts=experts, arch=arch, name=name)


def _reader_bytes(path: Path) -> int:
    return sum(int(t.n_bytes) for t in gguf.GGUFReader(str(path)).tensors)


def _evaluate(path, *sets):
    problem = vram_eval.load(str(path), list(sets))
    return problem, vram_eval.evaluate(problem)


def test_the_weights_are_the_bytes_the_gguf_package_reads(tmp_path):
    path = write_gguf(tmp_path / "tiny.gguf")
    problem, result = _evaluate(path)
    v = result.plain
    assert v["checkpoint_bytes"] == problem.spec.checkpoint.bytes == _reader_bytes(path)
    assert v["inference_weights"] == v["checkpoint_bytes"] and v["inference_weights_from_checkpoint"]
    assert (v["h"], v["L"], v["a"], v["kv_heads"], v["f"], v["V"], v["s_max"]) == (H, L, A, KV, F, V, 4096)
    assert v["arch"] == "llama" and v["tie_embeddings"] is False and v["checkpoint_format"] == "gguf"
    assert v["checkpoint_params"] == v["params"] and result.warnings == []
    assert problem.title == "tiny"


def test_every_tensor_type_takes_the_bytes_of_the_packages_size_table(tmp_path):
    kinds = [k for k in GGML_QUANT_SIZES if H % GGML_QUANT_SIZES[k][0] == 0 and k not in (T.F32,)]
    parts = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]
    for start in range(0, len(kinds), len(parts)):
        chosen = dict(zip(parts, kinds[start:start + len(parts)]))
        path = write_gguf(tmp_path / f"types-{start}.gguf", chosen)
        _, checkpoint = _read(path)
        by_name = {t.name: t for t in checkpoint.tensors}
        for tensor in gguf.GGUFReader(str(path)).tensors:
            ours = by_name[tensor.name]
            assert (ours.dtype, ours.nbytes) == (tensor.tensor_type.name, int(tensor.n_bytes)), tensor.name
            assert ours.shape == tuple(int(d) for d in reversed(tensor.shape))


def _read(path):
    from vram_eval.gguf_header import read_gguf

    return read_gguf(path, str(path))


def test_a_tied_head_and_experts_are_read_from_the_tensors_and_metadata(tmp_path):
    _, tied = _evaluate(write_gguf(tmp_path / "tied.gguf", tied=True))
    assert tied.plain["tie_embeddings"] is True and tied.plain["checkpoint_lm_head_bytes"] == 0
    assert tied.plain["checkpoint_params"] == tied.plain["params"]
    _, moe = _evaluate(write_gguf(tmp_path / "moe.gguf", experts=4))
    v = moe.plain
    assert (v["experts"], v["experts_per_token"]) == (4, 2) and v["checkpoint_mlp_bytes"] > 3 * 4 * F * H
    assert v["checkpoint_params"] == v["params"]


def test_the_report_and_json_show_the_gguf(tmp_path, cli):
    path = write_gguf(tmp_path / "tiny.gguf", {"attn_q": T.Q4_K})
    status, out, _ = cli(path)
    assert status == 0 and "(gguf headers, files: 1)" in out and "several dtypes" in out
    assert "weights (inference): the GGUF's tensors as stored" in out
    import json

    status, out, _ = cli(path, "--format", "json")
    data = json.loads(out)["checkpoint"]
    assert data["format"] == "gguf" and set(data["groups"]["attention"]) == {"Q4_K", "Q8_0"}
    assert data["bytes"] == _reader_bytes(path)


# --- damaged GGUF files --------------------------------------------------------------------


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def gguf_bytes(keys=(), tensors=(), data=0, version=3, magic=b"GGUF", counts=None) -> bytes:
    """A GGUF by hand: keys [(key, type, packed value)], tensors [(name, dims, type, offset)]."""
    out = magic + struct.pack("<I", version)
    out += struct.pack("<QQ", *(counts or (len(tensors), len(keys))))
    for key, kind, value in keys:
        out += _string(key) + struct.pack("<I", kind) + value
    for name, dims, kind, offset in tensors:
        out += _string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", kind, offset)
    out += b"\0" * (-len(out) % 32)
    return out + b"\0" * data


_ARCH = ("general.architecture", 8, _string("llama"))
_F32 = [("w", [8], 0, 0)]

# id → (bytes, error class, words)
DAMAGED = {
    "not_gguf": (b"PK\x03\x04" + b"\0" * 40, UnreadableFile, "does not start with GGUF's magic bytes"),
    "version_1": (gguf_bytes(version=1), UnreadableFile, "GGUF version 1"),
    "too_many_tensors": (gguf_bytes(counts=(2**40, 0)), LimitExceeded, "1,099,511,627,776 tensors"),
    "truncated_header": (gguf_bytes([_ARCH], _F32, 32)[:30], UnreadableFile, "the file ends inside its GGUF header"),
    "unknown_tensor_type": (gguf_bytes([_ARCH], [("w", [32], 999, 0)], 64), UnreadableFile, "has the type 999"),
    "unknown_value_type": (gguf_bytes([("x", 77, b"\0" * 4), _ARCH]), UnreadableFile, "has the type 77"),
    "too_many_dims": (gguf_bytes([_ARCH], [("w", [1, 1, 1, 1, 1], 0, 0)], 4), UnreadableFile, "5 dimensions"),
    "row_not_whole_blocks": (gguf_bytes([_ARCH], [("w", [33], 8, 0)], 64), UnreadableFile, "not a multiple of its block"),
    "data_truncated": (gguf_bytes([_ARCH], _F32, 16), UnreadableFile, "it is truncated"),
    "overlapping": (gguf_bytes([_ARCH], [("a", [16], 0, 0), ("b", [16], 0, 32)], 128), UnreadableFile,
                    "inside the tensor before it"),
    "duplicate": (gguf_bytes([_ARCH], [("a", [8], 0, 0), ("a", [8], 0, 32)], 64), UnreadableFile, "listed twice"),
    "unknown_architecture": (gguf_bytes([("general.architecture", 8, _string("rwkv9"))], _F32, 32), UnreadableFile,
                             "'rwkv9', which vram-eval does not read"),
    "huge_string": (gguf_bytes([("general.name", 8, struct.pack("<Q", 2**60))]), LimitExceeded,
                    "the GGUF header is longer than"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_a_damaged_gguf_is_a_located_error(tmp_path, case):
    content, kind, words = DAMAGED[case]
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    with pytest.raises(kind) as info:
        vram_eval.load(str(path))
    assert isinstance(info.value, SpecError) and words in info.value.message, info.value.message
    assert info.value.location.path == str(path)


def test_a_gguf_on_the_command_line_without_the_package_says_what_to_install(tmp_path, monkeypatch, cli):
    path = write_gguf(tmp_path / "tiny.gguf")
    monkeypatch.setitem(sys.modules, "gguf", None)
    with pytest.raises(MissingDependency, match="needs the gguf package"):
        vram_eval.load(str(path))
    status, _, err = cli(path)
    assert status == 2 and "pip install 'vram-eval[gguf]'" in err


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="Linux's per-process I/O counters")
def test_a_64_gib_gguf_is_read_by_its_header_alone(tmp_path):
    path = tmp_path / "big.gguf"
    keys = [_ARCH, ("llama.embedding_length", 4, struct.pack("<I", 65536)), ("llama.block_count", 4, struct.pack("<I", 1))]
    path.write_bytes(gguf_bytes(keys, [("token_embd.weight", [65536, 2**19], 1, 0)]))
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size + 64 * 2**30)
    _read(path)  # the catalogs, read once
    before = _bytes_read()
    _, checkpoint = _read(path)
    assert _bytes_read() - before < 2**20 + path.stat().st_size - 64 * 2**30
    assert checkpoint.bytes == 64 * 2**30


def _bytes_read() -> int:
    with open("/proc/self/io") as fh:
        return int(next(line for line in fh if line.startswith("rchar:")).split()[1])
