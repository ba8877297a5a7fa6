"""The questions' mistakes are kinds with facts too (errors.py): the same kind wherever it happens."""

import pytest

import vram_eval
from conftest import SPECS
from vram_eval import errors
from vram_eval.explanation import explain
from vram_eval.inverse import parse_budget, solve

LLAMA = str(SPECS / "llama2-7b.toml")


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
])
def test_a_questions_mistake_is_its_kind_in_its_family_with_its_facts(call, kind, family, facts):
    error = _raised(call)
    assert isinstance(error, kind) and isinstance(error, family)
    assert {k: error.facts()[k] for k in facts} == facts


def test_an_unmet_requirement_carries_the_values_it_tested():
    error = _raised(lambda: vram_eval.evaluate(vram_eval.load(LLAMA, ["kv_heads=24"])))
    assert error.facts()["values"]["kv_heads"] == 24 and error.facts()["rule"].kind == "requirement"
