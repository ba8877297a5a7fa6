"""The built-in directory's listing is kept between loads (engine/library.py's _listing) only while
none of its directories has changed: a file added, removed or renamed anywhere in it is seen by
the next load, as when the directory was listed at every load."""

import os
import time

from vram_eval import library


def _tree(root):
    (root / "arch").mkdir(parents=True)
    (root / "model.formula").write_text('input arch = "llama"\ninput h [count] = 8\n')
    (root / "arch" / "llama.formula").write_text("width [count] = h\n")
    (root / "arch" / "gpt.formula").write_text("width [count] = 2 * h\n")
    (root / "extra").mkdir()
    (root / "extra" / "deep").mkdir()
    return root


def _settle(root, seconds=3600):
    """Every file and directory's times put back, as a tree that has not changed for a while."""
    past = time.time() - seconds
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (past, past))
    os.utime(root, (past, past))


def _names(root):
    files, variants = library.Library(builtin_dir=root)._layout()
    return sorted(f.path for f in files), {k: sorted(v) for k, v in variants.items()}


def test_a_settled_listing_is_kept_and_each_change_is_seen(tmp_path):
    root = _tree(tmp_path / "formulas")
    _settle(root)
    first = _names(root)
    assert first == (["formulas/model.formula"], {"arch": ["gpt", "llama"]})
    assert str(root) in library._LISTINGS  # settled: kept
    assert _names(root) == first

    (root / "extra" / "deep" / "more.formula").write_text("more [count] = h + 1\n")  # a nested directory
    assert _names(root)[0] == ["formulas/extra/deep/more.formula", "formulas/model.formula"]
    _settle(root)
    assert _names(root)[0] == ["formulas/extra/deep/more.formula", "formulas/model.formula"]

    (root / "arch" / "mamba.formula").write_text("width [count] = 3 * h\n")  # a variant directory
    assert _names(root)[1] == {"arch": ["gpt", "llama", "mamba"]}
    _settle(root)

    (root / "extra" / "deep" / "more.formula").unlink()  # a removal
    assert _names(root)[0] == ["formulas/model.formula"]
    _settle(root)

    (root / "extra" / "deep" / "deeper").mkdir()  # a new directory, then a file in it
    _settle(root)
    _names(root)
    (root / "extra" / "deep" / "deeper" / "x.formula").write_text("x [count] = h\n")
    assert _names(root)[0] == ["formulas/extra/deep/deeper/x.formula", "formulas/model.formula"]


def test_a_directory_changed_just_now_is_listed_at_each_load(tmp_path):
    root = _tree(tmp_path / "formulas")
    _names(root)
    assert str(root) not in library._LISTINGS  # changed within the settling time: not kept
    (root / "extra" / "y.formula").write_text("y [count] = h\n")
    assert _names(root)[0] == ["formulas/extra/y.formula", "formulas/model.formula"]


def test_a_relative_directory_is_listed_at_each_load(tmp_path, monkeypatch):
    _settle(_tree(tmp_path / "formulas"))
    monkeypatch.chdir(tmp_path)
    assert _names(library.Path("formulas"))[0] == ["formulas/model.formula"]
    assert "formulas" not in library._LISTINGS
