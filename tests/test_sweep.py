"""sweep: outputs over a range of an input, vectorised; plots."""

import json
import xml.etree.ElementTree as ET

import pytest

import vram_eval
from vram_eval.report import render_sweep
from vram_eval.grid import MAX_POINTS, parse_range, sweep

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


def test_a_requirement_offender_is_found_among_a_million_points():
    """The first point that breaks a requirement, named (how fast: benchmarks/, not a timed test)."""
    p = vram_eval.load(str(SPECS / "llama2-7b.toml"))
    with pytest.raises(vram_eval.SolveError) as info:
        sweep(p, parse_range("tp=1:1000000"))
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


# --- the text of a sweep (issue 12): written a column at a time, the same text as cell by cell ---------

# outputs whose values are fractions, negative, tiny, beyond 2^53 and 2^63, and beyond float64
MIXED = """
half [bytes] = s / 2 "half of s"
third = s / 3 "a ratio"
neg [bytes] = 2500000 - s * 1000 "negative from s = 2501"
big [bytes] = 2 ^ (10 * b) "grows past float64"
negz = -s / 2^60 "tiny and negative"
input zr = 1 "a plain number"
rb [bytes] = zr * 2^30 * 3 / 7 "fractional bytes"
rr = zr * zr "zr squared"
rw [bytes] = zr * 4096 "whole at quarters"
"""

# name: (range, targets)
SWEEPS = {
    "whole_over_two_chunks": ("s=1:70000", ["total_training", "kv_cache"]),  # > 2^16 rows
    "fractions_and_negatives": ("s=1:3000", ["half", "third", "neg", "negz"]),
    "fractional_grid": ("zr=-3.75:100.5:0.25", ["rb", "rr", "rw"]),
    "geometric_to_2^53": ("s=1:9007199254740992:x2", ["half", "third", "neg", "kv_cache"]),
    "beyond_float64": ("b=1:110", ["big"]),
    "tiny_to_huge": ("zr=1e-15:1e15:x7", ["rb", "rr", "rw"]),
    "beyond_2^63": ("zr=-9007199254740992:9007199254740992:1125899906842624", ["rb", "rr", "rw"]),
}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """name → the SweepResult of SWEEPS[name] over llama13b with MIXED, worked out once."""
    mixed = tmp_path_factory.mktemp("sweep") / "mixed.formula"
    mixed.write_text(MIXED)
    problem = vram_eval.load(str(SPECS / "llama13b.toml"), [], [str(mixed)])
    results = {}

    def get(name):
        if name not in results:
            text, targets = SWEEPS[name]
            results[name] = sweep(problem, parse_range(text), targets)
        return results[name]

    return get


def python_cell(v) -> str:
    """A CSV cell as Python writes the value: an int's digits, a float to 17 significant digits."""
    v = v.item() if hasattr(v, "item") else v
    return f"{v:.17g}" if isinstance(v, float) else str(v)


def csv_cell_by_cell(result) -> str:
    rows = [[result.name, *result.columns]] + [[python_cell(v) for v in row] for row in result.rows()]
    return "".join(",".join(r) + "\n" for r in rows)


def table_cell_by_cell(result) -> str:
    from vram_eval.units import format_bytes

    def shown(v, target):
        return format_bytes(v.item() if hasattr(v, "item") else v) if result.units[target] == "bytes" \
            else python_cell(v)

    rows = [[result.name, *result.columns]] + [
        [python_cell(row[0])] + [shown(v, t) for v, t in zip(row[1:], result.columns)] for row in result.rows()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) + "\n" for r in rows)


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_csv_is_each_cell_as_python_writes_it(swept, name):
    result = swept(name)
    assert render_sweep(result, "csv") == csv_cell_by_cell(result)


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_json_is_the_dict_as_json_dumps_writes_it(swept, name):
    result = swept(name)
    assert render_sweep(result, "json") == json.dumps(result.as_dict(), indent=2) + "\n"


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_table_is_each_cell_as_format_bytes_writes_it(swept, name):
    result = swept(name)
    assert render_sweep(result, "table") == table_cell_by_cell(result)


def test_the_mixed_sweeps_hold_what_they_are_named_for(swept):
    import math

    assert not swept("fractions_and_negatives").exact["third"]
    assert min(swept("fractions_and_negatives").columns["neg"]) < 0
    assert not float(swept("fractional_grid").xs[1]).is_integer()
    assert max(abs(v) for v in swept("beyond_2^63").columns["rr"]) > 2.0**63
    assert math.isinf(swept("beyond_float64").columns["big"][-1])


def made(xs, column, unit="bytes"):
    from vram_eval.grid import SweepResult

    return SweepResult("s", "count", xs, {"m": column}, {"m": unit}, {"m": True})


def exact_values():
    """The grid 1, 2, 3 and exact values beyond int64, as a sweep holds them without NumPy."""
    from sympy import Integer, Rational

    return [Integer(1), Integer(2), Integer(3)], [Rational(3, 2), Integer(2**70), Integer(-2**65)]


@pytest.mark.parametrize("holder", ["list", "object array"])
def test_exact_values_beyond_int64_print_exactly(holder):
    import numpy as np

    xs, column = exact_values()
    if holder == "object array":
        xs, column = np.array(xs, dtype=object), np.array(column, dtype=object)
    result = made(xs, column)
    assert render_sweep(result, "csv") == "s,m\n1,3/2\n2,1180591620717411303424\n3,-36893488147419103232\n"
    assert json.loads(render_sweep(result, "json"))["outputs"]["m"] == [1.5, 2**70, -2**65]
    assert render_sweep(result, "table") == table_cell_by_cell(result)


def test_without_numpy_the_text_is_the_same(monkeypatch):
    import sys

    result = made(*exact_values())
    with_numpy = [render_sweep(result, fmt) for fmt in ("csv", "json", "table")]
    monkeypatch.setitem(sys.modules, "numpy", None)
    assert [render_sweep(result, fmt) for fmt in ("csv", "json", "table")] == with_numpy


def test_int64_extremes_print_every_digit():
    import numpy as np

    result = made(np.arange(1, 4, dtype=np.int64), np.array([-2**63, 2**63 - 1, 0], dtype=np.int64), "count")
    assert render_sweep(result, "csv") == "s,m\n1,-9223372036854775808\n2,9223372036854775807\n3,0\n"


def test_minus_zero_prints_as_python_prints_it():
    import numpy as np

    result = made(np.array([1.5, 2.5]), np.array([-0.0, 0.0]), "count")
    assert render_sweep(result, "csv") == "s,m\n1.5,-0\n2.5,0\n"
    assert json.loads(render_sweep(result, "json"))["outputs"]["m"] == [0, 0]


# bytes → the table's cell: GiB to two decimals, rounded half to even as Python rounds the exact value
TABLE_BYTES = {
    9 * 2**27: "1.12 GiB",  # 1.125 GiB
    11 * 2**27: "1.38 GiB",  # 1.375 GiB
    -9 * 2**27: "-1.12 GiB",
    2**40 + 3 * 2**27: "1,024.38 GiB",
    2**53: "8,388,608.00 GiB",
    0: "0.00 GiB",
    2**29: "0.5 GiB",  # below 0.995 GiB: 3 significant digits
    1: "9.31e-10 GiB",
    2**62 + 1: "4,294,967,296.00 GiB",  # beyond 2^53: the float nearest the exact value over 2^30
}


@pytest.mark.parametrize("dtype", ["int64", "float64"])
def test_table_bytes_round_half_to_even(dtype):
    import numpy as np

    result = made(np.arange(len(TABLE_BYTES), dtype=np.int64), np.array(list(TABLE_BYTES), dtype=dtype))
    cells = [line.split()[1:] for line in render_sweep(result, "table").splitlines()[1:]]
    assert [" ".join(c) for c in cells] == list(TABLE_BYTES.values())


# fractional bytes → the table's cell (format_bytes: the float nearest v's shortest decimal over 2^30)
TABLE_FRACTIONAL_BYTES = {
    1.125 * 2**30 + 0.5: "1.13 GiB",  # just above the tie
    -(1.125 * 2**30 + 0.5): "-1.13 GiB",
    2.0**74 - 2**22: "17,592,186,044,416.00 GiB",
    2.0**82 - 2**30: "4,503,599,627,370,495.00 GiB",
    2.0**82 + 2**31: "4,503,599,627,370,498.00 GiB",
    2.0**84 + 2**33: "18,014,398,509,481,992.00 GiB",
    1.5: "1.4e-09 GiB",
    # v / 2^30 is subnormal: rounded once more it would be 2.08e-317
    2.238751447627342e-308: "2.09e-317 GiB",
    -5e-324: "-0.00 GiB",  # v / 2^30 underflows to -0.0
    float("inf"): "inf GiB",
}


def test_table_fractional_bytes():
    import numpy as np

    result = made(np.arange(len(TABLE_FRACTIONAL_BYTES), dtype=np.int64), np.array(list(TABLE_FRACTIONAL_BYTES)))
    cells = [line.split()[1:] for line in render_sweep(result, "table").splitlines()[1:]]
    assert [" ".join(c) for c in cells] == list(TABLE_FRACTIONAL_BYTES.values())


def test_table_of_fractional_bytes_from_the_cli(cli, tmp_path):
    # the table used to stop with an internal error on a column of fractional bytes (NumPy 2's
    # repr of its floats, "np.float64(0.5)", was read as a number)
    mine = tmp_path / "half.formula"
    mine.write_text('half [bytes] = s / 2 "half of s"\n')
    status, out, err = cli("sweep", "specs/llama13b.toml", "s=1:3", "--target", "half", "--formulas", mine,
                           "--format", "table")
    assert status == 0, err
    assert out.splitlines() == ["s          half", "1  4.66e-10 GiB", "2  9.31e-10 GiB", "3   1.4e-09 GiB"]


def test_a_text_that_is_not_ascii_is_aligned_by_characters():
    result = made([1, 2], ["½", "x"], "count")
    assert render_sweep(result, "csv") == "s,m\n1,½\n2,x\n"
    assert render_sweep(result, "table") == "s  m\n1  ½\n2  x\n"


def test_a_million_points_as_csv():
    p = vram_eval.load(str(SPECS / "llama2-7b.toml"), ["regime=inference"])
    result = sweep(p, parse_range("s=1:1000000"))
    lines = render_sweep(result, "csv").splitlines()
    assert len(lines) == 1_000_001 and lines[0] == "s,peak_inference"
    column = result.columns["peak_inference"]
    for k in (0, 1, 9, 10, 65535, 65536, 99_999, 500_000, 999_999):
        assert lines[k + 1] == f"{k + 1},{int(column[k])}"
