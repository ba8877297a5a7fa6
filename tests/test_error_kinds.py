"""One class per kind of mistake, with the facts of it as attributes and a location.

Each case below makes one mistake and says which class it raises, which attributes that
error carries and where it points (file, line, column). A kind that can happen in several
places is one class raised in the family of the place: ``UnknownName[SpecError]`` for a
spec's key, ``UnknownName[FormulaError]`` for a formula's reference.
"""

import pickle

import pytest

import vram_eval
from vram_eval.errors import (
    ArgumentSyntaxError,
    BindingError,
    CyclicDefinition,
    DuplicateDefinition,
    EngineError,
    EvaluationError,
    FormulaError,
    FormulaSyntaxError,
    IncompleteVariant,
    InconsistentVariants,
    InvalidValue,
    LimitExceeded,
    Location,
    NoRealValue,
    PlotFileError,
    RangeError,
    RangeSyntaxError,
    SolveError,
    SpecError,
    SpecSyntaxError,
    TypeMismatch,
    UnknownFunction,
    UnknownKey,
    UnknownName,
    UnknownUnit,
    UnreadableFile,
    UnusedName,
    WrongArgumentCount,
    WrongKind,
)
from vram_eval.rules import RuleSet

from conftest import SPECS


def formula(text):
    return lambda tmp: vram_eval.parse_formulas(text, path="bad.formula")


def ruleset(*texts):
    return lambda tmp: RuleSet.build([vram_eval.parse_formulas(t, path=f"f{i}.formula", builtin=True)
                                      for i, t in enumerate(texts)])


def undeclared(text):
    def make(tmp):
        rs = RuleSet.build([vram_eval.parse_formulas(text, path="f.formula")])
        raise rs.undeclared()[0][1]
    return make


def spec(name, text, *sets):
    def make(tmp):
        path = tmp / name
        path.write_text(text)
        problem = vram_eval.load(str(path), list(sets))
        return vram_eval.evaluate(problem.ruleset, problem.bindings)
    return make


def sets(*texts):
    return lambda tmp: vram_eval.load(None, list(texts))


def sweep_range(text):
    return lambda tmp: vram_eval.parse_range(text)


def plot(name):
    def make(tmp):
        from vram_eval.plot import plot_sweep

        plot_sweep(None, str(tmp / name))
    return make


def gpu(name):
    def make(tmp):
        from vram_eval.hardware import find_gpu

        find_gpu(name, Location("--gpu", None, 1, name, len(name)))
    return make


LLAMA = 'arch = "llama"\nh = 4096\nL = 32\na = 32\nkv_heads = 32\nf = 11008\nV = 32000\ns_max = 4096\n'

# (id, the mistake, class, attributes it must have, (path, line, column) it points at)
CASES = [
    # --- a formula file ---------------------------------------------------
    ("syntax", formula("a = b c"), FormulaSyntaxError, {"found": "c"}, ("bad.formula", 1, 7)),
    ("unclosed bracket", formula("a = (1 +"), FormulaSyntaxError, {"found": "("}, ("bad.formula", 1, 5)),
    ("brackets too deep", formula("a = " + "(" * 100 + "1" + ")" * 100), LimitExceeded[FormulaSyntaxError],
     {"what": "nesting", "limit": 64}, ("bad.formula", 1, 69)),
    ("unknown function", formula("a = sqr(b)"), UnknownFunction,
     {"name": "sqr", "suggestion": "sqrt"}, ("bad.formula", 1, 5)),
    ("unknown unit", formula("w [byte] = 1"), UnknownUnit, {"name": "byte", "suggestion": "bytes"},
     ("bad.formula", 1, 4)),
    ("too few arguments", formula("a = max()"), WrongArgumentCount,
     {"function": "max", "given": 0, "least": 1, "most": None}, ("bad.formula", 1, 5)),
    ("too many arguments", formula("a = sqrt(1, 2)"), WrongArgumentCount,
     {"function": "sqrt", "given": 2, "least": 1, "most": 1}, ("bad.formula", 1, 5)),
    ("division by zero", formula("a = 1 / 0"), NoRealValue[FormulaError], {"operation": "division"},
     ("bad.formula", 1, 7)),
    ("root of a negative", formula("a = sqrt(-4)"), NoRealValue[FormulaError], {"operation": "sqrt"},
     ("bad.formula", 1, 5)),
    ("string as a number", formula('a = "fp16" + 1'), TypeMismatch[FormulaError],
     {"expected": "a number", "found": "a string"}, ("bad.formula", 1, 5)),
    ("number as a condition", formula("a = 1 if 2 else 3"), TypeMismatch[FormulaError],
     {"expected": "a condition", "found": "a number"}, ("bad.formula", 1, 5)),
    ("table key twice", formula("t = {a: 1, a: 2}"), DuplicateDefinition[FormulaError],
     {"name": "a", "first": Location("bad.formula", 1, 6, "t = {a: 1, a: 2}", 1)}, ("bad.formula", 1, 12)),
    ("power too large", formula("a = 10^10^10"), LimitExceeded[FormulaError], {"what": "power (bits)"},
     ("bad.formula", 1, 7)),
    ("number out of range", formula("a = 1e999"), LimitExceeded[FormulaError], {"what": "number"},
     ("bad.formula", 1, 5)),
    # --- the formula files together ---------------------------------------
    ("defined twice", ruleset("a = 1\nb = 2", "\n\na = 3"), DuplicateDefinition[FormulaError],
     {"name": "a", "first": Location("f0.formula", 1, 1, "a = 1", 1)}, ("f1.formula", 3, 1)),
    ("alias given twice", ruleset("input a (x)\ninput b (x)"), DuplicateDefinition[FormulaError],
     {"name": "x"}, ("f0.formula", 2, 1)),
    ("cycle", ruleset("a = b + 1\nb = c * 2\nc = a"), CyclicDefinition, {"cycle": ("a", "b", "c", "a")},
     ("f0.formula", 1, 1)),
    ("name nothing defines", undeclared("weights = 1\nextra = weigths * 2"), UnknownName[FormulaError],
     {"name": "weigths", "suggestion": "weights"}, ("f.formula", 2, 9)),
    # --- a spec file --------------------------------------------------------
    ("TOML syntax", spec("s.toml", "h = = 3\n"), SpecSyntaxError, {"format": "toml"}, ("SPEC", 1, 5)),
    ("YAML key twice", spec("s.yaml", "h: 1\nL: 2\nh: 3\n"), DuplicateDefinition[SpecError],
     {"name": "h"}, ("SPEC", 3, 1)),
    ("JSON key twice", spec("config.json", '{"model_type": "llama",\n "hidden_size": 1,\n "hidden_size": 2}'),
     DuplicateDefinition[SpecError], {"name": "hidden_size"}, ("SPEC", 3, 2)),
    ("unknown key", spec("s.toml", LLAMA + "seq_lenght = 4096\n"), UnknownName[SpecError],
     {"name": "seq_lenght", "suggestion": "seq_length"}, ("SPEC", 9, 1)),
    ("value not one of", spec("s.toml", LLAMA + 'weight_dtype = "fp17"\n'), InvalidValue[SpecError],
     {"name": "weight_dtype", "value": "fp17"}, ("SPEC", 9, 1)),
    ("a table set", spec("s.toml", LLAMA + "dtype_bytes = 2\n"), WrongKind[SpecError],
     {"name": "dtype_bytes", "actual": "table"}, ("SPEC", 9, 1)),
    ("unknown arch", spec("s.toml", 'arch = "mamba"\n'), InvalidValue[SpecError],
     {"name": "arch", "value": "mamba", "allowed": ("gpt", "llama")}, ("SPEC", 1, 1)),
    ("gpu not an id", spec("s.toml", LLAMA + "gpu = 80\n"), InvalidValue[SpecError],
     {"name": "gpu", "value": 80, "expected": "the id of a GPU of the catalog"}, ("SPEC", 9, 1)),
    ("no such spec", lambda tmp: vram_eval.load(str(tmp / "missing.toml")), UnreadableFile[SpecError],
     {"reason": "missing"}, ("SPEC:missing.toml", None, None)),
    # --- the command line ---------------------------------------------------
    ("--set without =", sets("s4096"), ArgumentSyntaxError, {"option": "--set", "text": "s4096"}, ("--set", None, 1)),
    ("--set unknown name", sets("seq_lenght=1"), UnknownName[SpecError],
     {"name": "seq_lenght", "suggestion": "seq_length"}, ("--set", None, 1)),
    ("--set bad value", sets("b=two"), InvalidValue[SpecError], {"name": "b", "value": "two"}, ("--set", None, 3)),
    ("unknown GPU", gpu("h10"), UnknownKey[SpecError], {"table": "gpus", "key": "h10", "suggestion": "h100"},
     ("--gpu", None, 1)),
    ("no such formula file", lambda tmp: vram_eval.load(None, [], [str(tmp / "nope.formula")]),
     UnreadableFile[FormulaError], {"reason": "missing"}, ("SPEC:nope.formula", None, None)),
    ("range syntax", sweep_range("s512:1024"), RangeSyntaxError, {"text": "s512:1024", "part": "range"},
     ("sweep", None, 1)),
    ("range point not a number", sweep_range("s=a:8"), RangeSyntaxError, {"part": "start"}, ("sweep", None, 3)),
    ("range backwards", sweep_range("s=4096:512"), InvalidValue[RangeError], {"name": "stop", "part": "range"},
     ("sweep", None, 3)),
    ("range too many points", sweep_range("s=1:1000000000"), LimitExceeded[RangeError],
     {"what": "points", "amount": 1_000_000_000}, ("sweep", None, 3)),
    ("plot file name", plot("mem.pdf"), PlotFileError, {"reason": "suffix"}, ("--plot", None, None)),
]


@pytest.mark.parametrize("make, kind, attributes, where", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_mistake_raises_its_kind_with_its_facts_and_location(make, kind, attributes, where, tmp_path):
    with pytest.raises(EngineError) as info:
        make(tmp_path)
    error = info.value
    assert type(error) is kind, error.render()
    assert {name: getattr(error, name) for name in attributes} == attributes
    path, line, column = where
    if path.startswith("SPEC"):  # a file under the test's directory
        path = str(tmp_path / (path.split(":", 1)[1] if ":" in path else next(p.name for p in tmp_path.iterdir())))
    assert (error.path, error.line, error.column) == (path, line, column), error.render()


# --- one kind across families --------------------------------------------------


def test_an_unknown_name_is_one_class_wherever_it_is():
    in_spec = pytest.raises(UnknownName, vram_eval.load, None, ["seq_lenght=1"]).value
    rs = RuleSet.build([vram_eval.parse_formulas("extra = weigths * 2", path="f.formula")])
    in_formula = rs.undeclared()[0][1]
    assert isinstance(in_spec, UnknownName) and isinstance(in_formula, UnknownName)
    assert isinstance(in_spec, SpecError) and not isinstance(in_spec, FormulaError)
    assert isinstance(in_formula, FormulaError) and not isinstance(in_formula, SpecError)


def test_a_kind_in_a_family_is_made_once_and_is_a_subclass_of_both():
    made = UnknownName[BindingError]
    assert made is UnknownName[BindingError]
    assert issubclass(made, UnknownName) and issubclass(made, BindingError)
    assert made.__name__ == "UnknownName" and made.__qualname__ == "UnknownName[BindingError]"


def test_a_kind_already_of_the_family_is_itself():
    assert CyclicDefinition[FormulaError] is CyclicDefinition


def test_only_a_family_can_be_given():
    with pytest.raises(TypeError):
        UnknownName[ValueError]


def test_range_and_plot_errors_are_not_solve_errors():
    for mistake in (sweep_range("s=a:b"), sweep_range("s=9:1")):
        with pytest.raises(RangeError) as info:
            mistake(None)
        assert isinstance(info.value, SpecError) and not isinstance(info.value, SolveError)
    assert not issubclass(PlotFileError, SolveError)


# --- the attributes ---------------------------------------------------------------


def test_an_attribute_the_kind_does_not_have_is_refused():
    with pytest.raises(TypeError, match="nme"):
        UnknownName("unknown", nme="x")


def test_facts_are_every_attribute_of_the_kind():
    error = UnknownKey[EvaluationError]("no key", table="dtype_bytes", key="fp17", keys=("fp16", "fp32"), rule=None)
    assert error.facts() == {"table": "dtype_bytes", "key": "fp17", "keys": ("fp16", "fp32"), "suggestion": "fp16",
                             "rule": None}


def test_an_error_pickles_as_its_kind_in_its_family():
    error = UnknownName[SpecError]("unknown key 'x'", Location("s.toml", 2, 1, "x = 1"), hint="h",
                                   name="x", known=("y",))
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error)
    assert (again.facts(), again.render()) == (error.facts(), error.render())


def test_relocated_keeps_the_kind_and_its_facts():
    error = CyclicDefinition("cycle", Location("a.formula", 1, 1), cycle=("a", "a"))
    moved = error.relocated(Location("b.formula", 4, 2))
    assert type(moved) is CyclicDefinition and moved.cycle == ("a", "a") and moved.line == 4


def test_relocated_keeps_the_kind_in_its_family_and_what_it_suggests():
    error = UnknownName[SolveError]("no input 'sq'", Location("--for", None, 1, "sq", 2), hint="did you mean 's'?",
                                    name="sq", known=("s", "b"), suggestion="s")
    moved = error.relocated(Location("sweep", None, 1, "sq=1:2", 2))
    assert type(moved) is UnknownName[SolveError]
    assert (moved.facts(), moved.message, moved.hint) == (error.facts(), error.message, error.hint)
    assert (moved.path, moved.column, moved.location.source_line) == ("sweep", 1, "sq=1:2")


def test_moved_to_another_family_keeps_the_kind_and_drops_the_old_family():
    error = NoRealValue[EvaluationError]("no value", Location("f.formula", 3, 1), operation="log", rule=None)
    moved = error.moved(SpecError, Location("--set", None, 1), message="'x' = 0: no value")
    assert type(moved) is NoRealValue[SpecError] and not isinstance(moved, EvaluationError)
    assert (moved.operation, moved.message, moved.path) == ("log", "'x' = 0: no value", "--set")


def test_an_error_of_a_family_only_moves_to_the_plain_family():
    moved = UnknownFunction("f", name="sqr").moved(SpecError, None)
    assert type(moved) is SpecError


# --- `vram-eval check`: the variants' interface and names nothing reads ------------------

SHARED = 'input arch = "a" "the block"\ninput b [count] = 1 "batch"\ntotal [bytes] = block_bytes * b + extra\n'


def tree(tmp_path, shared=SHARED, **variants):
    (tmp_path / "arch").mkdir()
    (tmp_path / "model.formula").write_text(shared)
    for name, text in variants.items():
        (tmp_path / "arch" / f"{name}.formula").write_text(text)
    from vram_eval.check import check_paths

    return check_paths([], builtin_dir=tmp_path)


def test_check_fails_when_a_variant_leaves_out_a_name_the_others_define_and_the_shared_formulas_use(tmp_path):
    report = tree(tmp_path, a="block_bytes [bytes] = 10\nextra [bytes] = 1\n", b="block_bytes [bytes] = 20\n")
    [error] = report.errors
    assert type(error) is IncompleteVariant
    assert (error.name, error.variant, error.defined_by) == ("extra", "arch=b", ("arch=a",))
    assert error.path == f"{tmp_path.name}/arch/b.formula"
    assert (error.used_at.line, error.used_at.column) == (3, 35)


def test_a_variants_own_names_may_differ(tmp_path):
    report = tree(tmp_path, a="block_bytes [bytes] = 10 * own\nown = 2\nextra [bytes] = 1\n",
                  b="block_bytes [bytes] = 20\nextra [bytes] = 0\n")
    assert report.errors == []


def test_check_fails_when_variants_declare_an_interface_name_with_different_units(tmp_path):
    report = tree(tmp_path, a="block_bytes [bytes] = 10\nextra [bytes] = 1\n",
                  b="block_bytes [count] = 20\nextra [bytes] = 1\n")
    [error] = report.errors
    assert type(error) is InconsistentVariants and error.name == "block_bytes"
    assert error.declarations == (("arch=a", "definition", "bytes"), ("arch=b", "definition", "count"))


def test_check_fails_on_an_input_nothing_reads(tmp_path):
    report = tree(tmp_path, a='block_bytes [bytes] = 10\nextra [bytes] = 1\ninput knob [count] = 2 "unused"\n',
                  b="block_bytes [bytes] = 20\nextra [bytes] = 1\n")
    [error] = report.errors
    assert type(error) is UnusedName and (error.name, error.variant) == ("knob", "")
    assert (error.path, error.line) == (f"{tmp_path.name}/arch/a.formula", 3)


def test_check_names_the_variant_under_which_a_shared_input_is_unused(tmp_path):
    shared = SHARED + 'input dropout [bool] = false "dropout"\n'
    report = tree(tmp_path, shared, a="block_bytes [bytes] = 10 if dropout else 9\nextra [bytes] = 1\n",
                  b="block_bytes [bytes] = 20\nextra [bytes] = 1\n")
    [error] = report.errors
    assert type(error) is UnusedName and (error.name, error.variant) == ("dropout", "arch=b")


def test_an_expectation_or_requirement_reads_an_input(tmp_path):
    shared = SHARED + 'input dropout [bool] = false "dropout"\nexpect not dropout "not counted"\n'
    report = tree(tmp_path, shared, a="block_bytes [bytes] = 10\nextra [bytes] = 1\n",
                  b='block_bytes [bytes] = 20\nextra [bytes] = 1\ninput knob [count] = 2 "x"\nrequire knob > 0\n')
    assert report.errors == []


def test_check_fails_on_a_variants_definition_nothing_uses(tmp_path):
    report = tree(tmp_path, a="block_bytes [bytes] = 10\nextra [bytes] = 1\ngated [bool] = true\n",
                  b="block_bytes [bytes] = 20\nextra [bytes] = 1\n")
    [error] = report.errors
    assert type(error) is UnusedName and error.name == "gated"


def test_an_input_a_users_override_no_longer_reads_is_not_unused(cli, tmp_path):
    mine = tmp_path / "my.formula"
    mine.write_text("overhead [bytes] = 1.2 GiB\n")
    status, out, err = cli("check", "formulas", mine)
    assert status == 0, err


def test_an_input_in_a_users_file_that_nothing_reads_fails_check(cli, tmp_path):
    mine = tmp_path / "my.formula"
    mine.write_text('input mine [count] = 3 "mine"\n')
    status, out, err = cli("check", mine)
    assert status == 2 and f"{mine}:1:1: error: nothing reads the input 'mine'" in err


def test_the_builtin_formulas_declare_every_interface_name_and_read_every_input(cli):
    status, out, err = cli("check", "formulas")
    assert (status, err) == (0, "")


@pytest.mark.parametrize("sets, warning", [
    (["dropout=true"], "dropout changes nothing in a Llama-style block"),
    (["regime=lora", "lora_dropout=0.1"], "without PEFT's dropout (lora_dropout = 0)"),
])
def test_an_input_the_formulas_leave_out_on_purpose_warns_when_set(sets, warning):
    problem = vram_eval.load(str(SPECS / "llama2-7b.toml"), sets)
    assert any(warning in w for w in vram_eval.evaluate(problem.ruleset, problem.bindings).warnings)
