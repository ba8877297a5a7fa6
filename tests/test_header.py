"""The report's header lines are data (formulas/jobs.toml's [header]): what each item shows,
when, and what `check` says of a name the formulas do not have."""

import pytest

import vram_eval
from conftest import SPECS
from vram_eval.errors import FormulaError, UnknownName
from vram_eval.regimes import HEADER, HeaderItem, check_jobs, read_jobs

JOBS_TOML = SPECS.parent / "formulas" / "jobs.toml"


def _header(cli, *args):
    _, out, _ = cli("specs/llama2-7b.toml", *args)
    return out.splitlines()[1]


@pytest.mark.parametrize("sets, shown, hidden", [
    ((), "b 1, s 4,096", "dp"),
    (("--set", "dp=1"), "s 4,096", "dp 1"),                    # unless dp = 1
    (("--set", "dp=8", "--set", "zero_stage=3"), "dp 8, ZeRO-3", "ZeRO-0"),
    (("--set", "dp=8", "--set", "zero_stage=0"), "dp 8", "ZeRO"),  # unless zero_stage = 0
    (("--set", "dp=2", "--set", "distributed=ddp"), "dp 2, DDP", "FSDP2"),  # when uses_ddp = true
    (("--set", "dp=8", "--set", "zero_stage=3", "--set", "offload_optimizer=cpu"), "ZeRO-3, offload cpu", "offload none"),
])
def test_the_model_line_shows_an_item_as_its_data_says(cli, sets, shown, hidden):
    line = _header(cli, *sets)
    assert shown in line and hidden not in line


def test_the_settings_line_says_values_in_the_words_the_data_gives(cli):
    _, out, _ = cli("specs/llama2-7b.toml", "--set", "flash_attention=false", "--set", "double_quant=false")
    settings = out.splitlines()[2]
    assert settings.startswith("  activations: measured (PyTorch), eager attention, recompute none")
    assert "QLoRA nf4;" in settings and "double quant" not in settings


def test_a_name_the_formulas_do_not_have_fails_check():
    header = {"model_line": HEADER["model_line"] + (HeaderItem("gpus {gpus_in_all}", ("gpus_in_all",), {}, {}, {}),)}
    errors = check_jobs(vram_eval.load(str(SPECS / "llama2-7b.toml")).ruleset, header=header)
    assert [e.message for e in errors] == ["header.model_line: the item 'gpus {gpus_in_all}' names 'gpus_in_all' is not an "
                                           "input of the formulas"]
    assert isinstance(errors[0], UnknownName) and errors[0].name == "gpus_in_all"


def test_the_title_line_counts_what_the_header_data_names(cli):
    _, out, _ = cli("specs/llama2-7b.toml")
    assert out.splitlines()[0] == "Llama-2-7B — 6.74B parameters (6,738,415,616)"
    assert HEADER["count"] == ("params", "parameters")


def test_a_count_the_formulas_do_not_have_fails_check():
    header = dict(HEADER, count=("parameter_count", "parameters"))
    errors = check_jobs(vram_eval.load(str(SPECS / "llama2-7b.toml")).ruleset, header=header)
    assert [e.message for e in errors] == ["header.count: the count 'parameter_count' is not an output of the formulas"]


@pytest.mark.parametrize("count", ['"params"', '{ name = "params" }', '{ name = "params", words = 1 }'])
def test_a_malformed_count_is_a_located_error(tmp_path, count):
    text = JOBS_TOML.read_text().replace('count = { name = "params", words = "parameters" }', f"count = {count}", 1)
    path = tmp_path / "jobs.toml"
    path.write_text(text)
    with pytest.raises(FormulaError, match="header.count") as info:
        read_jobs(path)
    assert info.value.location.path == str(path) and info.value.location.line is not None


@pytest.mark.parametrize("item", ['{ text = "b {b}" }', '{ show = "b {b}", when = "b" }', '"b {b}"'])
def test_a_malformed_item_is_a_located_error(tmp_path, item):
    text = JOBS_TOML.read_text().replace('{ show = "b {b}" }', item, 1)
    path = tmp_path / "jobs.toml"
    path.write_text(text)
    with pytest.raises(FormulaError, match="header.model_line") as info:
        read_jobs(path)
    assert info.value.location.path == str(path) and info.value.location.line is not None


DATA = SPECS.parent / "tests" / "data" / "hf_configs"


@pytest.mark.parametrize("spec, sets, line", [
    # a block with parts not measured, whose activations are estimated
    (DATA / "granite-3.3-8b-instruct.json", (), "  not measured for this block: embedding, residual, attention and "
     "logit multipliers — parameters and KV cache are exact; for these, activations and peaks are estimated as a llama "
     "block's"),
    # a pure Mamba stack: a recurrent state, and no activations to estimate
    (DATA / "falcon-mamba-7b.json", (), "  not measured for this block: Mamba mixers — parameters, KV cache and "
     "recurrent state are exact; activations and peaks not computed"),
])
def test_a_caveat_line_is_its_items_one_after_another(cli, spec, sets, line):
    status, out, _ = cli(str(spec), *sets)
    assert status == 0 and line in out.splitlines()


def test_a_fully_measured_model_has_no_caveat_line(cli):
    _, out, _ = cli("specs/llama2-7b.toml")
    assert not [line for line in out.splitlines() if "not measured" in line or "unchecked:" in line]


def test_a_caveat_line_is_shown_only_when_its_first_item_is():
    item = HeaderItem("never {b}", ("b",), {"b": -1}, {}, {})
    shown = HeaderItem(" and more", (), {}, {}, {})
    problem = vram_eval.load(str(SPECS / "llama2-7b.toml"))
    from vram_eval.report import _caveat

    result = vram_eval.evaluate(problem)
    assert _caveat(result, (item, shown)) is None
    assert _caveat(result, (shown, item)) == " and more"


@pytest.mark.parametrize("sets, lines", [
    ((), []),  # nothing offloaded: no footnote
    (("--set", "offload_optimizer=cpu", "--set", "zero_stage=2", "--set", "dp=2"),
     ["offloaded (full training): host memory 96.98 GiB, NVMe 0.00 GiB per GPU process",
      "offloaded (LoRA, QLoRA): host memory 0.0488 GiB per GPU process"]),
])
def test_the_footnotes_say_what_is_offloaded_in_the_reports_unit(cli, sets, lines):
    _, out, _ = cli("specs/llama13b.toml", *sets)
    assert [line for line in out.splitlines() if line.startswith("offloaded")] == lines


def test_a_footnote_in_another_unit(cli):
    _, out, _ = cli("specs/llama13b.toml", "--set", "offload_optimizer=cpu", "--set", "zero_stage=2", "--set", "dp=2",
                    "--units", "GB")
    assert "offloaded (full training): host memory 104.13 GB, NVMe 0.00 GB per GPU process" in out.splitlines()
