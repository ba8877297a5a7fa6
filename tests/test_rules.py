"""The RuleSet: free names are inputs, overrides, aliases, order, variants."""

import json

import pytest

import vram_eval
from vram_eval.rules import RuleSet

from conftest import evaluate, value


def build(*texts, user=()):
    files = [vram_eval.parse_formulas(t, path=f"b{i}.formula", builtin=True) for i, t in enumerate(texts)]
    files += [vram_eval.parse_formulas(t, path=f"u{i}.formula") for i, t in enumerate(user)]
    return RuleSet.build(files)


def test_free_names_are_inputs():
    rs = build("w = P * bytes_per_param")
    assert rs.free == {"P", "bytes_per_param"}
    assert set(rs.inputs) == {"P", "bytes_per_param"} and rs.outputs == ["w"]


def test_order_puts_dependencies_first():
    rs = build("c = b + 1\nb = a * 2\ninput a = 3")
    assert rs.order.index("a") < rs.order.index("b") < rs.order.index("c")


def test_user_file_overrides_a_builtin_and_it_is_recorded():
    rs = build("w = P * 2", user=["w = P * 4"])
    assert str(rs.rules["w"].expr) == "4*P"
    (new, old), = rs.overridden
    assert (new.where, old.where) == ("u0.formula:1", "b0.formula:1")


def test_two_user_files_defining_the_same_name_is_an_error():
    with pytest.raises(vram_eval.FormulaError, match="defined twice"):
        build("x = 1", user=["w = 1", "w = 2"])


def test_aliases_resolve_in_specs_and_in_expressions():
    rs = build("input h (hidden_size)\nw = hidden_size * 2")
    assert rs.resolve("hidden_size") == "h"
    assert str(rs.rules["w"].expr) == "2*h"


def test_allowed_values_are_learnt_from_tables_and_comparisons():
    rs = build('t = {fp32: 4, fp16: 2}\nw = t[d]\nx = 1 if opt == "adamw" else 2\ny = 1 if "q" in tg else 0')
    assert rs.allowed_values("d") == {"fp32", "fp16"}
    assert rs.allowed_values("opt") == {"adamw"}
    assert rs.allowed_values("tg") == {"q"}


def test_unbound_outputs_are_unavailable_naming_the_missing_inputs():
    result = evaluate(None, "b=1")
    assert "params" in result.missing
    assert {"h", "L"} <= set(result.missing["params"])
    with pytest.raises(vram_eval.BindingError) as info:
        result.require("params")
    assert "'params' cannot be computed" in info.value.message and "'h'" in info.value.message


@pytest.mark.parametrize("formula,flag,value", [
    ("w = flag and u > 0", False, False),             # and: decided by its first operand
    ("w = flag or u > 0", True, True),                # or: likewise
    ("w = 3 if flag else u", True, 3),                # a branch not taken
], ids=["and", "or", "branch"])
def test_an_unset_name_the_value_does_not_reach_leaves_it_decided(formula, flag, value):
    """Mamba models have no attention heads: what needs `a` only behind an and/or or a branch
    not taken is still computed (the inference weights of falcon-mamba)."""
    from vram_eval.forward import plain_values

    values, missing = plain_values(build(formula + "\ninput flag [bool] = true"), {"flag": flag})
    assert values["w"] == value and "w" not in missing and "u" in missing


def test_an_expansion_never_builds_a_branch_its_choices_rule_out():
    """`bytes[d] if d != "auto" else 2` at d = "auto": the lookup in the branch not taken has no
    key "auto"; expanding (explain, sensitivity, solve's closed form) drops that branch first."""
    from sympy import Symbol

    from vram_eval.symbols import Text

    rs = build('input d [text] = "auto"\nbytes = { fp32: 4, bf16: 2 }\nw = n * (bytes[d] if d != "auto" else 2)')
    table = rs.rules["bytes"].expr
    assert rs.expand("w", fixed={"d": Text("auto"), "bytes": table}) == 2 * Symbol("n")
    assert rs.expand("w", fixed={"d": Text("fp32"), "bytes": table}) == 4 * Symbol("n")


def test_a_variant_file_is_chosen_by_its_input():
    gpt = evaluate(None, "arch=gpt", "h=64", "L=2", "a=4", "V=100", "s_max=32")
    llama = evaluate(None, "arch=llama", "h=64", "L=2", "a=4", "V=100", "f=128")
    assert value(gpt, "mlp_matrices") == 2 and value(llama, "mlp_matrices") == 3


def test_an_unknown_variant_names_the_files():
    with pytest.raises(vram_eval.SpecError) as info:
        evaluate(None, "arch=lama")
    assert "gpt, llama" in info.value.message and "did you mean 'llama'" in info.value.hint


# --- expectations: soft requirements ---------------------------------------------------------
def test_an_expectation_that_does_not_hold_is_a_warning_not_an_error(tmp_path, cli):
    """`expect COND "doc"`: the answer stands, and says what the formulas expected."""
    status, out, err = cli("specs/llama2-7b.toml", "--set", "s=8192")
    assert status == 0 and err == ""
    assert "warning: beyond the model's context length s_max (here s = 8,192, s_max = 4,096)" in out


def test_an_expectation_that_holds_says_nothing(cli):
    _, out, _ = cli("specs/llama2-7b.toml", "--format", "json")
    assert json.loads(out)["warnings"] == []


def test_a_users_formula_file_can_add_an_expectation(tmp_path, cli):
    mine = tmp_path / "mine.formula"
    mine.write_text('expect b <= 8 "more than 8 sequences per GPU: check the data loader"\n')
    _, out, _ = cli("specs/llama2-7b.toml", "--formulas", mine, "--set", "b=16", "--format", "json")
    assert json.loads(out)["warnings"] == ["more than 8 sequences per GPU: check the data loader (here b = 16)"]


def test_an_expectation_is_not_a_requirement_of_solve(cli):
    """solve may answer beyond s_max; the note says so (the expectation at the answer)."""
    _, out, _ = cli("solve", "specs/llama2-7b.toml", "--for", "s", "--budget", "24GiB", "--target",
                    "allocated_inference")
    assert ": 22,736\n" in out.splitlines()[0] + "\n"
    assert "note: beyond the model's context length s_max (here s = 22,736, s_max = 4,096)" in out


def test_in_order_is_the_order_restricted_to_the_names():
    """RuleSet.in_order (the few names a walk or a memory check visits): the names the rule set
    orders, in its order, whatever order they were given in; others are left out."""
    import random

    ruleset = vram_eval.load(None, []).ruleset
    order = ruleset.order
    pick = random.Random(12)
    for size in (0, 1, 2, 7, 50, len(order) // 3):
        names = pick.sample(order, size) + ["not_a_name"]
        assert ruleset.in_order(names) == [n for n in order if n in set(names)]
    assert ruleset.in_order(iter(reversed(order))) == order
