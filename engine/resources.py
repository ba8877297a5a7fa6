"""The one place that knows where the data directories live.

In a source checkout or an editable install they sit beside the ``engine``
package (``../grammar``, ``../formulas``, ``../specs``); in a wheel they are
copied into ``engine/_data/`` (see ``pyproject.toml``). Nothing else in the
engine does path arithmetic to find them.
"""

from __future__ import annotations

import functools
from pathlib import Path

__all__ = ["data_dir", "grammar_path", "formulas_dir", "specs_dir", "catalog_path", "catalog"]

_PACKAGE = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=None)
def data_dir(name: str) -> Path:
    """The directory ``name`` (grammar, formulas or specs), wherever installed."""
    for base in (_PACKAGE / "_data", _PACKAGE.parent):
        candidate = base / name
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"vram-eval is installed without its {name}/ directory (looked in {_PACKAGE})")


def grammar_path() -> Path:
    return data_dir("grammar") / "formula.lark"


def formulas_dir() -> Path:
    return data_dir("formulas")


def specs_dir() -> Path:
    return data_dir("specs")


def catalog_path(name: str) -> Path:
    """A data catalog under ``specs/catalog/`` (gpus.toml, huggingface.toml)."""
    return specs_dir() / "catalog" / name


@functools.lru_cache(maxsize=None)
def catalog(name: str) -> dict:
    """A data catalog of ``specs/catalog/`` read once (checkpoints.toml, gguf.toml, ...): the
    project's own files, read with tomllib."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    with open(catalog_path(name), "rb") as fh:
        return tomllib.load(fh)
