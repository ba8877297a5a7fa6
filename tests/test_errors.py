"""Bad formula text → a located error of the project's own type, never a traceback."""

import pytest

import vram_eval
from vram_eval import FormulaError, FormulaSyntaxError
from vram_eval.rules import RuleSet

# (text, error type, line, column, words the message must contain)
CASES = [
    ("a = (1 +", FormulaSyntaxError, 1, 5, "never closed"),
    ("a = 1 +\nb = 2", FormulaSyntaxError, 1, 8, "ends too early"),
    ("a = b c", FormulaSyntaxError, 1, 7, "unexpected 'c'"),
    ("a = 1;", FormulaSyntaxError, 1, 6, "';'"),
    ("a = 1 @ 2", FormulaSyntaxError, 1, 7, "'@'"),
    ("a = f(1,", FormulaSyntaxError, 1, 6, "never closed"),
    ("a = 1\n  b = 2", FormulaSyntaxError, 2, 3, "unexpected 'b'"),
    ('a = "open', FormulaSyntaxError, 1, 5, "unexpected character"),
    ("= 3", FormulaSyntaxError, 1, 1, "unexpected '='"),
    ("input", FormulaSyntaxError, 1, 6, "ends too early"),
    ('a = __import__("os").system("rm -rf /")', FormulaSyntaxError, 1, 21, "'.'"),
    ("a = " + "(" * 100 + "1" + ")" * 100, FormulaSyntaxError, 1, 69, "nested"),
    ("a = sqr(b)", FormulaError, 1, 5, "unknown function 'sqr'"),
    ("a = __import__(b)", FormulaError, 1, 5, "unknown function '__import__'"),
    ("a = eval(b)", FormulaError, 1, 5, "unknown function 'eval'"),
    ("a = max()", FormulaError, 1, 5, "max() takes 1 or more arguments"),
    ("a = sqrt(1, 2)", FormulaError, 1, 5, "sqrt() takes 1 argument"),
    ("a = sqrt(-4)", FormulaError, 1, 5, "no real value"),
    ("w [byte] = 1", FormulaError, 1, 4, "unknown unit"),
    ("a = 1 / 0", FormulaError, 1, 7, "division by zero"),
    ("a = 10^10^10", FormulaError, 1, 7, "too large"),
    ("a = 1e999", FormulaError, 1, 5, "out of range"),
    ('a = "fp16" + 1', FormulaError, 1, 5, "cannot be used as a number"),
    ("a = (b < c) + 1", FormulaError, 1, 5, "condition cannot be used as a number"),
    ("a = 1 if 2 else 3", FormulaError, 1, 5, "expected a condition"),
    ('a = 1 if "x" < "y" else 2', FormulaError, 1, 10, "strings cannot be compared with <"),
    ("t = {a: 1, a: 2}", FormulaError, 1, 12, "appears twice"),
    ("t = {a: x}", FormulaError, 1, 6, "must be numbers"),
    ("a = 1 if 2 in t else 0", FormulaError, 1, 10, '"in"'),
]


@pytest.mark.parametrize("text, kind, line, column, words", CASES, ids=[c[0][:40] for c in CASES])
def test_error_is_located(text, kind, line, column, words):
    with pytest.raises(kind) as info:
        vram_eval.parse_formulas(text, path="bad.formula")
    err = info.value
    assert (err.path, err.line, err.column) == ("bad.formula", line, column), err.render()
    assert words in err.message


def ruleset(*texts):
    return RuleSet.build([vram_eval.parse_formulas(t, path=f"f{i}.formula", builtin=True) for i, t in enumerate(texts)])


def test_duplicate_definition_names_both_places():
    with pytest.raises(FormulaError) as info:
        ruleset("a = 1\nb = 2", "\n\na = 3")
    err = info.value
    assert (err.path, err.line) == ("f1.formula", 3)
    assert "'a' is defined twice" in err.message
    assert any("f0.formula:1" in n for n in err.notes)


def test_cycle_prints_the_whole_cycle_with_locations():
    with pytest.raises(FormulaError) as info:
        ruleset("a = b + 1\nb = c * 2\nc = a", "d = 1")
    err = info.value
    assert "a → b → c → a" in err.message
    assert [n.split(":")[1] for n in err.notes] == ["1", "2", "3"]


def test_self_reference_is_a_cycle():
    with pytest.raises(FormulaError, match="a → a"):
        ruleset("a = a + 1")


def test_alias_clash():
    with pytest.raises(FormulaError, match="alias 'x'"):
        ruleset("input a (x)\ninput b (x)")


def test_rendered_syntax_error_exactly():
    with pytest.raises(FormulaSyntaxError) as info:
        vram_eval.parse_formulas("weights = params * (2 +\n", path="my.formula")
    assert info.value.render() == (
        "my.formula:1:20: error: '(' is never closed\n"
        "    weights = params * (2 +\n"
        "                       ^\n"
        "  close the bracket on this line or an indented line below it\n"
    )


def test_rendered_unknown_function_exactly():
    with pytest.raises(FormulaError) as info:
        vram_eval.parse_formulas("# memory\nw = sqr(P) * 2\n", path="my.formula")
    assert info.value.render() == (
        "my.formula:2:5: error: unknown function 'sqr'\n"
        "    w = sqr(P) * 2\n"
        "        ^^^\n"
        "  did you mean 'sqrt'?\n"
    )


def test_rendered_cycle_exactly():
    with pytest.raises(FormulaError) as info:
        ruleset("a = b + 1\nb = a * 2")
    assert info.value.render() == (
        "f0.formula:1:1: error: these definitions depend on each other in a cycle: a → b → a\n"
        "    a = b + 1\n"
        "    ^\n"
        "  f0.formula:1: a = b + 1\n"
        "  f0.formula:2: b = a * 2\n"
        "  one of them must be given a value that does not depend on the others\n"
    )


@pytest.mark.parametrize("middle", ["x" * 10_000_000, "1" * 10_000_000], ids=["name", "digits"])
def test_a_ten_megabyte_line_is_an_error_shown_as_a_window(middle):
    text = "a = " + middle + " @"
    with pytest.raises(vram_eval.EngineError) as info:
        vram_eval.parse_formulas(text, path="big.formula")
    rendered = info.value.render()
    assert info.value.line == 1
    assert len(rendered) < 400 and "..." in rendered


def test_errors_are_one_hierarchy():
    for kind in (vram_eval.FormulaError, vram_eval.FormulaSyntaxError, vram_eval.SpecError, vram_eval.BindingError,
                 vram_eval.EvaluationError, vram_eval.SolveError):
        assert issubclass(kind, vram_eval.EngineError)
