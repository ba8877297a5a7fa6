"""sensitivity: derivatives, elasticities and doubling ratios at the spec's point."""

import functools
import json

import pytest

import vram_eval
from vram_eval.derivatives import sensitivity

from conftest import DATA, SPECS


@functools.lru_cache(maxsize=None)  # the same question, asked by two tests, is answered once
def rows(spec, target, *sets):
    result = sensitivity(vram_eval.load(str(spec), list(sets)), target)
    return result, {r.name: r for r in result.inputs}


def test_doubling_s_multiplies_the_gpt_formula_by_3_40_not_4():
    """Seed §6 says seq ×2 → ×4; LLaMA-13B at s = 2048 with the GPT (Korthikanti) formula: 3.40."""
    _, by = rows(SPECS / "llama13b.toml", "activations_per_layer", "arch=gpt")
    assert round(by["s"].doubling_ratio, 2) == 3.40
    assert round(by["b"].doubling_ratio, 6) == 2.0
    assert 1 < by["s"].elasticity < 2


def test_batch_and_layers_double_activations():
    _, by = rows(SPECS / "llama13b.toml", "activations", "arch=gpt")
    assert round(by["b"].doubling_ratio, 6) == 2.0
    assert round(by["L"].doubling_ratio, 2) == 1.99  # the loss and embedding terms do not grow with L


def test_inputs_are_ranked_by_elasticity():
    result, _ = rows(SPECS / "llama13b.toml", "activations", "arch=gpt")
    elasticities = [abs(r.elasticity or 0) for r in result.inputs]
    assert elasticities == sorted(elasticities, reverse=True)
    assert result.inputs[0].name == "s"


def test_derivative_value_is_bytes_per_unit():
    result, by = rows(SPECS / "llama13b.toml", "kv_cache")
    assert by["s"].slope == 819_200  # one more token of context costs 800 KiB of KV cache
    assert by["s"].elasticity == 1.0


def test_json_shape(cli):
    status, out, err = cli("sensitivity", "specs/llama13b.toml", "--target", "activations", "--format", "json")
    assert status == 0, err
    data = json.loads(out)
    assert {"target", "at", "inputs"} <= set(data)
    assert {"expression", "derivative", "elasticity", "doubling_ratio"} <= set(data["inputs"]["s"])
    assert data["at"]["s"] == 2048


def test_an_input_an_untaken_branch_divides_by_at_zero_still_has_a_row():
    """full_attention_interval = 0 (no linear attention) is divided by only in a branch not taken."""
    _, by = rows(SPECS / "llama13b.toml", "kv_cache")
    assert by["full_attention_interval"].slope == 0


def test_total_asks_for_the_sum_of_parts(cli):
    _, out, _ = cli("sensitivity", "specs/gpt2.toml", "--set", "regime=inference", "--total")
    assert out.startswith("sensitivity of total_inference = ") and "reached at" not in out


def _peak(spec, target, *sets):
    problem = vram_eval.load(str(spec), list(sets))
    return vram_eval.evaluate(problem.ruleset, problem.bindings).values[target]


@pytest.mark.parametrize("spec, target, sets, phase", [
    ("llama2-7b.toml", "peak_training", (), "training_at_backward_start"),
    ("llama2-7b.toml", "peak_lora", ("regime=lora",), "lora_at_backward_start"),
])
def test_a_peaks_slope_in_b_is_the_step_to_the_next_batch(spec, target, sets, phase):
    """Every phase is linear in b; the phase that reaches the peak at b = 1 still does at b = 2, so
    the peak's derivative in b is peak(b=2) - peak(b=1), exactly, and it names that phase."""
    result = sensitivity(vram_eval.load(str(SPECS / spec), list(sets)))
    assert result.target == target and result.phase[1] == phase
    by = {r.name: r for r in result.inputs}
    step = _peak(SPECS / spec, target, *sets, "b=2") - _peak(SPECS / spec, target, *sets, "b=1")
    assert by["b"].slope == step and step > 0


def test_the_default_target_is_the_peak_and_its_json_names_the_phase_and_differentiates_it(cli):
    _, out, _ = cli("sensitivity", "specs/llama2-7b.toml", "--set", "regime=inference", "--format", "json")
    data = json.loads(out)
    assert data["target"] == "peak_inference"
    assert data["phase"] == {"reached_at": "prefill", "output": "inference_at_prefill"}
    assert "prompt_len" in data["expression"]  # the prefill's form, not the whole max over phases
    assert data["inputs"]["kv_heads"]["derivative"] != "0"  # the KV cache grows with it


# Each (spec, target, --set) of this table: every input's exact slope (engine/slopes.py, from the residual
# table) against the SymPy way's (derivatives.sympy_slope: the target with its maxes chosen at the
# point, differentiated; the step where the derivative is unevaluated). The SymPy way takes seconds a
# peak: a few cases that between them hold maxes, floors and ceilings, piecewise branches, MoE,
# QLoRA, inference, Mamba and linear-attention layers.
SLOPE_CASES = [  # (spec, target: None for the default (the regime's peak), --set)
    (SPECS / "llama13b.toml", None, ()),
    (SPECS / "llama13b.toml", "activations", ("arch=gpt",)),
    (SPECS / "mixtral-8x7b.toml", None, ("regime=qlora",)),
    (SPECS / "mixtral-8x7b.toml", "weights", ()),
    (SPECS / "gpt2.toml", None, ("regime=inference",)),
    (DATA / "hf_configs" / "qwen3-next-80b-a3b-instruct.json", "kv_cache", ()),
    (DATA / "hf_configs" / "falcon-mamba-7b.json", None, ("regime=inference",)),
]


@functools.lru_cache(maxsize=None)
def _slopes_both_ways(spec, target, sets):
    """(input, exact slope or STEP or None, SymPy's slope, f(x0+1) - f(x0) where the exact way
    steps) for each input the sensitivity table has (where the residual holds the function)."""
    from vram_eval.focus import default_target
    from vram_eval.derivatives import sympy_slope, table_inputs
    from vram_eval.slopes import STEP, slope_at
    from vram_eval.symbolic import sympy_value
    from vram_eval.values import plain_number

    problem = vram_eval.load(str(spec), list(sets))
    target = problem.ruleset.resolve(target) if target else default_target(problem)
    out = []
    for name, fx in table_inputs(problem, target):
        if fx.residual is None or plain_number(fx.at_plain) is None:
            continue
        x0 = fx.at
        f0 = sympy_value(fx.at_value(x0))
        exact = slope_at(fx.residual, fx.value, name, plain_number(fx.at_plain))
        step = sympy_value(fx.at_value(x0 + 1)) - f0 if exact is STEP else None
        out.append((name, exact, sympy_slope(fx, x0, f0), step))
    return out


@pytest.mark.parametrize("spec, target, sets", SLOPE_CASES,
                         ids=[" ".join([s.stem, t or "peak", *sets]) for s, t, sets in SLOPE_CASES])
def test_the_exact_slope_is_sympys(spec, target, sets):
    from vram_eval.slopes import STEP

    answers = _slopes_both_ways(spec, target, sets)
    assert len(answers) >= 10
    answered = 0
    for name, exact, by_sympy, step in answers:
        if exact is None:
            continue  # the exact way cannot say: sensitivity asks SymPy (as here)
        answered += 1
        if exact is STEP:
            # SymPy's derivative is unevaluated there: both take the step
            assert by_sympy == step, name
        else:
            assert by_sympy.is_Rational and by_sympy == exact, (name, exact, by_sympy)
    assert answered >= len(answers) - 3  # SymPy answers only the few the residual cannot


def test_the_exact_slopes_meet_each_kind():
    """The table above holds slopes of each kind: positive, negative, zero, and steps."""
    from vram_eval.slopes import STEP

    seen = [exact for case in SLOPE_CASES[:4] for _, exact, _, _ in _slopes_both_ways(*case)]
    assert STEP in seen
    numbers = [e for e in seen if e is not STEP and e is not None]
    assert any(e > 0 for e in numbers) and any(e < 0 for e in numbers)
    assert 0 in seen
