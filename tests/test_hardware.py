"""The GPU catalog and the budget it gives: a catalog GPU budgets the memory its driver exposes
(nvidia-smi memory.total, with ECC where that is the shipped setting), not the marketed size.
Reference figures: tests/data/references/usable_memory.toml, each with its public source."""

from __future__ import annotations

import json

import pytest

import vram_eval
from vram_eval.errors import SpecError
from vram_eval.hardware import find_gpu, gpu_catalog

from conftest import DATA, SPECS, evaluate, load_toml, value

GiB = 2**30
MiB = 2**20
REFERENCE = load_toml(DATA / "references" / "usable_memory.toml")
CATALOG = sorted({g.id: g for g in gpu_catalog().values()}.values(), key=lambda g: g.id)

# The cards issue 11 asks for, by the id (or alias) a user types.
ASKED_FOR = ["rtx-a6000", "rtx6000-ada", "l4", "a10g", "t4", "v100-16gb", "v100-32gb", "rtx3090", "rtx4090",
             "rtx5090", "h100-pcie", "h100-sxm", "h100-nvl", "h200", "b200", "gb200", "mi250x", "mi300x", "mi325x"]


# --- the catalog --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ASKED_FOR)
def test_the_cards_people_ask_about_are_in_the_catalog(name):
    assert find_gpu(name).usable_bytes > 0


@pytest.mark.parametrize("gpu", CATALOG, ids=lambda g: g.id)
def test_every_entry_budgets_no_more_than_it_holds(gpu):
    assert 0 < gpu.usable_bytes <= gpu.memory_bytes // gpu.devices


@pytest.mark.parametrize("gpu", CATALOG, ids=lambda g: g.id)
def test_every_entry_says_where_its_figures_come_from(gpu):
    assert gpu.marketed and gpu.source
    if gpu.reported_mib is not None:
        assert gpu.reported_source, f"{gpu.id}: reported_mib without reported_source"
    else:
        assert gpu.no_driver_figure, f"{gpu.id}: neither reported_mib nor a no_driver_figure reason"


@pytest.mark.parametrize("alias, card", [("h100", "h100-sxm"), ("h100-80gb", "h100-sxm"), ("a6000", "rtx-a6000"),
                                         ("RTX 6000 Ada", "rtx6000-ada"), ("A100", "a100-80gb")])
def test_aliases_name_one_card(alias, card):
    assert find_gpu(alias).id == card


def test_the_mi250x_budget_is_one_of_its_two_devices():
    """The OS sees an MI250X as two GCDs of 64 GiB; one process on one device cannot use 128."""
    gpu = find_gpu("mi250x")
    assert gpu.devices == 2 and gpu.memory_bytes == 128 * GiB
    assert gpu.usable_bytes == 68_702_699_520 < 64 * GiB


def test_a_card_without_a_driver_figure_budgets_its_capacity_and_says_so():
    gpu = find_gpu("mi325x")
    assert gpu.reported_mib is None and gpu.usable_bytes == 256 * GiB and gpu.basis == "capacity"


# --- the budget ---------------------------------------------------------------------------


@pytest.mark.parametrize("card", sorted(REFERENCE["cards"]))
def test_the_budget_is_the_bytes_the_driver_reports(card):
    expected = REFERENCE["cards"][card]["reported_mib"] * MiB
    assert value(evaluate(None, f"gpu={card}"), "gpu_memory") == expected
    assert value(evaluate(None, gpu=card), "gpu_memory") == expected  # --gpu


@pytest.mark.parametrize("card, exact", [("l40s", 48_305_799_168), ("h100", 85_520_809_984), ("t4", 16_106_127_360),
                                         ("a100-80gb", 85_899_345_920), ("mi325x", 274_877_906_944)])
def test_budgets_in_bytes(card, exact):
    assert value(evaluate(None, gpu=card), "gpu_memory") == exact


@pytest.mark.parametrize("sets", [("gpu=l40s", "gpu_memory=24GiB"), ("gpu_memory=24GiB",)])
def test_gpu_memory_given_directly_is_exactly_that(sets):
    assert value(evaluate(None, *sets), "gpu_memory") == 24 * GiB


def test_solve_budgets_the_usable_bytes(cli):
    status, out, _ = cli("solve", "specs/llama2-7b.toml", "--for", "s", "--gpu", "l40s", "--set", "regime=inference",
                         "--format", "json")
    assert status == 0 and json.loads(out)["budget"] == 46068 * MiB


# --- errors -------------------------------------------------------------------------------


def test_an_unknown_gpu_is_a_located_error_with_a_suggestion(tmp_path):
    spec = tmp_path / "m.toml"
    spec.write_text('params = "7B"\ngpu = "l40"\n')
    with pytest.raises(SpecError) as info:
        vram_eval.load(str(spec))
    assert info.value.location.line == 2 and "unknown GPU 'l40'" in str(info.value)
    assert "l40s" in info.value.render()


def test_an_unknown_gpu_on_the_command_line_exits_2(cli):
    status, _, err = cli("specs/llama13b.toml", "--gpu", "h1000")
    assert status == 2 and "--gpu" in err and "unknown GPU" in err and "Traceback" not in err


@pytest.mark.parametrize("entry, message", [
    ('memory = "48GiB"\nmemory_bytes = 51539607552\nreported_mib = 50000\n', "more than memory"),
    ('memory = "48GiB"\nmemory_bytes = 51539607552\n', "needs reported_mib"),
    ('memory = "48GiB"\nmemory_bytes = 48000000000\nreported_mib = 46068\n', "memory_bytes = 48000000000"),
])
def test_a_bad_catalog_entry_is_a_located_error(tmp_path, monkeypatch, entry, message):
    from vram_eval import hardware, resources

    path = tmp_path / "gpus.toml"
    path.write_text(f'# a catalog\n[card]\nname = "X"\nmarketed = "48GB"\nsource = "s"\n{entry}')
    monkeypatch.setattr(resources, "catalog_path", lambda name: path)
    hardware.gpu_catalog.cache_clear()
    try:
        with pytest.raises(SpecError) as info:
            hardware.gpu_catalog()
    finally:
        hardware.gpu_catalog.cache_clear()
    assert message in str(info.value) and info.value.location.line == 2


# --- the report ---------------------------------------------------------------------------


def _gpu_line(out):
    return next(line.strip() for line in out.splitlines() if line.strip().startswith("GPU:"))


@pytest.mark.parametrize("args, line", [
    (("--gpu", "l40s"), "GPU: NVIDIA L40S, 44.99 GiB usable each (48GB marketed; the driver reports 46,068 MiB)"),
    (("--gpu", "mi325x"), "GPU: AMD Instinct MI325X, 256.00 GiB each (256 GB marketed; no driver figure on record: "
                          "its full capacity, not checked against a driver)"),
    (("--gpu", "mi250x"), "GPU: AMD Instinct MI250X, 63.98 GiB usable each (one of its 2 devices; 128 GB marketed "
                          "per package; the driver reports 65,520 MiB per device)"),
    (("--set", "gpu_memory=24GiB"), "GPU: 24.00 GiB each"),
])
def test_the_header_says_what_the_budget_is(cli, args, line):
    status, out, _ = cli("specs/llama2-7b.toml", *args)
    assert status == 0 and _gpu_line(out) == line


def test_json_carries_the_gpu(cli):
    status, out, _ = cli("specs/llama2-7b.toml", "--gpu", "l40s", "--format", "json")
    data = json.loads(out)
    assert data["gpu"]["id"] == "l40s" and data["gpu"]["marketed"] == "48GB"
    assert data["gpu"]["usable_bytes"] == data["inputs"]["gpu_memory"] == 46068 * MiB
    assert data["gpu"]["memory_bytes"] == 48 * GiB and data["gpu"]["basis"] == "driver"


def test_json_gpu_is_null_when_gpu_memory_is_given(cli):
    status, out, _ = cli("specs/llama2-7b.toml", "--set", "gpu_memory=24GiB", "--format", "json")
    assert json.loads(out)["gpu"] is None


def test_the_gpus_command_lists_every_card_once(cli):
    status, out, _ = cli("gpus", "--format", "json")
    listed = json.loads(out)
    assert status == 0 and sorted(g["id"] for g in listed) == [g.id for g in CATALOG]
    status, out, _ = cli("gpus")
    assert status == 0 and "l40s" in out and "46,068 MiB" in out and "44.99" in out


# --- the case ---------------------------------------------------------------------


def test_llama65b_qlora_that_fit_the_marketed_l40s_does_not_fit_the_real_one():
    """Issue 11: budgeting the L40S's 48 GiB said 'fits'; its driver exposes 46,068 MiB, and the
    same job is over at its peak and by its sum of parts."""
    case = REFERENCE["llama65b_qlora_l40s"]
    real = evaluate(SPECS / "llama65b.toml", f"s={case['s']}", gpu="l40s")
    assert value(real, "peak_qlora") == case["peak_qlora"]
    assert value(real, "total_qlora") == case["total_qlora"]
    assert value(real, "peak_headroom_qlora") == 46068 * MiB - case["peak_qlora"] < 0
    assert value(real, "headroom_qlora") < 0
    marketed = evaluate(SPECS / "llama65b.toml", f"s={case['s']}", f"gpu_memory={case['marketed_budget']}",
                        "gpu_arch=ada")
    assert value(marketed, "peak_headroom_qlora") > 0


def test_the_l40s_budget_is_3_01_gib_below_its_marketed_size():
    """Whatever the job, the L40S's real budget is 48 GiB - 46,068 MiB = 3,233,808,384 bytes less
    (the same architecture, so the same cuBLAS workspace)."""
    marketed = evaluate(SPECS / "llama65b.toml", "gpu_memory=48GiB", "gpu_arch=ada")
    real = evaluate(SPECS / "llama65b.toml", gpu="l40s")
    assert value(marketed, "peak_headroom_qlora") - value(real, "peak_headroom_qlora") == 3_233_808_384
