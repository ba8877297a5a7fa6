"""vram-eval: GPU memory for training, LoRA, QLoRA and inference, from formula files.

The library in one breath::

    import vram_eval
    problem = vram_eval.load("specs/llama13b.toml", sets=["s=4096"])
    result = vram_eval.evaluate(problem)
    result["weights"]        # exact bytes, a SymPy Integer

Everything a user can get wrong raises :class:`vram_eval.EngineError` (with a
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

# Everything beyond the errors is imported on first use (PEP 562): a cold run imports only
# the modules its question needs — a cached report needs neither the parser (Lark) nor SymPy.
_LAZY = {
    "Breakdown": "forward", "evaluate": "forward",
    "Explanation": "explanation", "explain": "explanation",
    "Library": "library",
    "Problem": "problem", "load": "problem",
    "Rule": "rules", "RuleSet": "rules",
    "Sensitivity": "derivatives", "sensitivity": "derivatives",
    "Solution": "inverse", "solve": "inverse",
    "Binding": "spec", "Spec": "spec", "bind": "spec", "load_spec": "spec",
    "SweepResult": "grid", "parse_range": "grid", "sweep": "grid",
    "parse_formulas": "transform",
}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vram_eval' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


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
