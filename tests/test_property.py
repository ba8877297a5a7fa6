"""Whatever the text, the parser either succeeds or raises the project's error type."""

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vram_eval
from vram_eval.rules import RuleSet

ROOT = Path(__file__).resolve().parent.parent
FILES = [p.read_text() for p in sorted((ROOT / "formulas").rglob("*.formula"))]
ALPHABET = st.sampled_from(list("abhLsN_019.eE+-*/%^()[]{},:=<>!\"' \n\t#") + ["if", "else", "and", "not", "in",
                                                                             "input", "require", "GiB", " MB", "**"])


def parse_or_engine_error(text: str) -> None:
    try:
        file = vram_eval.parse_formulas(text, path="fuzz.formula")
        RuleSet.build([file])
    except vram_eval.EngineError as exc:
        assert exc.render()  # and it renders


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_arbitrary_text(text):
    parse_or_engine_error(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ALPHABET, max_size=60).map("".join))
def test_formula_like_token_soup(text):
    parse_or_engine_error(text)


@st.composite
def mutated(draw):
    """A real formula file with a few characters deleted, inserted or replaced (one file at a
    time: parsing the whole library per example took two minutes)."""
    text = draw(st.sampled_from(FILES))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["delete", "insert", "replace"]))
        piece = draw(st.text(min_size=1, max_size=3) | ALPHABET)
        if op == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 20)):]
        elif op == "insert":
            text = text[:i] + piece + text[i:]
        else:
            text = text[:i] + piece + text[i + len(piece):]
    return text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_valid_files(text):
    parse_or_engine_error(text)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_from_a_file(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "junk.formula"
    path.write_bytes(data)
    try:
        vram_eval.Library([str(path)]).user_files()
    except vram_eval.EngineError as exc:
        assert exc.path == str(path)
