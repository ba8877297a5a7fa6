"""sweep: outputs over a range of an input, vectorised; plots."""

import json
import xml.etree.ElementTree as ET

import pytest

import vram_eval
from vram_eval.sweep import MAX_POINTS, parse_range, sweep

from conftest import SPECS


def test_range_stop_is_inclusive_and_x2_is_geometric():
    assert list(parse_range("s=512:2048:512").values()) == [512, 1024, 1536, 2048]
    assert list(parse_range("s=512:4096:x2").values()) == [512, 1024, 2048, 4096]
    assert list(parse_range("b=1:3").values()) == [1, 2, 3]


@pytest.mark.parametrize("text, words", [
    ("s=4096:512", "stops"), ("s=1:10:0", "step must be positive"), ("s=1:10:x1", "multiply by 2"),
    ("s=1:1000000000", f"limit of {MAX_POINTS:,}"), ("s=a:b", "not a number"), ("s512:1024", "not a range"),
])
def test_bad_ranges(text, words):
    with pytest.raises(vram_eval.errors.RangeError) as info:
        parse_range(text)
    assert words in info.value.message + " " + (info.value.hint or "")


def test_sweep_values_are_exact_integers_equal_to_evaluate():
    p = vram_eval.load(str(SPECS / "llama13b.toml"))
    result = sweep(p, parse_range("s=1024:4096:1024"), ["total_training", "kv_cache"])
    assert result.exact == {"total_training": True, "kv_cache": True}
    for s, total in zip(result.xs, result.columns["total_training"]):
        again = vram_eval.load(str(SPECS / "llama13b.toml"), [f"s={int(s)}"])
        assert int(total) == int(vram_eval.evaluate(again.ruleset, again.bindings)["total_training"])


def test_a_million_points():
    p = vram_eval.load(str(SPECS / "llama2-7b.toml"))
    result = sweep(p, parse_range("s=1:1000000"), ["kv_cache"])
    assert len(result.xs) == 1_000_000
    assert int(result.columns["kv_cache"][-1]) == 1_000_000 * 524_288


def test_cli_csv(cli):
    status, out, err = cli("sweep", "specs/llama13b.toml", "s=1024:2048:1024", "--target", "kv_cache")
    assert status == 0, err
    assert out.splitlines() == ["s,kv_cache", f"1024,{1024 * 819200}", f"2048,{2048 * 819200}"]


def test_cli_json(cli):
    status, out, _ = cli("sweep", "specs/llama13b.toml", "b=1:2", "--format", "json")
    data = json.loads(out)
    assert data["for"] == "b" and data["values"] == [1, 2] and data["targets"] == ["peak_training"]


def test_plot_png_is_an_image(cli, tmp_path):
    import matplotlib.image

    path = tmp_path / "mem.png"
    status, _, err = cli("sweep", "specs/llama2-7b.toml", "s=1024:65536:x2", "--set", "regime=inference",
                         "--gpu", "rtx4090", "--gpu", "a100-40gb", "--plot", path)
    assert status == 0, err
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 500


def test_plot_svg_marks_the_crossings(cli, tmp_path):
    path = tmp_path / "mem.svg"
    status, _, err = cli("sweep", "specs/llama2-7b.toml", "s=1024:65536:x2", "--set", "regime=inference",
                         "--gpu", "rtx4090", "--plot", path)
    assert status == 0, err
    text = path.read_text()
    ET.fromstring(text)  # well-formed
    assert "s = 14,939" in text  # where the peak crosses the RTX 4090's 24,564 MiB (solve says the same)


def test_plot_needs_the_plot_extra(cli, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    status, _, err = cli("sweep", "specs/llama13b.toml", "s=1024:2048:1024", "--plot", tmp_path / "x.png")
    assert status == 2 and "pip install 'vram-eval[plot]'" in err


def test_plot_file_type(cli, tmp_path):
    status, _, err = cli("sweep", "specs/llama13b.toml", "s=1024:2048:1024", "--plot", tmp_path / "x.jpg")
    assert status == 2 and ".png or .svg" in err


# --- ranges checked against the input's domain (issue 9) ------------------------------------

# (range, fragments of the message, a fragment of the hint, the caret line under the range or None)
BAD_RANGES = {
    # below the domain: the formulas' `require b >= 1` (b = -3 would print negative memory)
    "negative": ("b=-3:4", ["b = -3 breaks a requirement", "b must be a whole number, at least 1",
                            "4 of the 8 points break", "-3, -2, -1, 0"], "b=1:4", "      ^^^^"),
    # a requirement the direct evaluation enforces: tp must divide the heads (a = kv_heads = 40)
    "requirement": ("tp=1:8", ["tp = 3 breaks a requirement", "tp must divide",
                               "3 of the 8 points break the formulas' requirements: 3, 6, 7"],
                    "tp=1:8:x2", "       ^^^"),
    "requirement_geometric": ("tp=1:64:x2", ["tp = 16 breaks a requirement"], "tp=1:8:x2", None),
    "requirement_layers": ("pp=1:40", ["pp = 3 breaks a requirement", "pp must divide the number of layers L"],
                           "pp=1:8:x2", None),
    "requirement_no_point": ("dp=0:0", ["dp = 0 breaks a requirement", "at least 1"], "no point of dp=0:0", None),
    # what a spec or --set refuses: negative memory, memory written as a count and the reverse
    "negative_memory": ("overhead=-8GiB:8GiB:4GiB", ["overhead is a memory size, which cannot be negative",
                                                    "starts at -8GiB"], "overhead=0:8GiB:4GiB", "             ^^^^^"),
    "count_as_memory": ("overhead=1K:8K", ["the start '1K' of the range is a count", "overhead is memory"],
                        "24GiB", None),
    "memory_as_count": ("b=1GiB:1GiB", ["the start '1GiB' of the range is memory, but b is a count"], None, None),
    # the input named in the range is not a number: located in the range, not at --for
    "bool_input": ("flash_attention=0:1", ["'flash_attention' is a true/false input, not a number"], None,
                   "    ^^^^^^^^^^^^^^^"),
    "table": ("dtype_bytes=1:2", ["'dtype_bytes' is a table, not a number"], None, None),
    "unknown_input": ("nosuch=1:2", ["no input is called 'nosuch'"], None, "    ^^^^^^"),
    # fractional points of a count
    "fractional_step": ("b=1:3:0.5", ["b takes whole values (unit count)", "the step 0.5"], "b=1:3", "          ^^^"),
    "fractional_start": ("b=1.5:4", ["the start 1.5", "not a whole number"], "b=2:4", "      ^^^"),
    "fractional_geometric": ("s=0.5:64:x2", ["the start 0.5"], "s=1:64:x2", None),
    "no_whole_number": ("b=1.2:1.8", ["the start 1.2"], "no whole number lies between 1.2 and 1.8", None),
    # beyond the stated bounds (these used to print a 300-digit count or crash with a traceback)
    "huge_stop": ("s=1:1e300", ["the stop '1e300'", "2^53 = 9,007,199,254,740,992"], None, "        ^^^^^"),
    "huge_geometric": ("s=1:1e400:x2", ["the stop '1e400'", "at most 2^53"], None, None),
    "just_over_2_53": ("s=1:9007199254740993:x2", ["the stop 9007199254740993", "at most 2^53"], None, None),
    "huge_negative_start": ("b=-1e20:1", ["the start -1e20", "at most 2^53"], None, None),
    "factor": ("s=1:4096:x4096", ["a geometric step multiplies by at most 1024, not 4096"], None, None),
    "factor_not_a_number": ("s=1:4096:x1e3", ["'x1e3' is not a geometric step"], "x2 doubles", None),
    "too_small": ("s=0:1e-400", ["the stop 1e-400", "at least 2^-53"], None, None),
    "too_fine": ("s=1e15:1000000000000001:0.001", ["finer than float64 can tell apart"], "below", None),
    # not finite
    "infinite": ("s=1:inf", ["the stop 'inf' of the range is not a number"], "finite", "        ^^^"),
    "nan": ("s=nan:4", ["the start 'nan' of the range is not a number"], "finite", None),
}


@pytest.mark.parametrize("case", sorted(BAD_RANGES))
def test_bad_range_exits_2_with_a_located_message(cli, case):
    text, fragments, hint, caret = BAD_RANGES[case]
    status, out, err = cli("sweep", "specs/llama13b.toml", text)
    assert status == 2, (out, err)
    assert out == ""
    assert err.startswith("sweep:") and "error:" in err.splitlines()[0]
    assert "Traceback" not in err and "internal error" not in err
    assert f"    {text}\n" in err  # the range, quoted under the message
    for fragment in fragments:
        assert fragment in err, err
    if hint:
        assert hint in err, err
    if caret:
        assert caret + "\n" in err, err


@pytest.mark.parametrize("text", ["tp=1:8:x2", "b=1:4", "pp=1:8:x2", "s=1:2048:x2"])
def test_the_suggested_ranges_sweep(cli, text):
    status, out, err = cli("sweep", "specs/llama13b.toml", text, "--format", "json")
    assert status == 0, err
    data = json.loads(out)
    name = text.split("=")[0]
    for x, total in zip(data["values"], data["outputs"]["peak_training"]):  # what direct evaluation says
        again = vram_eval.load(str(SPECS / "llama13b.toml"), [f"{name}={x}"])
        expected = vram_eval.evaluate(again.ruleset, again.bindings)["peak_training"]
        assert total == (int(expected) if expected.is_Integer else float(expected))


def test_a_requirement_offender_is_found_among_a_million_points_fast():
    import time

    p = vram_eval.load(str(SPECS / "llama2-7b.toml"))
    start = time.perf_counter()
    with pytest.raises(vram_eval.SolveError) as info:
        sweep(p, parse_range("tp=1:1000000"))
    assert time.perf_counter() - start < 5
    assert "tp = 3 breaks a requirement" in info.value.message


def test_geometric_count_is_exact_at_powers():
    assert parse_range("s=1:1125899906842624:x2").count() == 51  # 2^50: a float log may say 50
    assert parse_range("s=1:1125899906842623:x2").count() == 50
    assert parse_range("s=3:59049:x3").count() == 10
    assert parse_range("s=1:1e15:x10").count() == 16


def test_fractional_grid_points_are_the_nearest_floats():
    assert list(parse_range("x=0.1:0.5:0.1").values()) == [0.1, 0.2, 0.3, 0.4, 0.5]


def test_an_output_that_is_not_whole_is_not_rounded(tmp_path):
    # 3 probes (ends and middle) used to be the only check: at s = 2, 4, 6 s/2 is whole, and
    # 1.5 and 2.5 came back as the integers 2 and 2
    mine = tmp_path / "half.formula"
    mine.write_text('half [bytes] = s / 2 "half of s"\n')
    p = vram_eval.load(str(SPECS / "llama13b.toml"), [], [str(mine)])
    result = sweep(p, parse_range("s=2:6"), ["half"])
    assert result.exact == {"half": False}
    assert list(result.columns["half"]) == [1, 1.5, 2, 2.5, 3]


def test_overflow_is_inf_not_exact_and_null_in_json(cli, tmp_path):
    mine = tmp_path / "big.formula"
    mine.write_text('big [bytes] = 2 ^ (10 * b) "grows"\n')  # 1 KiB at the spec's b = 1
    p = vram_eval.load(str(SPECS / "llama13b.toml"), [], [str(mine)])
    result = sweep(p, parse_range("b=101:104"), ["big"])  # 2^1010, 2^1020, then beyond float64
    assert result.exact == {"big": False}
    assert [v == float("inf") for v in result.columns["big"]] == [False, False, True, True]
    status, out, err = cli("sweep", "specs/llama13b.toml", "b=101:104", "--target", "big", "--formulas", mine,
                           "--format", "json")
    assert status == 0, err
    assert json.loads(out)["outputs"]["big"][2:] == [None, None]


def test_a_sweep_over_dp_crosses_from_one_gpu_to_ddp(cli):
    """distributed = auto: DDP's bucket copy of the gradients appears from dp = 2 on, inside one sweep."""
    status, out, err = cli("sweep", "specs/llama2-7b.toml", "dp=1:4", "--target", "ddp_gradient_buckets",
                           "--format", "json")
    assert status == 0, err
    params = 6_738_415_616  # Llama-2-7B; one bf16 gradient copy each from dp = 2 on
    assert json.loads(out)["outputs"]["ddp_gradient_buckets"] == [0, 2 * params, 2 * params, 2 * params]
