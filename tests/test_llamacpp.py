"""llama.cpp's fit for a GGUF (issue 14.4; formulas/llamacpp.formula): weights per layer on the GPU
and CPU, the KV cache and its cache types, the compute buffer (estimated), and the largest
n_gpu_layers and context that fit.

The KV cache is checked against llama.cpp's own printed sizes (tests/data/llamacpp/cases.toml, each
with its URL, build and model); the split of a GGUF's weights against GGUF files written here with
the gguf package's writer, following llama.cpp's layer assignment (src/llama-model.cpp:1318-1343 at
82bb48500); the cache types' bytes against the gguf package's own GGML_QUANT_SIZES.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

import conftest
import vram_eval
from conftest import DATA, SPECS, evaluate, load_toml

CASES = load_toml(DATA / "llamacpp" / "cases.toml")["case"]
MiB = 2**20
BASE = SPECS / "llama2-7b.toml"


def _mib(value) -> float:
    return round(float(value) / MiB, 2)


# --- the cache types' bytes are the gguf package's -------------------------------------------

def test_cache_type_bytes_are_ggml_quant_sizes():
    gguf = pytest.importorskip("gguf")
    from gguf.constants import GGML_QUANT_SIZES

    for name in ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"):
        block, size = GGML_QUANT_SIZES[gguf.GGMLQuantizationType[name.upper()]]
        v = evaluate(BASE, f"cache_type_k={name}", f"cache_type_v={name}", "flash_attn=true", "ctx_size=256",
                     "llamacpp_ctx_pad=1").plain
        # one cell of one layer: K and V rows of kv_heads x head_dim elements each
        row = v["kv_heads"] * v["head_dim"]
        assert Fraction(v["llamacpp_cell_bytes"]) == 2 * Fraction(row * size, block), name


def test_a_quantized_v_cache_needs_flash_attention():
    with pytest.raises(vram_eval.EngineError, match="flash attention"):
        evaluate(BASE, "cache_type_v=q4_0", "flash_attn=false")
    evaluate(BASE, "cache_type_k=q4_0", "flash_attn=false")  # K alone is fine (src/llama-context.cpp:3565)


# --- llama.cpp's printed sizes ------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_kv_cache_as_llama_cpp_prints_it(case):
    v = evaluate(BASE, *case["sets"]).plain
    if "kv_total_bytes" in case:
        assert v["llamacpp_kv_cache"] == case["kv_total_bytes"]
        return
    assert _mib(v["llamacpp_kv_cache"]) == case["kv_total_mib"]
    assert _mib(v["llamacpp_kv_cache_gpu"]) == case["kv_gpu_mib"]
    cells, layers = v["llamacpp_kv_cells"], v["L"]
    assert _mib(layers * cells * v["llamacpp_k_row"] * 2) == case["k_mib"]
    assert _mib(layers * cells * v["llamacpp_v_row"] * 2) == case["v_mib"]
    # the compute buffer is estimated: within the case's tolerance
    assert abs(float(v["llamacpp_compute_buffer"]) / MiB - case["compute_gpu_mib"]) <= case["tolerance_mib"]


def test_context_padding_by_build():
    # b6975+: n_ctx padded to 256 (src/llama-context.cpp:285); older builds: set llamacpp_ctx_pad
    assert evaluate(BASE, "ctx_size=1000").plain["llamacpp_kv_cells"] == 1024
    assert evaluate(BASE, "ctx_size=1000", "llamacpp_ctx_pad=32").plain["llamacpp_kv_cells"] == 1024
    assert evaluate(BASE, "ctx_size=1000", "llamacpp_ctx_pad=1").plain["llamacpp_kv_cells"] == 1000
    assert evaluate(BASE, "ctx_size=1001", "llamacpp_ctx_pad=32").plain["llamacpp_kv_cells"] == 1024


def test_q8_0_and_q4_0_cache_sizes():
    # Llama-2-7B, 4096 cells: f16 2 GiB; q8_0 34/32 of a byte per element, q4_0 18/32
    f16 = evaluate(BASE, "ctx_size=4096").plain["llamacpp_kv_cache"]
    q8 = evaluate(BASE, "ctx_size=4096", "cache_type_k=q8_0", "cache_type_v=q8_0").plain["llamacpp_kv_cache"]
    q4 = evaluate(BASE, "ctx_size=4096", "cache_type_k=q4_0", "cache_type_v=q4_0").plain["llamacpp_kv_cache"]
    assert f16 == 2 * 2**30
    assert q8 == 32 * 4096 * 2 * 4096 * Fraction(34, 32) == 1_140_850_688
    assert q4 == 32 * 4096 * 2 * 4096 * Fraction(18, 32)


def test_sliding_window_cache():
    # Gemma-style pattern 6 (one full layer in six), window 1024, 32k context, n_ubatch 512:
    # SWA cells = pad256(min(32768, 1024 + 512)) = 1536 (src/llama-kv-cache-iswa.cpp:73)
    v = evaluate(BASE, "L=12", "sliding_window=1024", "sliding_window_pattern=6", "ctx_size=32768").plain
    assert v["llamacpp_swa_cells"] == 1536
    assert v["llamacpp_kv_cache"] == (2 * 32768 + 10 * 1536) * v["llamacpp_cell_bytes"]
    # the last 5 layers on the GPU: layers 7..11 hold one full layer (il = 11)
    p = evaluate(BASE, "L=12", "sliding_window=1024", "sliding_window_pattern=6", "ctx_size=32768",
                 "n_gpu_layers=6").plain
    assert p["llamacpp_gpu_layers"] == 5 and p["llamacpp_gpu_full_layers"] == 1
    assert p["llamacpp_kv_cache_gpu"] == (32768 + 4 * 1536) * p["llamacpp_cell_bytes"]
    full = evaluate(BASE, "L=12", "sliding_window=1024", "sliding_window_pattern=6", "ctx_size=32768",
                    "swa_full=true").plain
    assert full["llamacpp_kv_cache"] == 12 * 32768 * full["llamacpp_cell_bytes"]


def test_no_kv_offload_keeps_the_cache_on_the_cpu():
    v = evaluate(BASE, "ctx_size=4096", "no_kv_offload=true").plain
    assert v["llamacpp_kv_cache_gpu"] == 0 and v["llamacpp_kv_cache_cpu"] == v["llamacpp_kv_cache"]


# --- a GGUF's weights by layer ------------------------------------------------------------------

L = 4


def write_gguf(path: Path, tied=False, big_layer=None) -> Path:
    """A Llama-shaped GGUF of zeros (conftest.write_gguf: Q8_0 matrices, F32 norms, L layers);
    ``big_layer``: that layer's ffn_down in F16 instead (a quantization mix)."""
    gguf = pytest.importorskip("gguf")
    mix = {big_layer: {"ffn_down": gguf.GGMLQuantizationType.F16}} if big_layer is not None else None
    return conftest.write_gguf(path, layers=L, tied=tied, context=8192, layer_types=mix)


def _bytes(path: Path):
    """Each tensor's bytes as the gguf package's reader gives them: by llama.cpp's layer."""
    import gguf

    out = {"input": 0, "output": 0, "layers": {}}
    for t in gguf.GGUFReader(str(path)).tensors:
        first = t.name.split(".")[0]
        if first == "blk":
            i = int(t.name.split(".")[1])
            out["layers"][i] = out["layers"].get(i, 0) + int(t.n_bytes)
        else:
            out["output" if first in ("output", "output_norm") else "input"] += int(t.n_bytes)
    out["token_embd"] = next(int(t.n_bytes) for t in gguf.GGUFReader(str(path)).tensors if t.name == "token_embd.weight")
    return out


def _gguf(path, *sets):
    problem = vram_eval.load(str(path), list(sets))
    result = vram_eval.evaluate(problem)
    return result.plain, result.warnings


def test_gguf_weights_by_layer_with_the_output_layer_first(tmp_path):
    path = write_gguf(tmp_path / "tiny.gguf")
    b = _bytes(path)
    layer = b["layers"][0]
    for ngl in range(0, L + 2):
        v, warnings = _gguf(path, f"n_gpu_layers={ngl}")
        # b7467+: ngl >= 1 puts the output layer on the GPU, then the last ngl - 1 layers
        on_gpu = (b["output"] if ngl >= 1 else 0) + max(ngl - 1, 0) * layer
        assert v["llamacpp_gpu_weights"] == on_gpu, ngl
        assert v["llamacpp_cpu_weights"] == b["input"] + (L - max(ngl - 1, 0)) * layer + (0 if ngl else b["output"])
        assert v["llamacpp_gpu_weights"] + v["llamacpp_cpu_weights"] == v["checkpoint_bytes"]
        assert not any("differ in size" in w for w in map(str, warnings))
    assert _gguf(path)[0]["n_gpu_layers"] == L + 1  # default: all (-ngl -1)
    with pytest.raises(vram_eval.EngineError):
        _gguf(path, f"n_gpu_layers={L + 2}")


def test_gguf_weights_before_b7467(tmp_path):
    path = write_gguf(tmp_path / "tiny.gguf")
    b = _bytes(path)
    layer = b["layers"][0]
    for ngl in range(0, L + 2):
        v, _ = _gguf(path, f"n_gpu_layers={ngl}", "llamacpp_output_first=false")
        # i_gpu_start = max(n_layer - ngl, 0): the last ngl layers; the output layer with ngl > n_layer
        assert v["llamacpp_gpu_weights"] == min(ngl, L) * layer + (b["output"] if ngl > L else 0), ngl


def test_a_tied_head_is_loaded_twice(tmp_path):
    path = write_gguf(tmp_path / "tied.gguf", tied=True)
    b = _bytes(path)
    v, _ = _gguf(path)
    # the output layer loads token_embd again (TENSOR_DUPLICATED), the input layer keeps its own
    assert v["llamacpp_gpu_weights"] == b["output"] + b["token_embd"] + L * b["layers"][0]
    assert v["llamacpp_cpu_weights"] == b["input"]


def test_layers_of_different_sizes_are_a_warning(tmp_path):
    path = write_gguf(tmp_path / "mix.gguf", big_layer=L - 1)
    b = _bytes(path)
    v, warnings = _gguf(path, "n_gpu_layers=2")
    assert v["checkpoint_layer_bytes_max"] - v["checkpoint_layer_bytes_min"] == b["layers"][L - 1] - b["layers"][0] > 0
    assert v["llamacpp_gpu_weights"] == b["output"] + Fraction(sum(b["layers"].values()), L)
    assert any("differ in size" in str(w) for w in warnings)
    # all layers offloaded: exact again, no warning
    v, warnings = _gguf(path)
    assert v["llamacpp_gpu_weights"] == b["output"] + sum(b["layers"].values())
    assert not any("differ in size" in str(w) for w in warnings)


# --- what fits ------------------------------------------------------------------------------------

def _solve(spec, name, budget, *sets):
    problem = vram_eval.load(str(spec), list(sets))
    return vram_eval.solve(problem, name, budget, target="llamacpp_fit_total")


@pytest.mark.parametrize("gpu", ["8GiB", "12GiB", "24GiB"])
def test_max_gpu_layers_is_what_solve_finds(gpu):
    v = evaluate(BASE, "ctx_size=4096", f"gpu_memory={gpu}").plain
    answer = _solve(BASE, "n_gpu_layers", int(gpu[:-3]) * 2**30, "ctx_size=4096")
    _same(v, answer)


def _same(v, answer):
    """The formulas' largest n_gpu_layers is solve's (where every layer fits, both say n_layer + 1:
    solve stops at the requirement n_gpu_layers <= n_layer + 1)."""
    assert v["llamacpp_max_gpu_layers"] == answer.value


@pytest.mark.parametrize("sets", [(), ("flash_attn=false",), ("cache_type_k=q8_0", "cache_type_v=q8_0")])
def test_max_ctx_is_what_solve_finds(sets):
    v = evaluate(BASE, "gpu_memory=24GiB", *sets).plain
    answer = _solve(BASE, "ctx_size", 24 * 2**30, *sets)
    # solve's answer is any whole number of tokens; llama.cpp pads to 256, so the largest that fits is
    # the padded cells of the answer's multiple of 256
    assert v["llamacpp_max_ctx"] == answer.value // 256 * 256


def test_the_gguf_answers_solve(tmp_path):
    path = write_gguf(tmp_path / "tiny.gguf")
    # the tiny model's layers take 1 GiB of cache each at 2^21 cells: a budget of fit_target + its
    # output layer and compute buffer + 2.5 layers fits the output layer and 2 layers
    v, _ = _gguf(path, "ctx_size=2097152", "gpu_memory=24GiB")
    room = int(v["llamacpp_output_weights"] + v["llamacpp_compute_all"] + Fraction(5, 2) * v["llamacpp_per_layer_gpu"])
    margin = 24 * 2**30 - room  # --fit-target: what it leaves free of a 24 GiB GPU
    v, _ = _gguf(path, "ctx_size=2097152", "gpu_memory=24GiB", f"fit_target={margin}")
    assert v["llamacpp_max_gpu_layers"] == 3
    problem = vram_eval.load(str(path), ["ctx_size=2097152", f"fit_target={margin}"])
    _same(v, vram_eval.solve(problem, "n_gpu_layers", 24 * 2**30, target="llamacpp_fit_total"))
