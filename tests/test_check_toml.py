"""`vram-eval check` parses the TOML data files the engine reads at run time (the catalogs of
specs/catalog/ and formulas/jobs.toml): a syntax error is reported with file, line and column at
check time, not first met by a run that reads the file (issue 13)."""

from __future__ import annotations

import shutil

import pytest

from vram_eval import resources
from vram_eval.check import check_paths
from vram_eval.errors import SpecSyntaxError
from vram_eval.report import render_check

# an inline table over two lines: TOML 1.0 (tomllib) refuses the newline inside { }
BROKEN = "\n[broken]\nspeeds = { fp16 = 1,\n  bf16 = 2 }\n"


def test_the_built_in_catalogs_and_jobs_file_are_parsed():
    report = check_paths()
    names = {t.rsplit("/", 1)[-1] for t in report.tomls}
    assert {"huggingface.toml", "gpus.toml", "checkpoints.toml", "jobs.toml"} <= names
    assert report.errors == []


def test_a_catalog_with_a_multi_line_inline_table_is_a_located_error(tmp_path):
    catalogs = tmp_path / "catalog"
    shutil.copytree(resources.specs_dir() / "catalog", catalogs)
    path = catalogs / "gpus.toml"
    lines = path.read_text().count("\n")
    path.write_text(path.read_text() + BROKEN)
    report = check_paths(catalog_dir=catalogs)
    assert len(report.errors) == 1
    error = report.errors[0]
    assert isinstance(error, SpecSyntaxError)
    assert error.location.path.endswith("catalog/gpus.toml")
    assert (error.location.line, error.location.column) == (lines + 3, 21)
    out, err = render_check(report)
    assert f"catalog/gpus.toml:{lines + 3}:21: error: TOML syntax" in err
    assert "speeds = { fp16 = 1," in err


def test_a_broken_jobs_file_of_a_formulas_tree_is_a_located_error(tmp_path):
    tree = tmp_path / "formulas"
    shutil.copytree(resources.formulas_dir(), tree)
    jobs = tree / "jobs.toml"
    jobs.write_text(jobs.read_text() + BROKEN)
    report = check_paths(builtin_dir=tree)
    located = [e for e in report.errors if e.location.path == "formulas/jobs.toml"]
    assert located and located[0].location.line is not None and located[0].location.column is not None


@pytest.mark.parametrize("text", ["x = 1\nx = 2\n", "a = [1, 2\n"])
def test_other_toml_errors_name_the_line_too(tmp_path, text):
    catalogs = tmp_path / "catalog"
    catalogs.mkdir()
    (catalogs / "mine.toml").write_text(text)
    report = check_paths(catalog_dir=catalogs)
    assert [e.location.path for e in report.errors] == ["tmp_path_catalog/mine.toml".replace("tmp_path_catalog",
                                                                                              tmp_path.name + "/catalog")]
    assert report.errors[0].location.line is not None
