"""The formula language: text → exact SymPy, built from the parse tree."""

import pytest
from sympy import (Eq, Ge, Gt, Integer, Le, Lt, Max, Min, Mod, Ne, Piecewise, Rational, Symbol, ceiling, floor,
                   log, sqrt)
from sympy.logic.boolalg import And, Not, Or, true

from vram_eval import parse_formulas
from vram_eval.symbols import Lookup, Member, Table, Text, TextEq, TextSet

a, b, c, x, y = (Symbol(n) for n in "abcxy")


def expr(text):
    """The expression of `x = TEXT`."""
    (rule,) = parse_formulas(f"x = {text}").rules
    return rule.expr


# (text, expected SymPy) — precedence, unary minus, powers, literals, conditionals, functions
CASES = [
    ("1 + 2 * 3", Integer(7)),
    ("a + b * c", a + b * c),
    ("(a + b) * c", (a + b) * c),
    ("a - b - c", a - b - c),
    ("a / b / c", a / b / c),
    ("-a^2", -(a**2)),
    ("-2^2", Integer(-4)),
    ("2^-1", Rational(1, 2)),
    ("2^3^2", Integer(512)),  # right-associative
    ("a ** b", a**b),
    ("a ^ b", a**b),
    ("--a", a),
    ("+a", a),
    ("7 % 3", Integer(1)),
    ("a % b", Mod(a, b)),
    ("13e9 * 2", Integer(26_000_000_000)),
    ("0.5", Rational(1, 2)),
    (".25", Rational(1, 4)),
    ("1.5e-3", Rational(3, 2000)),
    ("4.127 / 8", Rational(4127, 8000)),
    ("500 MiB", Integer(500 * 2**20)),
    ("24GB", Integer(24 * 10**9)),
    ("2GiB", Integer(2 * 2**30)),
    ("1.5 TiB", Integer(3 * 2**39)),
    ("2 KiB + 1 kB", Integer(2048 + 1000)),
    ("a * 1 GiB", a * 2**30),
    ("x if a > b else y", Piecewise((x, Gt(a, b)), (y, true))),
    ("x if a >= 1 and b <= 2 else y", Piecewise((x, And(Ge(a, 1), Le(b, 2))), (y, true))),
    ("x if a < 1 or not c else y", Piecewise((x, Or(Lt(a, 1), Not(c))), (y, true))),
    ("x if a == b else y", Piecewise((x, TextEq(a, b)), (y, true))),  # names may hold strings
    ("x if a + 1 == b else y", Piecewise((x, Eq(a + 1, b)), (y, true))),
    ("x if a != 3 else y", Piecewise((x, Ne(a, 3)), (y, true))),
    ("1 if a > 0 else 2 if a < 0 else 3", Piecewise((1, Gt(a, 0)), (Piecewise((2, Lt(a, 0)), (3, true)), true))),
    ('x if c == "adamw" else y', Piecewise((x, TextEq(c, Text("adamw"))), (y, true))),
    ('x if c != "sgd" else y', Piecewise((x, Not(TextEq(c, Text("sgd")))), (y, true))),
    ('1 if "q" in c else 0', Piecewise((1, Member(Text("q"), c)), (0, true))),
    ('1 if "q" not in c else 0', Piecewise((1, Not(Member(Text("q"), c))), (0, true))),
    ("min(a, b, 3)", Min(a, b, 3)),
    ("max(a, b)", Max(a, b)),
    ("ceil(a / b)", ceiling(a / b)),
    ("floor(a)", floor(a)),
    ("sqrt(a)", sqrt(a)),
    ("log(a)", log(a)),
    ("log(a, 2)", log(a, 2)),
    ("t[k]", Lookup(Symbol("t"), Symbol("k"))),
    ('t["fp16"]', Lookup(Symbol("t"), Text("fp16"))),
    ('["q", "v"]', TextSet(Text("q"), Text("v"))),
]


@pytest.mark.parametrize("text, expected", CASES, ids=[c[0] for c in CASES])
def test_expression(text, expected):
    assert expr(text) == expected


def test_numbers_are_exact_rationals_never_floats():
    assert expr("0.1 + 0.2") == Rational(3, 10)
    assert not expr("0.1 + 0.2").atoms(__import__("sympy").Float)


def test_table_keys_are_names_or_strings():
    (rule,) = parse_formulas('dtype_bytes [bytes] = { fp32: 4, "a100-80gb": 2, int4: 0.5, }').rules
    assert rule.kind == "table" and rule.unit == "bytes"
    assert isinstance(rule.expr, Table)
    assert rule.expr.entries == {"fp32": 4, "a100-80gb": 2, "int4": Rational(1, 2)}


def test_input_declaration_with_aliases_unit_default_and_doc():
    (rule,) = parse_formulas('input h (hidden_size, d_model) [count] = 4 * a "hidden size"').rules
    assert (rule.kind, rule.name, rule.aliases, rule.unit, rule.doc) == (
        "input", "h", ("hidden_size", "d_model"), "count", "hidden size")
    assert rule.expr == 4 * a


def test_input_without_default():
    (rule,) = parse_formulas("input L").rules
    assert rule.kind == "input" and rule.expr is None


def test_definition_doc_before_or_after_the_expression():
    first, second = parse_formulas('w [bytes] "weights" = P * 2\nv = P "doc after"').rules
    assert (first.unit, first.doc, first.expr) == ("bytes", "weights", 2 * Symbol("P"))
    assert second.doc == "doc after"


def test_statement_continues_on_indented_lines_and_inside_brackets():
    rules = parse_formulas("w =\n    a +\n    b\nv = (a +\nb)\n# comment\n\nu = 1").rules
    assert [r.expr for r in rules] == [a + b, a + b, 1]


def test_comment_block_above_a_statement_is_kept_as_its_notes():
    (rule,) = parse_formulas("# Korthikanti et al. 2022\n# Table 2\nact = s * b").rules
    assert rule.comment == "Korthikanti et al. 2022\nTable 2"


def test_requirement():
    f = parse_formulas('require a > 0 "a must be positive"')
    assert not f.rules
    (req,) = f.requirements
    assert req.expr == Gt(a, 0) and req.doc == "a must be positive"


def test_the_paper_formula_as_written():
    s, h, L = Symbol("s"), Symbol("h"), Symbol("L")
    (rule,) = parse_formulas("activation = s*b*h*(34 + 5*a*s/h)*L").rules
    assert rule.expr == s * b * h * (34 + 5 * a * s / h) * L


def test_locations_are_kept():
    rules = parse_formulas("\n\n  w = 1\nv = 2", path="f.formula").rules
    assert (rules[0].location.path, rules[0].location.line, rules[0].location.column) == ("f.formula", 3, 3)
    assert rules[1].location.line == 4
