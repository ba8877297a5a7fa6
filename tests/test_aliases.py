"""Names users already type (issue 13.5; specs/catalog/aliases.toml): the ecosystem's names of
values and inputs are accepted wherever a value is read, as vram-eval's own."""

import pytest

import vram_eval
from vram_eval.errors import InvalidValue, SpecError
from vram_eval.spec import aliases

from conftest import SPECS

LLAMA = str(SPECS / "llama2-7b.toml")


def _inputs(*sets, spec=LLAMA):
    return vram_eval.evaluate(vram_eval.load(spec, list(sets))).inputs


@pytest.mark.parametrize("written, name, value", [
    ("weight_dtype=bfloat16", "weight_dtype", "bf16"),
    ("weight_dtype=torch.float16", "weight_dtype", "fp16"),
    ("inference_dtype=float8_e4m3fn", "inference_dtype", "fp8"),
    ("kv_dtype=half", "kv_dtype", "fp16"),
    ("autocast_dtype=bfloat16", "autocast_dtype", "bf16"),
    ("optimizer_state_dtype=float32", "optimizer_state_dtype", "fp32"),
    ("lora_targets=q_proj,v_proj", "lora_targets", ("q", "v")),
    ("lora_targets=q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", "lora_targets",
     ("q", "k", "v", "o", "gate", "up", "down")),
    ("lora_targets=all-linear", "lora_targets", ("q", "k", "v", "o", "gate", "up", "down")),
    ("lora_targets=q,q_proj,up_proj", "lora_targets", ("q", "up")),  # repeats dropped, order kept
    ("target_modules=gate_proj", "lora_targets", ("gate",)),  # an input alias and a value alias
    ("gradient_checkpointing=true", "recompute", "full"),
    ("gradient_checkpointing=false", "recompute", "none"),
])
def test_the_ecosystems_names_bind_vram_evals_values(written, name, value):
    assert _inputs(written)[name] == value


def test_the_same_names_in_a_spec_file(tmp_path):
    spec = tmp_path / "mine.toml"
    spec.write_text(SPECS.joinpath("llama2-7b.toml").read_text()
                    + '\n[training]\ngradient_checkpointing = true\nlora_targets = ["q_proj", "v_proj", "o_proj"]\n')
    spec.write_text(spec.read_text().replace('weight_dtype = "fp16"', 'weight_dtype = "bfloat16"'))
    inputs = _inputs(spec=str(spec))
    assert (inputs["recompute"], inputs["lora_targets"], inputs["weight_dtype"]) == ("full", ("q", "v", "o"), "bf16")


def test_an_aliased_value_gives_the_same_memory_as_vram_evals_own():
    ours = vram_eval.evaluate(vram_eval.load(LLAMA, ["weight_dtype=bf16", "lora_targets=q,k,v,o", "recompute=full"]))
    theirs = vram_eval.evaluate(vram_eval.load(LLAMA, ["weight_dtype=bfloat16", "lora_targets=q_proj,k_proj,v_proj,o_proj",
                                                       "gradient_checkpointing=true"]))
    assert ours.outputs == theirs.outputs


@pytest.mark.parametrize("written, words", [
    ("gradient_checkpointing=maybe", "'gradient_checkpointing' (vram-eval's recompute) takes true, false, not 'maybe'"),
    ("weight_dtype=bfloat17", "'bfloat17' is not one of"),
    ("lora_targets=c_attn", "'c_attn' is not one of"),  # GPT-2's fused q,k,v: one adapter, not three
    ("recompute=bfloat16", "'bfloat16' is not one of"),  # an alias binds only inputs that take its value
])
def test_a_name_that_stands_for_nothing_there_is_a_located_error(written, words):
    with pytest.raises(InvalidValue) as info:
        vram_eval.load(LLAMA, [written])
    assert isinstance(info.value, SpecError) and words in info.value.message
    assert info.value.location.path == "--set"


def test_every_alias_stands_for_values_some_input_takes():
    ruleset = vram_eval.load(LLAMA).ruleset
    taken = set().union(*(ruleset.allowed_values(n) or () for n in ruleset.inputs))
    for alias, meant in aliases()["values"].items():
        assert set(meant if isinstance(meant, list) else [meant]) <= taken, alias
        assert alias not in taken, f"{alias} is a value of vram-eval's own: it would never be translated"
    for alias, rule in aliases()["inputs"].items():
        assert ruleset.resolve(alias) is None and ruleset.resolve(rule["sets"]) == rule["sets"], alias
        assert set(rule["values"].values()) <= ruleset.allowed_values(rule["sets"]), alias
