"""vram-eval: GPU memory for training, LoRA, QLoRA and inference, from formula files.

The library in one breath::

    import engine
    problem = engine.load("specs/llama13b.toml", sets=["s=4096"])
    result = engine.evaluate(problem.ruleset, problem.bindings)
    result["weights"]        # exact bytes, a SymPy Integer

Everything a user can get wrong raises :class:`engine.EngineError` (with a
file, line and column); nothing here calls eval/sympify on input text.
"""

__version__ = "0.1.0"

from .errors import (
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
    MissingDependency,
    NoDependence,
    NoRealValue,
    PlotFileError,
    RangeError,
    RangeSyntaxError,
    RequirementNotMet,
    SolveError,
    SpecError,
    SpecSyntaxError,
    TypeMismatch,
    UnboundInput,
    UnknownFunction,
    UnknownKey,
    UnknownModelType,
    UnknownName,
    UnknownUnit,
    UnreadableFile,
    UnusedName,
    ValueTooLarge,
    WrongArgumentCount,
    WrongKind,
)

from .evaluate import Breakdown, evaluate
from .explain import Explanation, explain
from .library import Library
from .load import Problem, load
from .rules import Rule, RuleSet
from .sensitivity import Sensitivity, sensitivity
from .solve import Solution, solve
from .spec import Binding, Spec, bind, load_spec
from .sweep import SweepResult, parse_range, sweep


def __getattr__(name):
    # The parser (and Lark) is imported on first use (PEP 562): a run whose formula
    # files are all in the parse cache never needs it.
    if name == "parse_formulas":
        from .transform import parse_formulas

        return parse_formulas
    raise AttributeError(f"module 'engine' has no attribute {name!r}")


__all__ = [
    "__version__",
    "ArgumentSyntaxError",
    "BindingError",
    "CyclicDefinition",
    "DuplicateDefinition",
    "EngineError",
    "EvaluationError",
    "FormulaError",
    "FormulaSyntaxError",
    "IncompleteVariant",
    "InconsistentVariants",
    "InvalidValue",
    "LimitExceeded",
    "Location",
    "MissingDependency",
    "NoDependence",
    "NoRealValue",
    "PlotFileError",
    "RangeError",
    "RangeSyntaxError",
    "RequirementNotMet",
    "SolveError",
    "SpecError",
    "SpecSyntaxError",
    "TypeMismatch",
    "UnboundInput",
    "UnknownFunction",
    "UnknownKey",
    "UnknownModelType",
    "UnknownName",
    "UnknownUnit",
    "UnreadableFile",
    "UnusedName",
    "ValueTooLarge",
    "WrongArgumentCount",
    "WrongKind",
    "Rule",
    "RuleSet",
    "Library",
    "parse_formulas",
    "Spec",
    "Binding",
    "load_spec",
    "bind",
    "Problem",
    "load",
    "Breakdown",
    "evaluate",
    "Explanation",
    "explain",
    "Solution",
    "solve",
    "Sensitivity",
    "sensitivity",
    "SweepResult",
    "sweep",
    "parse_range",
]
