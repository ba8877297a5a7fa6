"""engine/vectorise.py: outputs on NumPy arrays without generating code (issue 9).

The vectorised values must equal exact evaluation (Focus.at_value), a formula's
strings and names must never become code, and anything the evaluator does not
cover must be a located error, never a traceback.
"""

from __future__ import annotations

import builtins
import functools
import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sympy import Abs, Integer, Max, Min, Mod, Piecewise, Rational, Symbol, ceiling, floor

import vram_eval
from vram_eval.errors import LimitExceeded, Location, SolveError, TypeMismatch, UnboundInput
from vram_eval.focus import focus
from vram_eval.regimes import PEAKS, shown
from vram_eval.symbols import Lookup, Member, Table, Text, TextEq, TextSet
from vram_eval.grid import parse_range, sweep
from vram_eval.vectorise import Vectorised, evaluate_array, evaluate_condition

from conftest import SPECS

TOTALS = [job.total for job in shown("transformers")]  # the engines' jobs: tests/test_serving.py
TARGETS = TOTALS + [PEAKS[total][0] for total in TOTALS]  # total_training ... peak_inference
POINTS = {"s": [1, 2, 3, 7, 100, 511, 2048, 4097, 32768, 131071, 1_000_003],
          "b": [1, 2, 3, 5, 8, 64, 999, 4096]}

x = Symbol("x")


def _agrees(value: float, exact) -> bool:
    """The float equals the exact value: exactly for whole numbers below 2^53, else to 1e-12."""
    if isinstance(exact, (int, Fraction)):  # the plain evaluator's value
        if exact.denominator == 1 and abs(exact) < 2**53:
            return value == int(exact)
        try:
            near = float(exact)
        except OverflowError:  # beyond float64: the array holds inf
            near = math.inf if exact > 0 else -math.inf
        return math.isclose(value, near, rel_tol=1e-12)
    assert exact.is_number and exact.is_finite, exact  # a SymPy number (where SymPy worked it out)
    if exact.is_Integer and abs(exact) < 2**53:
        return value == int(exact)
    return math.isclose(value, float(exact), rel_tol=1e-12)


# --- every built-in spec, every regime total and peak, swept over s and b ------------------


@functools.lru_cache(maxsize=None)
def _builtin_problem(spec):
    """A built-in spec's problem, loaded once for this file's tests: the functions its questions
    focus on (and their SymPy expressions) are worked out once, and asked by two tests."""
    return vram_eval.load(str(spec))


@pytest.mark.parametrize("spec", sorted(SPECS.glob("*.toml")), ids=lambda p: p.stem)
def test_vectorised_equals_exact_for_every_builtin_spec(spec):
    problem = _builtin_problem(spec)
    for name, points in POINTS.items():
        xs = np.array(points, dtype=float)
        for target in TARGETS:
            fx = focus(problem, name, target)
            values = evaluate_array(fx.expr, fx.symbol, xs)
            for point, value in zip(points, values):
                exact = fx.at_value(Integer(point))
                assert _agrees(value, exact), (spec.stem, target, name, point, value, exact)
            # the sweep's grid knowledge (whole, ascending) changes nothing
            fast = Vectorised(fx.symbol, xs, exprs=[fx.expr], whole=True, ascending=True).number(fx.expr)
            assert np.array_equal(fast, values)


def test_sweep_is_exact_where_it_says_so():
    problem = vram_eval.load(str(SPECS / "llama3-70b.toml"))
    result = sweep(problem, parse_range("s=1:100000:997"), TARGETS)
    for target in TARGETS:
        assert result.exact[target], target
        fx = focus(problem, "s", target)
        for k in (0, 1, 50, len(result.xs) - 1):
            assert int(result.columns[target][k]) == int(fx.at_value(Integer(int(result.xs[k])))), target


# --- each node type ---------------------------------------------------------------------


XS = np.array([-3.0, -1.0, 0.0, 0.5, 1.0, 2.0, 7.0, 49.0, 98.0, 1e6])


NODE_EXPRS = [
    x + 3, 3 * x - Rational(7, 2), x**2, x**3, x ** -2, 1 / x, sympy.sqrt(x), x ** Rational(3, 2), 2**x,
    Mod(x, 3), Mod(x, -3), Mod(x, x - 7), Mod(3 * x, 2 * x), floor(x / 49), ceiling(x / 49),
    floor(x / 3 + Rational(1, 3)), Abs(x - 2),
    Min(x, 2, 5 - x), Max(x, 2), sympy.log(x), sympy.log(x, 2), sympy.log(x, 10),
    Piecewise((x, x > 1), (2 * x, x > -2), (7, True)), Piecewise((x, x < 1)),
    x * Piecewise((1, sympy.Eq(Mod(x, 2), 0)), (3, True)), Integer(5), Rational(1, 3), sympy.Float(2.5),
    sympy.S.Half * x, sympy.S.NegativeOne * x, sympy.S.Zero * x + 1, sympy.zoo, sympy.oo, sympy.nan,
    sympy.sqrt(-8) + x, sympy.log(-2) + x, sympy.pi * x,
]


@pytest.mark.parametrize("expr", NODE_EXPRS, ids=str)
def test_each_node_type_equals_exact(expr):
    values = evaluate_array(expr, x, XS)
    assert values.shape == XS.shape and values.dtype == np.float64
    for point, value in zip(XS, values):
        try:
            exact = expr.xreplace({x: Rational(str(point)) if point != int(point) else Integer(int(point))})
        except ZeroDivisionError:  # SymPy's Mod by 0
            exact = sympy.nan
        if exact.is_number and exact.is_real and exact.is_finite:
            assert _agrees(value, exact), (point, value, exact)
        else:  # no real value (1/0, log of a negative, a complex root): NaN or inf, never an exception
            assert not math.isfinite(value), (point, value, exact)


CONDITIONS = [
    x > 1, x >= 1, x < 1, x <= 1, sympy.Eq(x, 1), sympy.Ne(x, 1), sympy.Gt(1, x), sympy.Le(1, x),
    sympy.And(x > 0, x < 10), sympy.Or(x < 0, x > 10), sympy.Not(x > 0), sympy.And(x > 0, sympy.true),
    sympy.Or(x > 0, sympy.false), sympy.true, sympy.false, sympy.Eq(x, floor(x)), sympy.Le(x, x, evaluate=False),
    sympy.Eq(Mod(40, x), 0),
]


@pytest.mark.parametrize("cond", CONDITIONS, ids=str)
def test_conditions_equal_exact(cond):
    sorted_xs = np.sort(XS)
    for ascending in (False, True):
        got = evaluate_condition(cond, x, sorted_xs) if not ascending else \
            Vectorised(x, sorted_xs, ascending=True).condition(cond)
        assert got.dtype == np.bool_ and got.shape == sorted_xs.shape
        for point, value in zip(sorted_xs, got):
            try:
                exact = cond.xreplace({x: Rational(str(point))})
            except ZeroDivisionError:  # 40 % 0: the requirement does not hold (Focus.feasible)
                exact = sympy.false
            assert bool(value) == bool(exact), (point, value, exact)


def test_overflow_is_inf_without_warnings_or_exceptions():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isinf(evaluate_array(Integer(10) ** 400 * x, x, np.array([1.0, 2.0]))).all()
        assert np.isinf(evaluate_array(x ** 5000, x, np.array([10.0])))[0]
        assert np.isinf(evaluate_array(2**x, x, np.array([2000.0])))[0]
        assert np.isnan(evaluate_array(Mod(x, x - 3), x, np.array([3.0])))[0]
        assert evaluate_array(Rational(10**400, 10**399) * x, x, np.array([1.0]))[0] == 10.0


def test_the_grid_is_never_written():
    xs = np.arange(1.0, 6.0)
    before = xs.copy()
    for expr in (x, floor(x), x + 1, 2 * x, Piecewise((x, x > 2), (0, True)), Max(x, 3), sympy.sqrt(x)):
        out = Vectorised(x, xs, exprs=[expr], whole=True, ascending=True).number(expr)
        out += 1  # the caller's array is its own
        assert np.array_equal(xs, before), expr


def test_shared_subtrees_are_computed_once_and_kept_intact():
    inner = x**2 + 3 * x
    expr = floor(inner / 7) + inner * 2 + Max(inner, 10)
    got = evaluate_array(expr, x, XS)
    for point, value in zip(XS, got):
        assert _agrees(value, expr.xreplace({x: Rational(str(point))}))


# --- what is not covered is a located error -----------------------------------------------


WHERE = Location("sweep", None, 3, "s=1:3", 3)


NUMBER = TypeMismatch[SolveError]


# (expression, words of the message, kind, its attributes)
ERRORS = [
    (Text("__import__('os').system('true')"), "the string", NUMBER, {"expected": "a number", "found": "a string"}),
    (Piecewise((1, TextEq(Lookup(Table("t", [("a", 1)]), x), Text("fp16"))), (2, True)), "a table lookup", NUMBER,
     {"expected": "a number", "found": "a table lookup"}),
    (Lookup(Table("t", [("a", 1)]), x + 1), "a table lookup", NUMBER, {"found": "a table lookup"}),
    (Piecewise((1, Member(Text("q"), x + 1)), (2, True)), "a list membership test", NUMBER,
     {"found": "a list membership test"}),
    (TextSet(Text("a")), "a list of strings", NUMBER, {"found": "a list of strings"}),
    (x + Symbol("y"), "the name 'y'", UnboundInput[SolveError], {"name": "pay", "missing": ("y",)}),
    (sympy.sin(x), "sin(x) (SymPy's sin)", NUMBER, {"expected": "a number", "found": "SymPy's sin"}),
    (sympy.exp(x), "SymPy's exp", NUMBER, {"found": "SymPy's exp"}),
    (sympy.E * x, "SymPy's Exp1", NUMBER, {"found": "SymPy's Exp1"}),
    (sympy.Tuple(x, x), "SymPy's Tuple", NUMBER, {"found": "SymPy's Tuple"}),
    (sympy.EulerGamma * x, "SymPy's EulerGamma", NUMBER, {"found": "SymPy's EulerGamma"}),
    (x > 1, "a true/false condition where a number is expected", NUMBER,
     {"expected": "a number", "found": "a condition"}),
    (sympy.Abs(x > 1, evaluate=False), "a true/false condition used as a number", NUMBER,
     {"expected": "a number", "found": "a condition"}),
    (Piecewise((x, x > 1), (x > 2, True)), "a conditional that mixes numbers and conditions", NUMBER,
     {"found": "numbers and conditions"}),
]


@pytest.mark.parametrize("expr, words, kind, facts", ERRORS, ids=lambda v: v if isinstance(v, str) else None)
def test_unsupported_nodes_are_located_errors_of_their_kind(expr, words, kind, facts):
    with pytest.raises(SolveError) as info:
        evaluate_array(expr, x, np.arange(3.0), WHERE, what="'pay'")
    error = info.value
    assert type(error) is kind and error.location == WHERE, error.render()
    assert {k: error.facts()[k] for k in facts} == facts
    assert words in error.message, error.message
    assert error.render().startswith("sweep: error: 'pay' cannot be computed over a range of x")


def test_a_number_as_a_condition_is_a_type_mismatch():
    with pytest.raises(TypeMismatch[SolveError], match="a number where a true/false condition is expected") as info:
        evaluate_condition(x + 1, x, np.arange(3.0))
    assert (info.value.expected, info.value.found) == ("a condition", "a number")


def test_a_tree_too_deep_is_a_located_limit():
    deep = x
    for _ in range(5000):
        deep = floor(deep, evaluate=False)
    with pytest.raises(LimitExceeded[SolveError], match="nested too deeply") as info:
        evaluate_array(deep, x, np.arange(3.0), WHERE)
    assert (info.value.what, info.value.location) == ("nesting", WHERE)


# --- hostile formula files through the command line ---------------------------------------

# {marker}: the file a payload would create. Each: formula text, [(argv, expected status, stdout fragment)].
PAYLOADS = {
    # a string compared with a value that depends on the swept input: stays symbolic (lambdify
    # recursed without end on it), reaches the sweep; a string never equals a number
    "string_compared_with_the_swept_input": (
        's2 = s + 1\n'
        'pay [bytes] = s * (1 if s2 == "__import__(\'os\').system(\'touch {marker}\')" else 2)\n'
        'pay2 [bytes] = s * (1 if s2 == \'") or __import__("os").system("touch {marker}") or ("\' else 2)\n',
        [(["sweep", "specs/llama13b.toml", "s=1:3", "--target", "pay"], 0, "s,pay\n1,2\n2,4\n3,6\n"),
         (["sweep", "specs/llama13b.toml", "s=1:3", "--target", "pay2"], 0, "s,pay2\n1,2\n2,4\n3,6\n"),
         (["sweep", "specs/llama13b.toml", "s=1:3", "--target", "pay", "--plot", "{plot}"], 0, "3,6"),
         (["solve", "specs/llama13b.toml", "--for", "s", "--budget", "1KiB", "--target", "pay", "--format", "json"],
          0, '"value": 512')]),
    # the payload in a table key, looked up with a key that depends on the swept input
    "table_key_looked_up_by_the_swept_input": (
        't [bytes] = { \'x": __import__("os").system("touch {marker}"), "y\': 4, z: 5 }\n'
        's2 = s + 1\npay [bytes] = s * t[s2]\n',
        [(["sweep", "specs/llama13b.toml", "s=1:3", "--target", "pay"], 2, None),
         (["sweep", "specs/llama13b.toml", "s=1:3", "--target", "pay", "--plot", "{plot}"], 2, None),
         (["solve", "specs/llama13b.toml", "--for", "s", "--budget", "1GiB", "--target", "pay"], 2, None)]),
    # the payload as the value of a string input, set on the command line: decided, then swept
    "payload_value_set_on_the_command_line": (
        'input mode [text] = "safe" "a string the user chooses"\n'
        'pay [bytes] = b * (1 if mode == "safe" else 3 if mode == "\') or __import__(\'os\').system(\'touch {marker}\')'
        ' or (\'" else 5)\n',
        [(["sweep", "specs/llama13b.toml", "b=1:3", "--target", "pay", "--set",
           "mode=') or __import__('os').system('touch {marker}') or ('"], 0, "b,pay\n1,3\n2,6\n3,9\n"),
         (["sweep", "specs/llama13b.toml", "b=1:3", "--target", "pay", "--plot", "{plot}", "--set",
           "mode=') or __import__('os').system('touch {marker}') or ('"], 0, "1,3\n2,6\n3,9"),
         (["solve", "specs/llama13b.toml", "--for", "b", "--budget", "1KiB", "--target", "pay", "--format", "json",
           "--set", "mode=') or __import__('os').system('touch {marker}') or ('"], 0, '"value": 341')]),
    # a doc string carrying Python reaches the plot's legend and labels
    "payload_in_a_doc_string": (
        'pay [bytes] "__import__(\'os\').system(\'touch {marker}\')" = b * 2\n',
        [(["sweep", "specs/llama13b.toml", "b=1:3", "--target", "pay", "--plot", "{plot}"], 0, "1,2\n2,4\n3,6")]),
}


@pytest.mark.parametrize("case", sorted(PAYLOADS))
def test_a_payload_in_a_formula_file_never_runs(cli, tmp_path, case):
    marker = tmp_path / "pwned"
    text, runs = PAYLOADS[case]
    mine = tmp_path / "mine.formula"
    mine.write_text(text.replace("{marker}", str(marker)))
    for k, (argv, expected, fragment) in enumerate(runs):
        plot = tmp_path / f"plot{k}.png"
        args = [a.replace("{marker}", str(marker)).replace("{plot}", str(plot)) for a in argv]
        status, out, err = cli(*args, "--formulas", mine)
        assert not marker.exists(), (args, "the payload ran")
        assert status in (expected if isinstance(expected, tuple) else (expected,)), (args, out, err)
        assert "Traceback" not in err and "internal error" not in err, err
        if status == 2:
            assert err.count("error:") == 1 and len(err.splitlines()) <= 12, err
        if fragment:
            assert fragment in out, (args, out)
        if "--plot" in args and status == 0:
            assert plot.stat().st_size > 1000


def test_no_code_is_compiled_or_executed(tmp_path):
    """sweep and solve's exhaustive search (a target that is not monotonic) run with exec,
    eval and compile taken away: lambdify could not."""
    mine = tmp_path / "wavy.formula"
    mine.write_text("wavy [bytes] = (100 - b if b < 50 else 3 * b) + floor(b / 3) * 0 \"not monotonic\"\n")
    problem = vram_eval.load(str(SPECS / "llama13b.toml"), [], [str(mine)])
    rng = parse_range("b=1:100000")
    from vram_eval.inverse import solve

    calls = []

    def forbidden(*args, **kwargs):
        calls.append(args[:1])
        raise AssertionError("code was generated and run")

    expected = sweep(problem, rng, ["wavy", "total_training"])  # imports everything needed first
    answer = solve(problem, "b", 1024, "wavy", remedies=False)
    assert answer.value == 341 and "not monotonic" in answer.notes[0]
    saved = {name: getattr(builtins, name) for name in ("exec", "eval", "compile")}
    try:
        for name in saved:
            setattr(builtins, name, forbidden)
        try:
            again, value = sweep(problem, rng, ["wavy", "total_training"]), solve(problem, "b", 1024, "wavy").value
        except AssertionError as exc:  # put Python back before pytest renders anything
            again, value = exc, None
    finally:
        for name, fn in saved.items():
            setattr(builtins, name, fn)
    assert not calls, f"exec/eval/compile called by sweep or solve: {calls}"
    assert value == 341
    assert np.array_equal(again.columns["wavy"], expected.columns["wavy"])
    assert again.exact == {"wavy": True, "total_training": True}


# --- names that NumPy, Python or lambdify's generated source also use ----------------------

NAMES = ["sin", "exp", "where", "select", "array", "numpy", "builtins", "floor", "sqrt", "amax", "nan", "inf",
         "exec", "_lambdifygenerated", "Piecewise", "math", "mpmath"]


def _names_formula(tmp_path):
    mine = tmp_path / "names.formula"
    lines = [f"input {n} [count] = {k + 1}" for k, n in enumerate(NAMES)]
    total = " + ".join(NAMES)
    lines.append(f"pay [bytes] = b * ({total}) + (b if select > 2 else 0) + ceil(where / 2) + sqrt(sin * sin)"
                 f" + max(exp, b) + floor(numpy / 4)")
    mine.write_text("\n".join(lines) + "\n")
    return mine


@pytest.mark.parametrize("swept", ["b", "sin", "where", "select", "numpy", "array", "builtins", "floor", "nan"])
def test_names_that_collide_with_numpy_sweep_like_direct_evaluation(cli, tmp_path, swept):
    mine = _names_formula(tmp_path)
    status, out, err = cli("sweep", "specs/llama13b.toml", f"{swept}=1:4", "--target", "pay", "--formulas", mine)
    assert status == 0, err
    rows = [line.split(",") for line in out.splitlines()[1:]]
    assert [int(r[0]) for r in rows] == [1, 2, 3, 4]
    for value, got in rows:
        problem = vram_eval.load(str(SPECS / "llama13b.toml"), [f"{swept}={value}"], [str(mine)])
        assert int(got) == int(vram_eval.evaluate(problem.ruleset, problem.bindings)["pay"]), (swept, value)


def test_names_that_collide_with_numpy_solve(cli, tmp_path):
    mine = _names_formula(tmp_path)
    status, out, err = cli("solve", "specs/llama13b.toml", "--for", "select", "--budget", "1KiB", "--target", "pay",
                           "--formulas", mine, "--format", "json")
    assert status == 0 and "Traceback" not in err, err
    import json

    value = json.loads(out)["value"]
    fits = vram_eval.load(str(SPECS / "llama13b.toml"), [f"select={value}"], [str(mine)])
    over = vram_eval.load(str(SPECS / "llama13b.toml"), [f"select={value + 1}"], [str(mine)])
    pay = (vram_eval.evaluate(problem.ruleset, problem.bindings)["pay"] for problem in (fits, over))
    assert next(pay) <= 1024 < next(pay)


# --- random expression trees: the same values as exact evaluation ---------------------------
# Integer-valued trees (+, ×, powers, %, |·|, min, max, conditionals, floor and ceil of
# fractions) are exact in float64 while every intermediate stays below 2^50, and so must
# equal exact evaluation to the last bit; sqrt, log and division on top of them must agree
# to rounding.

_small = st.integers(-6, 6).map(Integer)
_fraction = st.tuples(st.integers(-7, 7), st.integers(2, 9)).map(lambda pq: Rational(*pq))


def _conditions(ints):
    rel = st.sampled_from([sympy.Lt, sympy.Le, sympy.Gt, sympy.Ge, sympy.Eq, sympy.Ne])
    atom = st.builds(lambda r, a, b: r(a, b), rel, ints, ints)
    return st.recursive(atom, lambda c: st.one_of(
        st.builds(lambda a, b: sympy.And(a, b), c, c), st.builds(lambda a, b: sympy.Or(a, b), c, c),
        st.builds(sympy.Not, c)), max_leaves=3)


def _extend(ints):
    return st.one_of(
        st.builds(lambda a, b: a + b, ints, ints),
        st.builds(lambda a, b: a - b, ints, ints),
        st.builds(lambda a, b: a * b, ints, ints),
        st.builds(lambda a, k: a**k, ints, st.integers(0, 3)),
        st.builds(lambda a, b: Mod(a, b) if b != 0 else a, ints, ints),
        st.builds(Abs, ints),
        st.builds(lambda a, b, c: Min(a, b, c), ints, ints, ints),
        st.builds(lambda a, b: Max(a, b), ints, ints),
        st.builds(lambda f, a, b, c: floor(f * a + b / c) if c != 0 else floor(f * a),
                  _fraction, ints, ints, st.integers(1, 9)),
        st.builds(lambda f, a: ceiling(f * a), _fraction, ints),
        st.builds(lambda a, c, b: Piecewise((a, c), (b, True)), ints, _conditions(_linear), ints),
    )


_leaf = st.one_of(st.just(x), _small)
_linear = st.builds(lambda k, c: k * x + c, _small, _small)  # what a conditional's test compares
_ints = st.recursive(_leaf, _extend, max_leaves=8)
_continuous = st.one_of(
    st.builds(lambda a: sympy.sqrt(a), _ints), st.builds(sympy.log, _ints),
    st.builds(lambda a, b: a / b, _ints, _ints), st.builds(lambda f, a: f * a, _fraction, _ints))
_GRID = np.arange(-20.0, 21.0)


_RAISED = object()  # xreplace raised (TypeError, ZeroDivisionError) for this subtree


def _xreplaced(expr, value, memo: dict):
    """``(expr.xreplace({x: value}), whether anything was replaced)``, or _RAISED: SymPy's own
    xreplace step by step (a node whose arguments changed is rebuilt from them by its func),
    each distinct subtree worked out once and kept in ``memo`` (the oracles below ask every
    subtree of a tree at the same point: xreplace from the top would rebuild each one again)."""
    hit = memo.get(expr)
    if hit is not None:
        return hit
    if expr == x:
        out = (value, True)
    else:
        args, changed = [], False
        for a in expr.args:
            if getattr(a, "_xreplace", None) is None:
                args.append(a)
                continue
            done = _xreplaced(a, value, memo)
            if done is _RAISED:
                memo[expr] = _RAISED
                return _RAISED
            args.append(done[0])
            changed |= done[1]
        out = (expr, False)
        if changed:
            try:
                out = (expr.func(*args), True)
            except (TypeError, ZeroDivisionError):
                out = _RAISED
    memo[expr] = out
    return out


def _exact_at(expr, point, memo=None):
    """The exact value, or None where SymPy cannot decide it (a comparison with NaN raises).
    ``memo``: the subtrees already worked out at this point (one dict per point)."""
    done = _xreplaced(expr, Integer(point), {} if memo is None else memo)
    return None if done is _RAISED else done[0]


def _within_bounds(expr, point, memo=None) -> bool:
    """No subtree's value reaches 2^50 in size (where float64 would start rounding)."""
    memo = {} if memo is None else memo
    for sub in sympy.preorder_traversal(expr):
        if isinstance(sub, sympy.Expr) and not isinstance(sub, sympy.Number):
            v = _exact_at(sub, point, memo)
            if v is not None and v.is_number and v.is_finite and v.is_real and abs(v) >= 2**50:
                return False
    return True


def _real_throughout(expr, point, memo=None) -> bool:
    """Every subtree has a real value at the point: sqrt(x - 1)*sqrt(|x|) is exactly 0 at x = 0
    (I*0), but its factor sqrt(-1) has no real value, and the float product is NaN."""
    memo = {} if memo is None else memo
    for sub in sympy.preorder_traversal(expr):
        if isinstance(sub, sympy.Expr):
            v = _exact_at(sub, point, memo)
            if v is not None and v.is_number and v.is_real is False:
                return False
    return True


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ints)
def test_random_integer_trees_equal_exact(expr):
    values = evaluate_array(expr, x, _GRID)
    sorted_values = Vectorised(x, _GRID, exprs=[expr], whole=True, ascending=True).number(expr)
    assert np.array_equal(values, sorted_values, equal_nan=True)
    for point, value in zip(_GRID.astype(int), values):
        memo: dict = {}
        exact = _exact_at(expr, int(point), memo)
        if exact is None:
            continue
        if not (exact.is_number and exact.is_real and exact.is_finite):
            assert not math.isfinite(value), (expr, point, value, exact)
        elif _within_bounds(expr, int(point), memo):
            assert value == int(exact), (expr, point, value, exact)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_continuous)
def test_random_continuous_trees_agree_with_exact(expr):
    values = evaluate_array(expr, x, _GRID)
    for point, value in zip(_GRID.astype(int), values):
        memo: dict = {}
        exact = _exact_at(expr, int(point), memo)
        if exact is None:
            continue
        if exact.is_number and exact.is_real and exact.is_finite:
            if _within_bounds(expr, int(point), memo) and _real_throughout(expr, int(point), memo):
                assert math.isclose(value, float(exact), rel_tol=1e-12, abs_tol=1e-300), (expr, point, value, exact)
        elif exact.is_number:  # log(0), 1/0, sqrt(-1), log(-1): inf or NaN
            assert not math.isfinite(value), (expr, point, value, exact)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_conditions(_ints))
def test_random_conditions_equal_exact(cond):
    grid = _GRID[::2]
    memos: dict = {}  # each point's subtrees, worked out once for both orders
    for ascending in (False, True):
        got = Vectorised(x, grid, exprs=[cond], whole=True, ascending=ascending).condition(cond)
        for point, value in zip(grid.astype(int), got):
            memo = memos.setdefault(int(point), {})
            exact = _exact_at(cond, int(point), memo)
            if isinstance(exact, sympy.logic.boolalg.BooleanAtom) and _within_bounds(cond, int(point), memo):
                assert bool(value) == bool(exact), (cond, point, value, exact)


def test_an_if_then_else_condition_is_lazy_exactly_and_vectorised():
    """SymPy folds nested Piecewise conditions into ITE; its untaken side (40 / x at x = 0)
    is never worked out, by the exact evaluator nor on the grid."""
    from fractions import Fraction

    from sympy.logic.boolalg import ITE

    from vram_eval.exact import evaluate_exact

    x = Symbol("x")
    condition = ITE(x > 0, floor(40 / x) > 3, x < 1)
    assert [evaluate_exact(condition, {"x": Fraction(v)}) for v in (0, 5, 20)] == [True, True, False]
    assert evaluate_condition(condition, x, np.array([0.0, 5.0, 20.0])).tolist() == [True, True, False]


# --- the same walk over a node table, without SymPy ----------------------------------------
# TableVectorised walks a node table (engine/nodes.py) as Vectorised walks SymPy: on the table
# of any expression above it gives the same arrays to the bit and the same errors.

import subprocess  # noqa: E402
import sys  # noqa: E402

from sympy.logic.boolalg import ITE  # noqa: E402

from vram_eval.nodes import Malformed, NodeTable, checked  # noqa: E402
from vram_eval.nodes_sympy import encode_exprs, table_of  # noqa: E402
from vram_eval.vectorise import TableVectorised, evaluate_table_array, evaluate_table_condition  # noqa: E402

# Expressions of the tests above that are not in the lists they share.
OTHER_EXPRS = [Integer(10) ** 400 * x, x ** 5000, 2**x, Mod(x, x - 3), Rational(10**400, 10**399) * x,
               floor(x**2 + 3 * x / 7) + (x**2 + 3 * x) * 2 + Max(x**2 + 3 * x, 10), floor(x), x + 1, 2 * x,
               Piecewise((x, x > 2), (0, True)), sympy.sqrt(x), x + Rational(1, 3) * floor(x / 3) - x / 6]


def _outcome(walk, expr, condition: bool):
    try:
        return walk.condition(expr, "'pay'") if condition else walk.number(expr, "'pay'")
    except SolveError as error:
        return error


def _bare(message: str) -> str:
    """A message without the expression it quotes in parentheses (each walker prints its own)."""
    return message.split(" (")[0]


def _same_as_sympy(expr, xs, condition=False, **hints):
    """The table walker on ``table_of(expr)`` gives what the SymPy walker gives on ``expr``;
    False where the format has no tag for a node of ``expr`` (a Float, ITE, sin) or checked()
    refuses its table (a condition where a number belongs: Abs(x > 1))."""
    table, root = table_of(expr)
    if table is None:
        if not expr.has(sympy.Float, ITE, sympy.sin, sympy.exp, sympy.EulerGamma):
            with pytest.raises(Malformed):
                checked(encode_exprs([expr])[0])
        return False
    want = _outcome(Vectorised(x, xs, WHERE, [expr], **hints), expr, condition)
    got = _outcome(TableVectorised(table, "x", xs, WHERE, [root], **hints), root, condition)
    if isinstance(want, SolveError):
        assert type(got) is type(want), (expr, got)
        assert (got.facts(), got.location, _bare(got.message)) == (want.facts(), want.location, _bare(want.message))
    else:
        assert isinstance(got, np.ndarray) and (got.dtype, got.shape) == (want.dtype, want.shape), (expr, got)
        assert np.array_equal(got, want, equal_nan=True), (expr, got, want)
    return True


HINTS = [{}, {"ascending": True}, {"whole": True, "ascending": True}]


@pytest.mark.parametrize("expr", NODE_EXPRS + OTHER_EXPRS, ids=str)
def test_a_table_walks_as_its_expression(expr):
    for hints in HINTS:
        grid = XS if not hints.get("whole") else np.array([v for v in XS if v == int(v)])
        _same_as_sympy(expr, grid, **hints)


def test_the_tables_of_the_node_expressions_are_nearly_all_walked():
    """Only those the format has no tag for are left out: the comparison above is not vacuous."""
    walked = [e for e in NODE_EXPRS + OTHER_EXPRS if table_of(e)[0] is not None]
    assert len(walked) == len(NODE_EXPRS + OTHER_EXPRS) - 1  # sympy.Float(2.5)


@pytest.mark.parametrize("cond", CONDITIONS, ids=str)
def test_a_table_condition_walks_as_its_expression(cond):
    for hints in HINTS[:2]:
        assert _same_as_sympy(cond, np.sort(XS), condition=True, **hints)


@pytest.mark.parametrize("expr, words, kind, facts", ERRORS, ids=lambda v: v if isinstance(v, str) else None)
def test_a_table_fails_as_its_expression(expr, words, kind, facts):
    if _same_as_sympy(expr, np.arange(3.0)):
        table, root = table_of(expr)
        with pytest.raises(kind) as info:
            evaluate_table_array(table, root, "x", np.arange(3.0), WHERE, "'pay'")
        assert _bare(words) in info.value.message


def test_a_table_number_as_a_condition_is_a_type_mismatch():
    assert _same_as_sympy(x + 1, np.arange(3.0), condition=True)


def test_a_table_too_deep_is_a_located_limit():
    """A table deeper than Python's stack (checked() refuses one; a caller may build one)."""
    nodes = (("Sym", "x"),) + tuple(("floor", k) for k in range(5000))
    table = NodeTable(nodes, [None] * len(nodes))
    with pytest.raises(LimitExceeded[SolveError], match="nested too deeply") as info:
        evaluate_table_array(table, len(nodes) - 1, "x", np.arange(3.0), WHERE)
    assert (info.value.what, info.value.location) == ("nesting", WHERE)


def test_a_table_never_writes_the_grid_or_a_shared_node():
    xs = np.arange(1.0, 6.0)
    before = xs.copy()
    inner = x**2 + 3 * x
    for expr in (x, floor(x), x + 1, 2 * x, Piecewise((x, x > 2), (0, True)), Max(x, 3), sympy.sqrt(x),
                 floor(inner / 7) + inner * 2 + Max(inner, 10)):
        table, root = table_of(expr)
        out = TableVectorised(table, "x", xs, roots=[root], whole=True, ascending=True).number(root)
        assert np.array_equal(out, evaluate_array(expr, x, xs)), expr
        out += 1  # the caller's array is its own
        assert np.array_equal(xs, before), expr


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_ints, _continuous))
def test_random_table_trees_walk_as_their_expressions(expr):
    assert _same_as_sympy(expr, _GRID)
    assert _same_as_sympy(expr, _GRID, whole=True, ascending=True)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_conditions(_ints))
def test_random_table_conditions_walk_as_their_expressions(cond):
    assert _same_as_sympy(cond, _GRID[::2], condition=True, whole=True, ascending=True)


@pytest.mark.parametrize("spec", sorted(SPECS.glob("*.toml"))[:4], ids=lambda p: p.stem)
def test_builtin_targets_walk_as_tables(spec):
    """Each regime's target: its SymPy expression's table walks as the expression, and the
    residual table (engine/residual.py, not in SymPy's form) equals exact evaluation."""
    problem = _builtin_problem(spec)
    for name, points in POINTS.items():
        xs = np.array(points, dtype=float)
        for target in TARGETS:
            fx = focus(problem, name, target)
            assert _same_as_sympy(fx.expr.xreplace({fx.symbol: x}), xs, whole=True, ascending=True), target
            if fx.residual is None or not hasattr(fx.value, "i"):
                continue
            table, rest = fx.residual.table, fx.value
            values = TableVectorised(table, name, xs, roots=[rest.i], whole=True, ascending=True).number(rest.i)
            for point, value in zip(points, values):
                assert _agrees(value, fx.at_value(Integer(point))), (spec.stem, target, name, point, value)


# Tables as engine/residual.py writes them, not SymPy's: the root is the last node; s is the input.
S_ = ["Sym", "s"]
NONCANONICAL = {
    "floor(4096 * 1/49 * s): two numbers in a product": [S_, ["Int", 4096], ["Q", 1, 49], ["Mul", 1, 2, 0],
                                                         ["floor", 3]],
    "4096 * s * 1/49": [S_, ["Int", 4096], ["Q", 1, 49], ["Mul", 1, 0, 2]],
    "3 + 1/3 + 2/3*s + 1/6 + s: numbers in a sum": [S_, ["Int", 3], ["Q", 1, 3], ["Q", 2, 3], ["Mul", 3, 0],
                                                    ["Q", 1, 6], ["Add", 1, 2, 4, 5, 0]],
    "floor(1/3*s + 2/3 + 2*1/6*s)": [S_, ["Q", 1, 3], ["Mul", 1, 0], ["Q", 2, 3], ["Int", 2], ["Q", 1, 6],
                                     ["Mul", 4, 5, 0], ["Add", 2, 3, 6], ["floor", 7]],
    "3 * s * (s + 1)**-1: a negative exponent": [S_, ["Int", 3], ["Int", 1], ["Add", 0, 2], ["Int", -1],
                                                 ["Pow", 3, 4], ["Mul", 1, 0, 5]],
    "s**-2": [S_, ["Int", -2], ["Pow", 0, 1]],
    "floor(s * 49**-1)": [S_, ["Int", 49], ["Int", -1], ["Pow", 1, 2], ["Mul", 0, 3], ["floor", 4]],
    "s if 2 < s < 1000 and s % 2 != 0 else 0: a 3-operand and": [
        S_, ["Int", 2], ["Gt", 0, 1], ["Int", 1000], ["Lt", 0, 3], ["Mod", 0, 1], ["Int", 0], ["Ne", 5, 6],
        ["And", 2, 4, 7], ["Pair", 0, 8], ["true"], ["Pair", 6, 10], ["Piecewise", 9, 11]],
    "s if s < 3 or s % 7 == 0 or s >= 1500 else 2 * 1/2: a 3-operand or": [
        S_, ["Int", 3], ["Lt", 0, 1], ["Int", 7], ["Mod", 0, 3], ["Int", 0], ["Eq", 4, 5], ["Int", 1500],
        ["Ge", 0, 7], ["Or", 2, 6, 8], ["Pair", 0, 9], ["Int", 2], ["Q", 1, 2], ["Mul", 11, 12], ["true"],
        ["Pair", 13, 14], ["Piecewise", 10, 15]],
    "1 if s == \"fp16\" else 2: a string never equals a number": [
        S_, ["Text", "fp16"], ["TextEq", 1, 0], ["Int", 1], ["Pair", 3, 2], ["Int", 2], ["true"], ["Pair", 5, 6],
        ["Piecewise", 4, 7]],
}
NONCANONICAL_CONDITIONS = {
    "2 < s and true and s % 2 != 0": [S_, ["Int", 2], ["Gt", 0, 1], ["true"], ["Mod", 0, 1], ["Int", 0],
                                      ["Ne", 4, 5], ["And", 2, 3, 6]],
    "s < 3 or false or s >= 49*7": [S_, ["Int", 3], ["Lt", 0, 1], ["false"], ["Int", 343], ["Ge", 0, 4],
                                    ["Or", 2, 3, 5]],
    "\"a\" == \"a\" and s > 1": [S_, ["Text", "a"], ["TextEq", 1, 1], ["Int", 1], ["Gt", 0, 3], ["And", 2, 4]],
}
WHOLE = np.unique(np.concatenate([np.arange(0.0, 2000.0), 49.0 * np.arange(1, 3000), [10.0**6 - 1, 2.0**31]]))


@pytest.mark.parametrize("case", sorted(NONCANONICAL))
def test_a_residual_table_equals_exact_evaluation(case):
    """Whole values are exact; a fraction is the exact value correctly rounded (one division)."""
    table = checked(NONCANONICAL[case])
    root = len(table) - 1
    for hints in ({}, {"whole": True, "ascending": True}):
        got = TableVectorised(table, "s", WHOLE, roots=[root], **hints).number(root)
        for point, value in zip(WHOLE, got):
            try:
                exact = table.value(root, {"s": Fraction(int(point))})
            except ZeroDivisionError:  # s**-2 at 0: no value
                assert not math.isfinite(value), (case, point, value)
                continue
            assert value == float(exact), (case, point, value, exact)


def test_floor_of_a_product_with_two_numbers_is_whole_at_the_multiples():
    table = checked(NONCANONICAL["floor(4096 * 1/49 * s): two numbers in a product"])
    ks = np.arange(1.0, 10_001.0)
    assert np.array_equal(evaluate_table_array(table, len(table) - 1, "s", 49 * ks), 4096 * ks)


@pytest.mark.parametrize("case", sorted(NONCANONICAL_CONDITIONS))
def test_a_residual_condition_equals_exact_evaluation(case):
    table = checked(NONCANONICAL_CONDITIONS[case])
    root = len(table) - 1
    for hints in ({}, {"whole": True, "ascending": True}):
        got = TableVectorised(table, "s", WHOLE, roots=[root], **hints).condition(root)
        expected = [table.value(root, {"s": Fraction(int(p))}) for p in WHOLE]
        assert got.tolist() == expected, case
    assert evaluate_table_condition(table, root, "s", WHOLE).tolist() == expected


def test_a_table_walk_imports_no_sympy():
    code = "\n".join([
        "import sys",
        "import numpy as np",
        "from vram_eval.errors import SolveError",
        "from vram_eval.nodes import checked",
        "from vram_eval.vectorise import evaluate_table_array, evaluate_table_condition",
        "t = checked([['Sym', 's'], ['Int', 4096], ['Q', 1, 49], ['Mul', 1, 2, 0], ['floor', 3],",
        "             ['Text', 'fp16'], ['Gt', 0, 1], ['Add', 0, 5]])",
        "print(evaluate_table_array(t, 4, 's', np.array([49.0, 98.0])).tolist())",
        "print(evaluate_table_condition(t, 6, 's', np.array([1.0, 5000.0])).tolist())",
        "try:",
        "    evaluate_table_array(t, 7, 's', np.arange(2.0))",
        "except SolveError as error:",
        "    print(error.found)",
        "print('sympy' in sys.modules)",
    ])
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["[4096.0, 8192.0]", "[False, True]", "a string", "False"]
