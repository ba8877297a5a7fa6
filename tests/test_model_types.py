"""Every model type the catalog reads is checked against at least one measured model, and every
constructed config on record was measured."""

import json

import pytest

from conftest import DATA, ROOT, load_toml

CATALOG = load_toml(ROOT / "specs" / "catalog" / "huggingface.toml")
MEASURED = json.loads((DATA / "measured" / "families.json").read_text())["cases"]
SHAPES = load_toml(DATA / "family_shapes.toml")


def _model_type(config: dict) -> str:
    return config.get("model_type") or ""


def _measured_model_types() -> set:
    types = {_model_type(json.loads((ROOT / case["file"]).read_text())) for case in MEASURED.values()}
    return types | {_model_type(shape["config"]) for shape in SHAPES.values() if "config" in shape}


@pytest.mark.parametrize("model_type", sorted(CATALOG["model_types"]))
def test_every_catalog_model_type_has_a_measured_model(model_type):
    assert model_type in _measured_model_types()


def test_every_constructed_config_was_measured():
    stems = {p.stem for p in (DATA / "constructed_configs").glob("*.json")}
    assert stems and stems <= set(MEASURED), sorted(stems - set(MEASURED))


@pytest.mark.parametrize("model_type", sorted(CATALOG.get("near", {})))
def test_a_near_model_type_is_not_also_read(model_type):
    assert model_type not in CATALOG["model_types"]


UNSUPPORTED = [(model_type, key) for model_type, keys in sorted(CATALOG.get("unsupported", {}).items()) for key in keys]


@pytest.mark.parametrize("model_type, key", UNSUPPORTED)
def test_a_switch_that_is_not_modelled_is_refused_at_its_key(cli, tmp_path, model_type, key):
    config = {"model_type": model_type, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "intermediate_size": 128, "vocab_size": 100, key: True}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config, indent=2) + "\n")
    status, out, err = cli(path)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if f'"{key}"' in text)
    assert status == 2 and out == ""
    assert err.startswith(f"{path}:{line}:") and f'"{key}" is set' in err and "Traceback" not in err


@pytest.mark.parametrize("model_type, key", UNSUPPORTED)
def test_the_same_switch_off_is_read(tmp_path, model_type, key):
    from conftest import evaluate

    config = {"model_type": model_type, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "intermediate_size": 128, "vocab_size": 100, "max_position_embeddings": 512, key: False}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config, indent=2) + "\n")
    assert evaluate(path)["params"] > 0
