"""A config.json whose model_type the catalog does not know: a located error that says how
to get an answer anyway, and with --set arch=... an answer that says it is unchecked."""

import json

import pytest

from conftest import DATA, evaluate, value

UNKNOWN = "acme_lm"  # not a transformers model type


@pytest.fixture
def unknown_config(tmp_path):
    config = json.loads((DATA / "hf_configs" / "llama-3-8b.json").read_text())
    config["model_type"] = UNKNOWN
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def test_an_unknown_model_type_is_a_located_error(cli, unknown_config):
    status, out, err = cli(unknown_config)
    assert status == 2 and out == ""
    assert err.startswith(f"{unknown_config}:") and f'model_type "{UNKNOWN}" is not one vram-eval knows' in err
    assert "Traceback" not in err


def test_the_error_says_how_to_get_an_answer_anyway(cli, unknown_config):
    _, _, err = cli(unknown_config)
    assert "--set arch=llama" in err and "TOML spec" in err and "Adding a model family" in err


def test_the_error_names_no_family_from_a_similar_name(cli, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "qwen9_moe", "hidden_size": 64, "num_hidden_layers": 2}))
    _, _, err = cli(path)
    assert "did you mean" not in err and "its parameters are" not in err


def test_with_set_arch_it_answers_with_the_config_s_sizes(unknown_config):
    """Llama-3-8B's config under another name, read as a Llama block: Llama-3-8B's count."""
    result = evaluate(unknown_config, "arch=llama")
    assert value(result, "params") == 8_030_261_248


def test_with_set_arch_the_cli_warns_on_stderr(cli, unknown_config):
    status, out, err = cli(unknown_config, "--set", "arch=llama")
    assert status == 0
    assert err.startswith(f"vram-eval: warning: {unknown_config}:") and "its numbers may be wrong" in err


def test_with_set_arch_the_report_says_nothing_was_checked(cli, unknown_config):
    _, out, _ = cli(unknown_config, "--set", "arch=llama")
    assert f'unchecked: model_type "{UNKNOWN}" is not in the catalog' in out
    assert "parameters and KV cache are exact" not in out


def test_with_set_arch_json_says_the_block_is_unchecked(cli, unknown_config):
    _, out, _ = cli(unknown_config, "--set", "arch=llama", "--format", "json")
    assert json.loads(out)["inputs"]["block_checked"] is False


def test_a_known_model_type_is_checked(cli):
    _, out, _ = cli(DATA / "hf_configs" / "llama-3-8b.json", "--format", "json")
    assert json.loads(out)["inputs"]["block_checked"] is True


def test_set_arch_chooses_the_block_the_sizes_are_read_as(tmp_path):
    """GPT-2's config under another name, read as a GPT block: GPT-2's count."""
    config = json.loads((DATA / "hf_configs" / "gpt2.json").read_text())
    config["model_type"] = UNKNOWN
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config, indent=2) + "\n")
    assert value(evaluate(path, "arch=gpt"), "params") == 124_439_808


def test_a_config_value_the_chosen_block_cannot_take_is_located(cli, unknown_config):
    status, _, err = cli(unknown_config, "--set", "arch=gpt")
    assert status == 2 and err.startswith(f"{unknown_config}:") and "'hidden_act': 'silu'" in err


def test_a_type_whose_parameters_are_a_family_s_names_it_and_what_differs(cli, tmp_path):
    """jais2's parameters are StarCoder2's shape for shape (meta device, three configs), its relu² is not modelled."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "jais2", "hidden_size": 64, "num_hidden_layers": 2}))
    status, _, err = cli(path)
    assert status == 2 and "its parameters are starcoder2's, shape for shape, but its relu² MLP activation" in err
