"""An output's expression at a problem's choices: below the questions that show or differentiate it.

``explain`` prints it, ``sensitivity`` differentiates it: both take the expression of an output
down to the inputs, with the string, boolean and list inputs and the tables fixed at the values
the problem's point gives them (bound, or their defaults), so that only numbers stay symbolic.
"""

from __future__ import annotations

from typing import Dict, Tuple

from sympy import Basic, Symbol
from sympy.logic.boolalg import BooleanAtom

from .symbols import Table, Text, TextSet, substitute

__all__ = ["specialise", "choices"]


def specialise(problem, name: str, full=None) -> Tuple[Basic, Dict[str, object]]:
    """(the expression of ``name`` with the problem's choices fixed, the choices used). ``full``
    is the expanded expression when the caller has it. Asked again of the same problem (solve
    for another budget, sensitivity then explain), the answer is the one already worked out."""
    fixed = choices(problem, name)
    if full is not None:
        return substitute(full, {Symbol(n): v for n, v in fixed.items()}), fixed
    cache = problem.point.__dict__.setdefault("specialised", {})
    if name not in cache:
        # the choices fixed as the expansion goes: the branches they rule out are never built (the
        # whole expansion, fixed afterwards, is the same expression at ~10x the time)
        cache[name] = (problem.ruleset.expand(name, fixed=fixed), fixed)
    return cache[name]


def choices(problem, name: str) -> Dict[str, object]:
    """Values at the problem's point of the string, boolean and list inputs, and of the tables,
    that ``name`` depends on."""
    needed = problem.ruleset.closure([name])
    values, _ = problem.point.of([name])
    return {n: v for n, v in values.items()
            if n in needed and isinstance(v, (Text, TextSet, Table, BooleanAtom))}
