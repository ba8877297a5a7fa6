"""The on-disk cache of parsed formula files gives back exactly what parsing gives."""

import pytest
from sympy import srepr

from engine import library
from engine.transform import read_formula_file

from conftest import ROOT


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VRAM_EVAL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cached_rules_equal_freshly_parsed_ones(cache):
    for path in sorted((ROOT / "formulas").rglob("*.formula")):
        fresh = read_formula_file(path, builtin=True, shown=path.name)
        first = library._cached(path, path.name, True)  # parses and writes
        second = library._cached(path, path.name, True)  # loads
        assert fresh.rules == first.rules == second.rules
        assert fresh.requirements == second.requirements
        assert [r.expr.func for r in fresh.rules if r.expr is not None] == \
               [r.expr.func for r in second.rules if r.expr is not None]
        # rebuilt node by node (sums and products through SymPy's fast path): the same trees
        assert [srepr(r.expr) for r in fresh.rules] == [srepr(r.expr) for r in second.rules]
        assert [r.expr.is_commutative for r in fresh.rules if r.expr is not None] == \
               [r.expr.is_commutative for r in second.rules if r.expr is not None]
    assert len(list(cache.glob("*.pickle"))) == len(list((ROOT / "formulas").rglob("*.formula")))


def test_a_changed_file_misses_the_cache(cache, tmp_path):
    path = tmp_path / "mine.formula"
    path.write_text("w = 1\n")
    assert str(library._cached(path, "mine.formula", False).rules[0].expr) == "1"
    path.write_text("w = 2\n")
    assert str(library._cached(path, "mine.formula", False).rules[0].expr) == "2"


def test_errors_are_not_cached_and_a_broken_cache_is_ignored(cache, tmp_path):
    path = tmp_path / "mine.formula"
    path.write_text("w = 1\n")
    library._cached(path, "mine.formula", False)
    for entry in cache.glob("*.pickle"):
        entry.write_bytes(b"not a pickle")
    assert str(library._cached(path, "mine.formula", False).rules[0].expr) == "1"


def test_the_cache_can_be_turned_off(monkeypatch, tmp_path):
    monkeypatch.setenv("VRAM_EVAL_CACHE", "off")
    assert library._cache_dir() is None
