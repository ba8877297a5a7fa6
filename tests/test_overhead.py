"""formulas/overhead.formula: the runtime overhead (CUDA context, cuBLAS workspaces, NCCL buffers,
the caching allocator's reserve), its defaults against the published figures they come from
(tests/data/references/overhead.toml), its report row, and engine/lab/gpu.py's record format."""

import json
import statistics

import pytest
from sympy import Rational, ceiling

from conftest import DATA, SPECS, evaluate, load_toml, value

LLAMA2_7B = SPECS / "llama2-7b.toml"
REF = load_toml(DATA / "references" / "overhead.toml")
MiB = 2**20
JOBS = ("training", "lora", "qlora", "inference")


def _median_reserve():
    return statistics.median(r["reserved"] / r["allocated"] - 1 for r in REF["reserve"])


# --- the defaults are the published figures ---------------------------------------------------

def test_the_fragmentation_default_is_the_median_published_reserve():
    assert round(_median_reserve(), 2) == 0.11
    assert evaluate(LLAMA2_7B)["allocator_fragmentation"] == Rational(11, 100)


def test_expandable_segments_keep_the_published_share_of_the_gap():
    e = REF["expandable_segments"]
    kept = (e["reserved"] - e["allocated"]) / (e["before_reserved"] - e["before_allocated"])
    assert round(_median_reserve() * kept, 2) == 0.06
    assert evaluate(LLAMA2_7B, "expandable_segments=true")["allocator_fragmentation"] == Rational(6, 100)


@pytest.mark.parametrize("loading, expected", [("lazy", 426 * MiB), ("eager", 645_660_672)])
def test_the_cuda_context_by_module_loading(loading, expected):
    assert value(evaluate(LLAMA2_7B, f"cuda_module_loading={loading}"), "cuda_context") == expected


def test_the_context_defaults_are_recorded_measurements():
    """lazy: the newest published figure; eager: 666,632,192 bytes used less the 20 MiB segment
    the caching allocator gave the 6.4 MB test tensor (kLargeBuffer, for 1-10 MiB requests)."""
    contexts = {c["loading"]: c for c in reversed(REF["cuda_context"])}
    alloc = REF["caching_allocator"]
    assert alloc["small_size"] < 20 * 16 * 50 * 100 * 4 < alloc["min_large_alloc"]
    assert contexts["eager"]["bytes"] == 666_632_192 - alloc["large_buffer"]
    assert REF["cuda_context"][0]["loading"] == "lazy" and REF["cuda_context"][0]["bytes"] == 426 * MiB


def _workspace_bytes(config):
    """CUBLAS_WORKSPACE_CONFIG ':SIZE:COUNT...' in KiB, as parseChosenWorkspaceSize sums it."""
    fields = [int(x) for x in config.strip(":").split(":")]
    return sum(size * 1024 * count for size, count in zip(fields[::2], fields[1::2]))


@pytest.mark.parametrize("arch, config", [
    ("volta", "default_config"), ("turing", "default_config"), ("ampere", "default_config"), ("ada", "default_config"),
    ("hopper", "default_config_sm90_and_later"), ("blackwell", "default_config_sm90_and_later"),
    ("unknown", "default_config_sm90_and_later"),
])
def test_the_cublas_workspace_is_pytorchs_default_by_architecture(arch, config):
    r = evaluate(LLAMA2_7B, f"gpu_arch={arch}")
    expected = _workspace_bytes(REF["cublas"][config]) + REF["cublas"]["cublaslt_kib"] * 1024
    assert value(r, "cublas_workspace") == expected
    assert {"volta": 8_519_680 + MiB, "hopper": 33 * MiB}.get(arch, expected) == expected


def _communicator_mib(n):
    """NVIDIA/nccl#964's per-rank figure for a group of n GPUs (2, or more than 2)."""
    measured = {e["group_size"]: e["mib"] for e in REF["nccl"]}
    return 0 if n == 1 else measured[2 if n == 2 else 4]


@pytest.mark.parametrize("dp, tp, pp", [(1, 1, 1), (2, 1, 1), (8, 1, 1), (2, 2, 1), (4, 2, 2), (1, 8, 1)])
def test_nccl_buffers_one_communicator_per_parallel_dimension(dp, tp, pp):
    r = evaluate(LLAMA2_7B, f"dp={dp}", f"tp={tp}", f"pp={pp}")
    expected = sum(_communicator_mib(n) for n in (dp, tp, pp)) * MiB
    assert value(r, "nccl_buffers") == expected
    assert (dp, tp, pp) != (1, 1, 1) or expected == 0


def test_the_defaults_do_not_exceed_what_nvidia_smi_saw():
    """fms-acceleration's Mistral-7B runs on one A100: the context and the reserve the defaults
    predict stay below nvidia-smi's peak minus the allocated peak (they include both)."""
    r = evaluate(LLAMA2_7B, "gpu_arch=ampere")
    fixed, frag = value(r, "overhead"), r["allocator_fragmentation"]
    for run in REF["nvidia_smi"]:
        gap = int(run["nvidia_mib"] * MiB) - run["peak_allocated"]
        assert fixed + frag * run["peak_allocated"] < gap, run["what"]


# --- how the overhead enters the totals and the peaks ---------------------------------------

def test_the_fixed_part_is_context_workspace_and_nccl():
    r = evaluate(LLAMA2_7B, "dp=2")
    assert value(r, "overhead") == value(r, "cuda_context") + value(r, "cublas_workspace") + value(r, "nccl_buffers")


@pytest.mark.parametrize("job", JOBS)
def test_totals_and_peaks_add_the_fixed_part_and_the_reserve_on_their_allocated_bytes(job):
    r = evaluate(LLAMA2_7B)
    frag, fixed = r["allocator_fragmentation"], r["overhead"]
    reserve, peak_reserve = ceiling(r[f"allocated_{job}"] * frag), ceiling(r[f"peak_allocated_{job}"] * frag)
    assert r[f"total_{job}"] == r[f"allocated_{job}"] + reserve + fixed
    assert r[f"peak_{job}"] == r[f"peak_allocated_{job}"] + peak_reserve + fixed
    assert r[f"peak_reserved_{job}"] == r[f"peak_allocated_{job}"] + peak_reserve + r["cublas_workspace"]
    assert r[f"peak_{job}"].is_Integer  # the reserve is rounded up to whole bytes


@pytest.mark.parametrize("job", JOBS)
def test_zero_overhead_reproduces_the_tensors_alone(job):
    r = evaluate(LLAMA2_7B, "overhead=0", "allocator_fragmentation=0")
    assert r[f"peak_{job}"] == r[f"peak_allocated_{job}"]
    assert r[f"total_{job}"] == r[f"allocated_{job}"]


def test_setting_overhead_overrides_its_parts():
    r = evaluate(LLAMA2_7B, "overhead=1GiB", "cuda_context=5GiB")
    assert value(r, "overhead") == 2**30


def test_a_negative_fragmentation_is_a_located_error(cli):
    status, _, err = cli("specs/llama2-7b.toml", "--set", "allocator_fragmentation=-0.1")
    assert status == 2 and "allocator_fragmentation must be 0 or more" in err


def test_an_unknown_module_loading_is_a_located_error(cli):
    status, _, err = cli("specs/llama2-7b.toml", "--set", "cuda_module_loading=sometimes")
    assert status == 2 and "'sometimes' is not one of: eager, lazy" in err


# --- the report marks defaults "uncalibrated" ---------------------------------------------------

@pytest.mark.parametrize("sets, uncalibrated", [
    ((), ["cuda_context", "cublas_workspace", "allocator_fragmentation"]),
    (("dp=2",), ["cuda_context", "cublas_workspace", "nccl_buffers", "allocator_fragmentation"]),
    (("cuda_context=600MiB",), ["cublas_workspace", "allocator_fragmentation"]),
    (("overhead=1GiB",), ["allocator_fragmentation"]),
    (("overhead=1GiB", "allocator_fragmentation=0.05"), []),
    (("overhead_calibrated=1",), []),
])
def test_json_lists_the_overhead_inputs_still_at_their_defaults(cli, sets, uncalibrated):
    args = [x for s in sets for x in ("--set", s)]
    status, out, _ = cli("specs/llama2-7b.toml", "--format", "json", *args)
    assert status == 0 and json.loads(out)["uncalibrated"] == uncalibrated


def test_the_row_says_uncalibrated_while_defaults_stand(cli):
    """Llama-2-7B's spec runs on an A100 (Ampere): PyTorch's 8 MiB + 128 KiB cuBLAS workspace + 1 MiB cuBLASLt."""
    _, out, _ = cli("specs/llama2-7b.toml")
    assert "  runtime overhead (uncalibrated)  " in out
    assert "runtime overhead (uncalibrated): CUDA context 426 MiB + cuBLAS workspaces 9 MiB + allocator reserve 11%" in out


@pytest.mark.parametrize("sets, arch, workspace", [
    (("gpu=h100",), "hopper", 32 * 2**20 + 2**20),
    (("gpu=rtx4090",), "ada", 8519680 + 2**20),
    (("gpu=t4",), "turing", 8519680 + 2**20),
    (("gpu=mi300x",), "unknown", 32 * 2**20 + 2**20),  # no NVIDIA architecture: the larger workspace
    (("gpu_memory=80GiB",), "unknown", 32 * 2**20 + 2**20),
    (("gpu_arch=volta", "gpu=h100"), "volta", 8519680 + 2**20),  # the user's gpu_arch wins
])
def test_a_catalog_gpu_binds_its_architecture_for_the_cublas_workspace(sets, arch, workspace):
    r = evaluate(SPECS / "gpt2.toml", *sets)
    assert r["gpu_arch"].value == arch and r["cublas_workspace"] == workspace


def test_the_row_is_plain_once_measured_values_are_given(cli):
    _, out, _ = cli("specs/llama2-7b.toml", "--set", "overhead=1GiB", "--set", "allocator_fragmentation=0.05")
    assert "  runtime overhead  " in out and "uncalibrated" not in out


def test_the_overhead_row_completes_each_column(cli):
    """No 'other' row: each column's rows add up to its sum of parts."""
    _, out, _ = cli("specs/llama2-7b.toml")
    assert "\n  other " not in out


# --- engine/lab/gpu.py: the record every reader uses -----------------------------------------

def _fake_document():
    from vram_eval.lab.gpu import CASES, make_record

    cases = []
    for allocator, extra in (("default", 0.10), ("expandable", 0.04)):
        for c in (CASES[0], CASES[-1]):
            allocated = 10 * 2**30
            cases.append(make_record(c, allocator, dict(
                peak_allocated=allocated, peak_reserved=int(allocated * (1 + extra)), device_used=int(allocated * (1 + extra)) + 500 * MiB,
                device_used_basis="nvml process", memory_reserved=int(allocated * (1 + extra)), context_at_start=420 * MiB,
                cublas_workspace=33 * MiB, n_trainable_tensors=75)))
    versions = {"torch": "2.13.0", "cuda": "13.0", "transformers": "5", "peft": "0.21", "device": "NVIDIA H100 80GB HBM3",
                "compute_capability": "9.0", "device_memory": 85_520_809_984, "driver": "580", "python": "3.11",
                "cuda_module_loading": "LAZY"}
    return {"description": "test", "versions": versions, "elapsed_s": 0, "cases": cases}


def test_a_record_keeps_what_the_readers_need():
    from vram_eval.lab.gpu import check_document

    doc = _fake_document()
    check_document(doc)
    assert doc["cases"][0]["outside_allocator"] == 500 * MiB


@pytest.mark.parametrize("drop", ["peak_reserved", "device_used", "context_at_start", "cublas_workspace"])
def test_a_measurement_without_a_field_is_refused(drop):
    from vram_eval.lab.gpu import CASES, make_record

    stats = dict(peak_allocated=1, peak_reserved=2, device_used=3, device_used_basis="nvml process", memory_reserved=2,
                 context_at_start=1, cublas_workspace=1, n_trainable_tensors=1)
    del stats[drop]
    with pytest.raises(ValueError, match=drop):
        make_record(CASES[0], "default", stats)


def test_the_calibration_reads_the_records():
    from vram_eval.lab.gpu import calibrate

    got = calibrate(_fake_document())
    assert got["gpu_arch"] == "hopper" and got["cuda_context"] == 500 * MiB and got["cuda_context_bare"] == 420 * MiB
    assert got["cublas_workspace"] == 33 * MiB
    assert got["allocator_fragmentation"] == 0.1 and got["allocator_fragmentation_expandable"] == 0.04


def test_the_accuracy_table_compares_three_levels(tmp_path, monkeypatch):
    import validation.accuracy as accuracy

    (tmp_path / "gpu_peaks.json").write_text(json.dumps(_fake_document()))
    monkeypatch.setattr(accuracy, "DATA", tmp_path)
    rows = list(accuracy.gpu_rows())
    assert len(rows) == 3 * 4
    by_level = {what.split(", ", 1)[1]: measured for what, _, _, _, measured in rows[:3]}
    assert by_level == {"max_memory_allocated": 10 * 2**30, "max_memory_reserved": 11 * 2**30,
                        "device memory (NVML)": 11 * 2**30 + 500 * MiB}
    assert all(what in accuracy.TARGETS for what, *_ in rows)
    assert all("hopper" not in v and "H100" in v for _, v, *_ in rows)


@pytest.mark.parametrize("cc, arch", [("7.0", "volta"), ("7.5", "turing"), ("8.0", "ampere"), ("8.6", "ampere"),
                                      ("8.9", "ada"), ("9.0", "hopper"), ("10.0", "blackwell"), ("12.0", "blackwell")])
def test_a_compute_capability_names_the_architecture(cc, arch):
    from vram_eval.lab.gpu import gpu_arch

    assert gpu_arch(cc) == arch


def test_the_gpu_predictions_add_the_levels_in_order():
    import vram_eval
    from vram_eval.lab.cases import gpu_prediction, gpu_sets
    from vram_eval.lab.gpu import CASES

    doc = _fake_document()
    c = doc["cases"][0]
    problem = vram_eval.load(None, gpu_sets(c, doc["versions"]))
    p = gpu_prediction(c, vram_eval.evaluate(problem.ruleset, problem.bindings))
    assert p["allocated"] < p["reserved"] < p["device"]
    assert CASES[0]["mode"] == c["mode"]


def test_list_mode_needs_no_gpu(capsys):
    from vram_eval.lab.gpu import CASES, main

    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == len(CASES) and "predicted allocated" in out
