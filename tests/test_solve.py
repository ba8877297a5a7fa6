"""solve: the largest (or smallest) value of an input that keeps a target within a budget."""

import json

import pytest

import vram_eval
from vram_eval.inverse import parse_budget, solve

from conftest import DATA, SPECS, load_toml

GiB, GB = 2**30, 10**9


def problem(spec=None, *sets):
    return vram_eval.load(None if spec is None else str(spec), list(sets))


def assert_boundary(sol, budget):
    """The answer fits and the next value does not: the exact boundary."""
    assert sol.target_at_value <= budget < sol.target_at_next
    step = 1 if sol.direction == "largest" else -1
    assert sol.next_value == sol.value + step


def test_longest_context_llama2_7b_serves_in_24_gib_and_in_24_gb():
    """The tensors' sum of parts (weights, KV cache, buffers; no runtime overhead) is linear in s:
    a closed form."""
    p = problem(SPECS / "llama2-7b.toml", "regime=inference")
    gib = solve(p, "s", 24 * GiB, "allocated_inference")
    gb = solve(p, "s", 24 * GB, "allocated_inference")
    assert_boundary(gib, 24 * GiB)
    assert_boundary(gb, 24 * GB)
    assert (gib.value, gb.value) == (22736, 19463)
    assert round(float(gib.value / gb.value) - 1, 2) == 0.17  # the unit alone moves the answer by ~17%
    assert "linear" in gib.method and gib.closed_form.startswith("s = floor(")
    assert any("s_max = 4,096" in n for n in gib.notes)


def test_the_closed_form_printed_is_the_one_solved_with_an_output_given():
    """--set params=7.5B replaces the parameter count: the closed form reads with params, and its
    root is the answer's (it used to print the count from the sizes, which was not solved)."""
    p = problem(SPECS / "llama2-7b.toml", "regime=inference", "params=7.5B")
    answer = solve(p, "s", 24 * GiB, "allocated_inference")
    assert "params" in answer.closed_form and "f*h" not in answer.closed_form
    per_token = 4 * 4096 + 128 * 128 * 32  # I/O buffer and KV cache bytes per token at b = 1 (bf16)
    assert answer.value == (24 * GiB - 2 * 7_500_000_000) // per_token


def test_fewest_data_parallel_gpus_for_zero_3_model_states_of_7_5b():
    """ZeRO Figure 1: 16 × 7.5B bytes over Nd GPUs; 1.9 GB needs Nd = 64 (1.875 GB)."""
    p = problem(None, "params=7.5B", "zero_stage=3", "weight_dtype=fp16")
    sol = solve(p, "dp", int(1.9 * GB), "model_states")
    assert (sol.direction, sol.value) == ("smallest", 64)
    assert_boundary(sol, int(1.9 * GB))
    assert sol.target_at_value == 1_875_000_000


ZERO = load_toml(DATA / "references" / "zero.toml")


@pytest.mark.parametrize("row", ZERO["table2"]["rows"], ids=[f"MP={r['mp']}" for r in ZERO["table2"]["rows"]])
@pytest.mark.parametrize("stage, printed", [(0, "printed_baseline"), (1, "printed_os"), (2, "printed_os_g"),
                                            (3, "printed_os_g_p")])
def test_largest_model_under_zero_on_64_gpus_of_32_gb(row, stage, printed):
    """ZeRO Table 2: the largest Ψ whose model states fit 32 GB per GPU, Nd = 64, MP-way model parallel.
    The paper prints MP × (the MP = 1 value, rounded): compare per MP-way slice."""
    p = problem(None, f"dp={ZERO['table2']['nd']}", f"tp={row['mp']}", f"zero_stage={stage}", "weight_dtype=fp16")
    sol = solve(p, "params", ZERO["table2"]["device_memory_bytes"], "model_states")
    assert_boundary(sol, ZERO["table2"]["device_memory_bytes"])
    first = next(r for r in ZERO["table2"]["rows"] if r["mp"] == 1)[printed]
    billions = float(first.rstrip("BT")) * (1000 if first.endswith("T") else 1)
    assert round(sol.value / row["mp"] / GB, 1) == billions


def test_a_quadratic_in_s_without_flash_attention():
    p = problem(SPECS / "gpt3-175b.toml", "tp=8", "pp=8", "dp=8", "zero_stage=1", "flash_attention=false")
    sol = solve(p, "s", 80 * GiB, "allocated_training")
    assert "quadratic in s" in sol.method
    assert_boundary(sol, 80 * GiB)
    assert sol.closed_form and "sqrt" in sol.closed_form
    assert int(sol.root) == sol.value  # floor of the real root


def test_nothing_fits_says_which_component_and_what_would():
    sol = solve(problem(SPECS / "llama13b.toml"), "s", 24 * GiB)
    assert sol.value is None
    assert "weights alone need 24.24 GiB > 24.00 GiB" in sol.reason
    assert any("zero_stage=3" in s for s in sol.suggestions)


def test_never_a_root_outside_the_domain():
    sol = solve(problem(SPECS / "llama13b.toml"), "s", 24 * GiB)
    assert sol.root is None or sol.root >= 0


def test_requirements_restrict_the_answer():
    """tp must divide a (40) and kv_heads: with zero-1 the smallest tp that fits skips 3."""
    p = problem(SPECS / "llama13b.toml", "dp=8", "zero_stage=1")
    sol = solve(p, "tp", 40 * GiB, "total_training")
    assert sol.value in (4, 5, 8, 10)
    assert 40 % sol.value == 0


def test_a_non_monotonic_target_is_searched_exactly(tmp_path):
    f = tmp_path / "odd.formula"
    f.write_text("odd [bytes] = (s - 100)^2 * 1 MiB + 1 GiB\n")
    p = vram_eval.load(None, ["b=1"], [str(f)])
    sol = solve(p, "s", 2 * GiB, "odd")
    assert any("not monotonic" in n for n in sol.notes)
    assert (sol.value - 100) ** 2 * 2**20 + GiB <= 2 * GiB < (sol.value + 1 - 100) ** 2 * 2**20 + GiB


@pytest.mark.parametrize("text, words", [
    ("24", "has no unit"), ("24 GiBs", "not a memory size"), ("24gib", "did you mean '24GiB'"),
    ("13B", "is a count"), ("-1GiB", "must be positive"),
])
def test_bad_budgets(text, words):
    with pytest.raises(vram_eval.SolveError) as info:
        parse_budget(text)
    assert words in info.value.message + (info.value.hint or "")


@pytest.mark.parametrize("name, target, words", [
    ("sq", None, "did you mean 's'"),
    ("s", "total_trainng", "did you mean 'total_training'"),
    ("weight_dtype", None, "not a number"),
    ("gpu_memory", "total_training", "does not depend on gpu_memory"),
])
def test_bad_names(name, target, words):
    with pytest.raises(vram_eval.SolveError) as info:
        solve(problem(SPECS / "llama13b.toml"), name, 80 * GiB, target)
    assert words in info.value.message + " " + (info.value.hint or "")


def test_cli_json_follows_the_design_schema(cli):
    status, out, err = cli("solve", "specs/llama2-7b.toml", "--for", "s", "--budget", "24GiB",
                           "--set", "regime=inference", "--format", "json")
    assert status == 0, err
    data = json.loads(out)
    assert {"for", "target", "budget", "value", "closed_form", "reason"} <= set(data)
    assert (data["for"], data["target"], data["budget"], data["value"]) == ("s", "peak_inference", 24 * GiB, 14957)


def test_the_peak_decides_unless_total_is_asked(cli):
    """The default answers against the peak over phases (what the GPU sees); --total against the
    sum of parts, for comparison with published tables."""
    for flags, target, value in (((), "peak_inference", 14957), (("--total",), "total_inference", 17252),
                                 (("--target", "total_inference"), "total_inference", 17252)):
        _, out, _ = cli("solve", "specs/llama2-7b.toml", "--for", "s", "--budget", "24GiB", "--set", "regime=inference",
                        "--format", "json", *flags)
        assert (json.loads(out)["target"], json.loads(out)["value"]) == (target, value)


def test_a_regime_without_a_computable_peak_answers_against_its_total(cli):
    """A pure Mamba stack's phases need attention heads it does not have: the sum of parts decides."""
    _, out, _ = cli("solve", DATA / "hf_configs" / "falcon-mamba-7b.json", "--for", "b", "--budget", "80GiB",
                    "--set", "regime=inference", "--format", "json")
    assert json.loads(out)["target"] == "total_inference"


def test_cli_nothing_fits_exits_0_with_null_and_a_reason(cli):
    status, out, _ = cli("solve", "specs/llama13b.toml", "--for", "s", "--budget", "24GiB", "--format", "json")
    data = json.loads(out)
    assert status == 0 and data["value"] is None and "weights alone" in data["reason"]


def test_cli_two_budgets_answer_a_table(cli):
    status, out, _ = cli("solve", "specs/llama2-7b.toml", "--for", "s", "--budget", "24GiB", "--budget", "24GB",
                         "--set", "regime=inference")
    assert status == 0 and "14,957" in out and "12,401" in out
    status, out, _ = cli("solve", "specs/llama2-7b.toml", "--for", "s", "--gpu", "rtx4090", "--gpu", "a100-80gb",
                         "--set", "regime=inference", "--format", "json")
    # each GPU's usable memory, what its driver reports: 24,564 and 81,920 MiB
    assert status == 0 and [d["budget"] for d in json.loads(out)] == [24564 * 2**20, 81920 * 2**20]


def test_cli_bad_input_exits_2(cli):
    for args in (("--for", "s", "--budget", "24"), ("--for", "sq", "--budget", "24GiB"),
                 ("--for", "s", "--budget", "24GiB", "--target", "nope")):
        status, _, err = cli("solve", "specs/llama13b.toml", *args)
        assert status == 2 and "error:" in err and "Traceback" not in err


def test_peak_flag_answers_against_the_regimes_peak(cli):
    import json

    status, out, _ = cli("solve", "specs/llama3-8b.toml", "--for", "b", "--gpu", "h100", "--peak",
                         "--set", "regime=lora", "--set", "recompute=full", "--format", "json")
    assert status == 0
    answer = json.loads(out)
    assert answer["target"] == "peak_lora" and answer["value"] == 8  # 78.68 GiB at b = 8, 86.38 at 9 (79.65 usable)


def test_an_explicit_target_wins_over_the_peak_flag(cli):
    import json

    status, out, _ = cli("solve", "specs/llama2-7b.toml", "--for", "s", "--budget", "24GiB", "--peak",
                         "--target", "kv_cache", "--format", "json")
    assert status == 0 and json.loads(out)["target"] == "kv_cache"


def test_a_neighbour_the_formulas_reject_is_said_to_be_invalid_not_too_big(cli):
    """Llama-2-70B has 8 KV heads: tp = 7 is not a valid split (it would fit 24 GiB: 18.66 GiB)."""
    status, out, _ = cli("solve", "specs/llama2-70b.toml", "--for", "tp", "--budget", "24GiB", "--set", "regime=inference")
    assert status == 0 and "smallest tp" in out and ": 8\n" in out
    assert "at tp = 7: not a valid value — tp must divide kv_heads, or kv_heads divide tp" in out
    assert "does not fit" not in out


def test_the_json_answer_names_why_the_neighbour_is_invalid(cli):
    _, out, _ = cli("solve", "specs/llama2-70b.toml", "--for", "tp", "--budget", "24GiB", "--set", "regime=inference",
                    "--format", "json")
    answer = json.loads(out)
    assert answer["next_value"] == 7 and answer["next_invalid"].startswith("tp must divide kv_heads")


def test_bytes_are_printed_as_whole_numbers(cli):
    """ZeRO-3 over dp = 3 leaves two thirds of a byte (48,839,175,396.67): printed rounded up, never 4.88392e+10."""
    status, out, _ = cli("solve", "specs/llama2-7b.toml", "--for", "dp", "--budget", "40GiB", "--set", "zero_stage=3",
                         "--set", "recompute=full")
    assert status == 0 and "at dp = 3: 48,839,175,397 bytes (45.49 GiB) — does not fit" in out and "e+" not in out


def test_a_requirement_the_input_does_not_touch_is_checked_at_the_spec_s_point(cli):
    """kv_heads = 24 with 64 heads is wrong whatever tp is: the located error of `vram-eval SPEC`."""
    status, out, err = cli("solve", "specs/llama2-70b.toml", "--for", "tp", "--budget", "40GiB", "--set",
                           "regime=inference", "--set", "kv_heads=24")
    assert status == 2 and out == "" and err.startswith("--set: error: kv_heads must divide a")


def test_nothing_fits_at_the_peak_suggests_two_changes_together_when_one_is_not_enough(cli):
    """LoRA of Llama-3-8B at 8k on 24 GiB: at the peak neither checkpointing nor QLoRA alone fits
    b = 1; both together do."""
    status, out, _ = cli("solve", "specs/llama3-8b.toml", "--for", "b", "--budget", "24GiB", "--set", "regime=lora",
                         "--set", "s=8192", "--peak")
    assert status == 0 and "no b keeps peak_lora within 24GiB" in out
    assert "try: --set recompute=full --set regime=qlora: b = 1 fits" in out


def test_a_single_change_that_fits_is_suggested_alone(cli):
    """LoRA of Llama-3-8B at 2k on 24 GiB: checkpointing alone fits b = 1, so no pair is tried."""
    _, out, _ = cli("solve", "specs/llama3-8b.toml", "--for", "b", "--budget", "24GiB", "--set", "regime=lora",
                    "--set", "s=2048")
    assert "try: --set recompute=full: b = 1 fits" in out and "--set recompute=full --set" not in out


def test_nothing_fits_suggests_the_fewest_gpus_to_split_the_model_over_after_the_one_gpu_changes(cli):
    """LoRA of Llama-3-8B at 8k on 24 GiB: after the one-GPU remedies (checkpointing with a fused
    loss or with QLoRA, a fused loss with activations offloaded), tp = 8 (tp = 4 leaves the peak over 24 GiB; 3, 5, 6, 7 do not divide the
    8 KV heads)."""
    _, out, _ = cli("solve", "specs/llama3-8b.toml", "--for", "b", "--budget", "24GiB", "--set", "regime=lora",
                    "--set", "s=8192")
    tries = [line.strip() for line in out.splitlines() if line.strip().startswith("try:")]
    assert tries == ["try: --set recompute=full --set loss_impl=liger: b = 1 fits",
                     "try: --set recompute=full --set regime=qlora: b = 1 fits",
                     "try: --set loss_impl=liger --set activation_offloading=true: b = 2 fits",
                     "try: --set tp=8: b = 1 fits"]


def test_a_split_that_leaves_room_says_how_large_the_batch_becomes(cli):
    """Llama-2-70B inference on 80 GiB: the int8 and int4 weights fit on one GPU; tp = 2 fits b = 5."""
    _, out, _ = cli("solve", "specs/llama2-70b.toml", "--for", "b", "--budget", "80GiB", "--set", "regime=inference")
    assert "try: --set tp=2: b = 5 fits" in out
    assert out.index("inference_dtype=int4") < out.index("--set tp=2")


@pytest.mark.parametrize("budget", ["80GiB", "1000000TiB"], ids=["bisection", "beyond-the-search"])
def test_an_input_a_requirement_bounds_from_above_answers_the_bound_when_everything_fits(cli, tmp_path, budget):
    """max_model_len <= s_max, n_gpu_layers <= L + 1: the largest value the requirement accepts,
    and the next one named invalid (not "nothing fits", not "no limit")."""
    rules = tmp_path / "capped.formula"
    rules.write_text('input cap_x [count] = 1 "a capped input"\n'
                     'require cap_x <= 40 "cap_x is at most 40"\n'
                     'capped_memory [bytes] "grows with cap_x" = cap_x * 1 GiB\n', encoding="utf-8")
    code, out, _ = cli("solve", "specs/llama2-7b.toml", "--formulas", str(rules), "--for", "cap_x",
                       "--target", "capped_memory", "--budget", budget, "--format", "json")
    answer = json.loads(out)
    assert code == 0 and answer["value"] == 40 and answer["next_invalid"] == "cap_x is at most 40"
