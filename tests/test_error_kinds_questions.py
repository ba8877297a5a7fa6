"""The questions' mistakes are kinds with facts too (errors.py): the same kind wherever it happens."""

import pytest
import sympy

import vram_eval
from conftest import SPECS
from vram_eval import errors
from vram_eval.explanation import explain
from vram_eval.grid import parse_range, sweep
from vram_eval.inverse import parse_budget, solve

LLAMA = str(SPECS / "llama2-7b.toml")
LLAMA13 = str(SPECS / "llama13b.toml")


def _sweep(text, target=None):
    return sweep(vram_eval.load(LLAMA13), parse_range(text), [target])


def _raised(call):
    with pytest.raises(errors.EngineError) as info:
        call()
    return info.value


@pytest.mark.parametrize("call, kind, family, facts", [
    (lambda: solve(vram_eval.load(LLAMA), "sq", 2**35), errors.UnknownName, errors.SolveError,
     {"name": "sq", "suggestion": "s"}),
    (lambda: solve(vram_eval.load(LLAMA), "s", 2**35, target="peak_trainin"), errors.UnknownName, errors.SolveError,
     {"name": "peak_trainin", "suggestion": "peak_training"}),
    (lambda: solve(vram_eval.load(LLAMA), "weight_dtype", 2**35), errors.WrongKind, errors.SolveError,
     {"name": "weight_dtype", "actual": "choice", "wanted": "a number"}),
    (lambda: solve(vram_eval.load(LLAMA), "lora_rank", 2**35, target="total_inference"), errors.NoDependence,
     errors.SolveError, {"target": "total_inference", "name": "lora_rank"}),
    (lambda: parse_budget("24"), errors.InvalidValue, errors.SolveError, {"name": "budget", "value": "24"}),
    (lambda: explain(vram_eval.load(LLAMA).ruleset, "weigths"), errors.UnknownName, errors.BindingError,
     {"name": "weigths", "suggestion": "weights"}),
    (lambda: vram_eval.evaluate(vram_eval.load(LLAMA))["nope_nope"], errors.UnknownName, errors.BindingError,
     {"name": "nope_nope"}),
    (lambda: vram_eval.evaluate(vram_eval.load(LLAMA, ["kv_heads=24"])), errors.RequirementNotMet, errors.SpecError,
     {}),
    # a sweep's range against its input: the same kinds as a spec's value, in the question's family
    (lambda: _sweep("overhead=1K:8K"), errors.TypeMismatch, errors.SolveError,
     {"expected": "memory", "found": "a count"}),
    (lambda: _sweep("b=1GiB:1GiB"), errors.TypeMismatch, errors.SolveError, {"expected": "a count", "found": "memory"}),
    (lambda: _sweep("overhead=-8GiB:8GiB:4GiB"), errors.InvalidValue, errors.SolveError,
     {"name": "overhead", "value": -8 * 2**30, "expected": "at least 0"}),
    (lambda: _sweep("b=1:3:0.5"), errors.InvalidValue, errors.SolveError,
     {"name": "b", "value": sympy.Rational(1, 2), "expected": "a whole number"}),
    (lambda: _sweep("b=1.5:4"), errors.InvalidValue, errors.SolveError,
     {"name": "b", "value": sympy.Rational(3, 2), "expected": "a whole number"}),
    (lambda: _sweep("tp=1:8"), errors.RequirementNotMet, errors.SolveError, {"values": {"tp": 3}}),
    # the input named in a sweep's range: the kind focus raises, with its facts, at the range
    (lambda: _sweep("nosuch=1:2"), errors.UnknownName, errors.SolveError, {"name": "nosuch"}),
    (lambda: _sweep("seq_lenth=1:2"), errors.UnknownName, errors.SolveError,
     {"name": "seq_lenth", "suggestion": "seq_length"}),
    (lambda: _sweep("flash_attention=0:1"), errors.WrongKind, errors.SolveError,
     {"name": "flash_attention", "actual": "bool", "wanted": "a number"}),
    (lambda: _sweep("dtype_bytes=1:2"), errors.WrongKind, errors.SolveError,
     {"name": "dtype_bytes", "actual": "table"}),
    (lambda: _sweep("lora_rank=1:2", "total_inference"), errors.NoDependence, errors.SolveError,
     {"target": "total_inference", "name": "lora_rank"}),
])
def test_a_questions_mistake_is_its_kind_in_its_family_with_its_facts(call, kind, family, facts):
    error = _raised(call)
    assert isinstance(error, kind) and isinstance(error, family)
    assert {k: error.facts()[k] for k in facts} == facts


def test_an_unmet_requirement_carries_the_values_it_tested():
    error = _raised(lambda: vram_eval.evaluate(vram_eval.load(LLAMA, ["kv_heads=24"])))
    assert error.facts()["values"]["kv_heads"] == 24 and error.facts()["rule"].kind == "requirement"
