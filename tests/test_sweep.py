"""sweep: outputs over a range of an input, vectorised; plots."""

import json
import xml.etree.ElementTree as ET

import pytest

import engine
from engine.sweep import MAX_POINTS, parse_range, sweep

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
    with pytest.raises(engine.SolveError) as info:
        parse_range(text)
    assert words in info.value.message + " " + (info.value.hint or "")


def test_sweep_values_are_exact_integers_equal_to_evaluate():
    p = engine.load(str(SPECS / "llama13b.toml"))
    result = sweep(p, parse_range("s=1024:4096:1024"), ["total_training", "kv_cache"])
    assert result.exact == {"total_training": True, "kv_cache": True}
    for s, total in zip(result.xs, result.columns["total_training"]):
        again = engine.load(str(SPECS / "llama13b.toml"), [f"s={int(s)}"])
        assert int(total) == int(engine.evaluate(again.ruleset, again.bindings)["total_training"])


def test_a_million_points():
    p = engine.load(str(SPECS / "llama2-7b.toml"))
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
    assert data["for"] == "b" and data["values"] == [1, 2] and data["targets"] == ["total_training"]


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
    assert "s = 22,736" in text  # where the curve crosses the RTX 4090's 24 GiB


def test_plot_needs_the_plot_extra(cli, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    status, _, err = cli("sweep", "specs/llama13b.toml", "s=1024:2048:1024", "--plot", tmp_path / "x.png")
    assert status == 2 and "pip install 'vram-eval[plot]'" in err


def test_plot_file_type(cli, tmp_path):
    status, _, err = cli("sweep", "specs/llama13b.toml", "s=1024:2048:1024", "--plot", tmp_path / "x.jpg")
    assert status == 2 and ".png or .svg" in err
