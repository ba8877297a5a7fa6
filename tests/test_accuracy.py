"""docs/ACCURACY.md is regenerated from the measurements on record and stays in date.

If a formula change moves a prediction, this test fails until the table is regenerated
(python -m validation.accuracy), so the change shows in review — and tests/test_measured*.py
fail outright when a prediction leaves its target."""

from validation import accuracy


def test_accuracy_table_is_up_to_date():
    assert accuracy.main(["--check"]) == 0, "run: python -m validation.accuracy"


def test_every_row_is_within_its_target():
    text = accuracy.build()
    summary = text.split("## Every case")[0]
    assert "| NO |" not in summary
