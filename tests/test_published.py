"""Published checkpoints (issue 13, "published checkpoint sizes agree"): the config.json a
checkpoint ships gives, without its weight files, the bytes its index says they hold
(tests/data/published/published.toml, sources in its SOURCES.md)."""

import sys

import pytest

import vram_eval

from conftest import DATA

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HERE = DATA / "published"
CASES = tomllib.loads((HERE / "published.toml").read_text())


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_published_checkpoints_config_gives_its_bytes(name):
    case = CASES[name]
    result = vram_eval.evaluate(vram_eval.load(str(HERE / case["config"])))
    predicted = result.plain[case.get("output", "inference_weights")]
    if case.get("exact"):
        assert predicted == case["total_size"]
    else:
        assert abs(predicted - case["total_size"]) <= case["within"] * case["total_size"]
    assert result.warnings == []
