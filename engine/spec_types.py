"""The data a spec becomes: :class:`Entry` (one key as read, not yet checked),
:class:`Spec` (a file's entries and metadata) and :class:`Binding` (an entry checked
against the formulas), and the metadata keys that describe a spec rather than bind an
input. No reading and no checking here: the format modules and spec.py share them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from .errors import Location

__all__ = ["Entry", "Spec", "Binding", "METADATA_KEYS", "ANNOTATION_INPUTS"]

# Keys that describe a spec rather than bind an input.
METADATA_KEYS = {
    "name": "the model's name, shown in reports",
    "description": "free text",
    "source": "where the numbers come from",
    "notes": "free text",
}

# Inputs (declared in formulas/model.formula) that describe the block rather than size it: the
# spec readers set them (the Hugging Face catalog's `unmeasured`; block_checked = false for a
# model_type it does not know) and the report prints them. No formula reads them, and
# `vram-eval check` does not count them as unused.
ANNOTATION_INPUTS = {
    "unmeasured": "features of the block whose activations and peaks are not measured",
    "block_checked": "false for a config.json whose model_type the catalog does not know",
}


@dataclass(frozen=True)
class Entry:
    """One key of a spec (or one --set), before it is checked against the formulas."""

    key: str  # as written, e.g. "hidden_size"
    value: object  # the raw value: int, float, str, bool or list
    location: Location
    target: Optional[str] = None  # the input it binds, when it differs from key (config.json)
    optional: bool = False  # skip silently if the formulas have no such input (config.json)
    value_at: Optional[Location] = None  # where the value is, when known apart from the key (--set)

    @property
    def name(self) -> str:
        return self.target or self.key


@dataclass(frozen=True)
class Spec:
    path: Optional[str]
    name: Optional[str]
    entries: Tuple[Entry, ...]
    metadata: Dict[str, str]
    kind: str  # "toml" | "yaml" | "config.json" | "none"
    # A config.json of a model_type the catalog does not know: raised at binding unless
    # --set arch=... names the block (engine/problem.py); its entries are the config's own keys.
    unknown_model_type: Optional[Exception] = None
    # A model folder's (or a Hub snapshot's) weight files, read from their headers
    # (engine/checkpoint.py); None for every other spec.
    checkpoint: Optional[object] = None

    def chosen(self) -> Dict[str, Tuple[object, Location]]:
        """Raw values by key, for choosing formula variants before binding."""
        return {e.name: (_raw_text(e.value), e.location) for e in self.entries}


@dataclass(frozen=True)
class Binding:
    name: str  # the canonical input name
    plain: object  # the value: int, Fraction, bool, str or tuple of str (a list)
    location: Location
    key: str  # the key as the user wrote it

    @functools.cached_property
    def value(self):
        """The value as SymPy (Integer, Rational, Text, TextSet, true/false), for the questions
        that substitute it into expressions."""
        from .symbolic import sympy_value

        return sympy_value(self.plain, self.name)

    @property
    def source(self) -> str:
        return str(self.location.path)


def _raw_text(value):
    return value if isinstance(value, str) else None
