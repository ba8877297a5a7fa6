"""Names SymPy reserves (N, E, I, S, Q, O, beta, gamma, lambda) are plain user symbols."""

from sympy import Symbol

import vram_eval
from vram_eval.symbolic import evaluate_values

TEXT = "total = N + E * I - S / Q + O^2 + beta * gamma + lambda + pi + zeta\n"
VALUES = {"N": 2, "E": 3, "I": 5, "S": 8, "Q": 4, "O": 3, "beta": 7, "gamma": 11, "lambda": 13, "pi": 1, "zeta": 100}


def test_reserved_names_are_plain_symbols():
    (rule,) = vram_eval.parse_formulas(TEXT).rules
    assert {s.name for s in rule.expr.free_symbols} == set(VALUES)
    assert all(type(s) is Symbol for s in rule.expr.free_symbols)


def test_reserved_names_evaluate_to_plain_arithmetic():
    ruleset = vram_eval.RuleSet.build([vram_eval.parse_formulas(TEXT)])
    from sympy import Integer

    values, missing = evaluate_values(ruleset, {k: Integer(v) for k, v in VALUES.items()})
    v = VALUES
    expected = v["N"] + v["E"] * v["I"] - v["S"] // v["Q"] + v["O"] ** 2 + v["beta"] * v["gamma"] + v["lambda"] + v["pi"] + v["zeta"]
    assert values["total"] == expected == 2 + 15 - 2 + 9 + 77 + 13 + 1 + 100
    assert not missing


def test_reserved_names_through_the_command_line(cli, tmp_path):
    f = tmp_path / "names.formula"
    f.write_text(TEXT)
    sets = [f"--set={k}={v}" for k, v in VALUES.items()]
    spec = tmp_path / "empty.toml"
    spec.write_text("")
    status, out, err = cli(spec, "--formulas", f, "--output", "total", "--format", "json", *sets)
    assert status == 0, err
    import json

    assert json.loads(out)["outputs"]["total"] == 215
