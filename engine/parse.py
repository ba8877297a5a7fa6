"""Formula text → Lark parse tree, with located syntax errors.

The grammar lives in ``grammar/formula.lark``; this module loads it once
(cached on disk by Lark, and in memory here) and turns Lark's exceptions into
:class:`FormulaSyntaxError` with the file, line, column and a plain-words
description of what was expected. No Lark object leaves this module except
the tree, which only :mod:`engine.transform` reads.
"""

from __future__ import annotations

import functools
from typing import Iterator, Optional

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import resources
from .errors import FormulaSyntaxError, LimitExceeded, Location

__all__ = ["parse_text", "MAX_NESTING"]

# Deeper bracket nesting than this is refused: nobody writes it, and the
# recursive tree walk after parsing would run out of stack on it.
MAX_NESTING = 64

_OPEN = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}
_CLOSE = {v: k for k, v in _OPEN.items()}

# Plain words for terminals, for "expected ..." in syntax errors.
_WORDS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "QUANTITY": "a quantity such as 24GiB",
    "STRING": 'a "string"',
    "_NL": "end of line",
    "$END": "end of file",
    "COMPARE": "a comparison",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "PERCENT": "'%'",
    "POW": "'^'",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "COMMA": "','",
    "COLON": "':'",
    "EQUAL": "'='",
}


class _Layout:
    """Post-lexer: a line break ends a statement unless the next line is
    indented or a bracket is open (then it is dropped, like Python's implicit
    line joining). Also bounds bracket nesting and remembers open brackets so
    an unclosed one can be reported where it was opened."""

    always_accept = ()

    def __init__(self) -> None:
        self.open_brackets: list = []

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        self.open_brackets = []
        pending: Optional[Token] = None
        for tok in stream:
            if tok.type == "_NL":
                if not self.open_brackets:
                    pending = tok
                continue
            if pending is not None:
                if not _continues(pending):
                    yield pending
                pending = None
            if tok.type in _OPEN:
                self.open_brackets.append(tok)
                if len(self.open_brackets) > MAX_NESTING:
                    raise _TooDeep(tok)
            elif tok.type in _CLOSE and self.open_brackets:
                self.open_brackets.pop()
            yield tok
        if pending is not None:
            yield pending


class _TooDeep(Exception):
    def __init__(self, token: Token) -> None:
        self.token = token


def _continues(newline: Token) -> bool:
    """Does the line after this line break start indented?"""
    tail = newline.value.rsplit("\n", 1)[-1]
    return tail.strip("\r") != ""


@functools.lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark.open(
        str(resources.grammar_path()),
        parser="lalr",
        lexer="basic",
        postlex=_Layout(),
        propagate_positions=True,
        maybe_placeholders=False,
        cache=True,
    )


def parse_text(text: str, path: Optional[str] = None) -> Tree:
    """Parse formula text; raise :class:`FormulaSyntaxError` if it is not valid."""
    parser = _parser()
    try:
        # A final line break ends the last statement even if the file lacks one.
        return parser.parse(text + "\n")
    except _TooDeep as exc:
        tok = exc.token
        raise LimitExceeded[FormulaSyntaxError](
            f"brackets nested more than {MAX_NESTING} deep",
            Location.in_text(path, text, tok.line, tok.column),
            hint="split the expression into named definitions", what="nesting", limit=MAX_NESTING,
        ) from None
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text, path, parser.options.postlex) from None
    except LarkError as exc:  # pragma: no cover - Lark internals; still a user error
        raise FormulaSyntaxError(f"cannot parse: {exc}", Location(path)) from None
    except RecursionError:
        raise LimitExceeded[FormulaSyntaxError]("expression nested too deeply", Location(path), what="nesting") from None


def _syntax_error(exc: UnexpectedInput, text: str, path: Optional[str], layout: _Layout) -> FormulaSyntaxError:
    if isinstance(exc, UnexpectedCharacters):
        line, col = exc.line, exc.column
        char = text[exc.pos_in_stream] if 0 <= exc.pos_in_stream < len(text) else "?"
        message = f"unexpected character {char!r}"
        hint = _hint_for_char(char)
        return FormulaSyntaxError(message, Location.in_text(path, text, line, col), hint=hint, found=char)

    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        if layout.open_brackets:
            tok = layout.open_brackets[-1]
            return FormulaSyntaxError(
                f"'{tok.value}' is never closed",
                Location.in_text(path, text, tok.line, tok.column),
                hint="close the bracket on this line or an indented line below it", found=str(tok.value),
            )
        lines = text.splitlines() or [""]
        return FormulaSyntaxError(
            "unexpected end of file",
            Location.in_text(path, text, len(lines), len(lines[-1]) + 1),
            hint=f"expected {_expected(getattr(exc, 'expected', ()))}",
        )

    assert isinstance(exc, UnexpectedToken)
    tok = exc.token
    expected_names = _acceptable(exc)
    expected = _expected(expected_names)
    if tok.type == "_NL":
        # The line ended too early; point just after its last character.
        hint = f"expected {expected}"
        if layout.open_brackets:
            hint += "; a bracket is open"
        return FormulaSyntaxError("the line ends too early", Location.in_text(path, text, tok.line, tok.column), hint=hint,
                                  found=None)
    shown = tok.value if len(tok.value) <= 30 else tok.value[:27] + "..."
    hint = f"expected {expected}"
    starts_line = text.splitlines()[tok.line - 1][: tok.column - 1].strip() == "" if tok.line <= len(text.splitlines()) else False
    if starts_line and tok.column > 1:
        hint += "; an indented line continues the statement above it"
    elif tok.type in ("NAME", "NUMBER", "QUANTITY", "STRING") and "_NL" in expected_names:
        hint += " (is an operator missing between the two?)"
    width = len(tok.value.splitlines()[0]) if tok.value else 1
    return FormulaSyntaxError(f"unexpected {shown!r}", Location.in_text(path, text, tok.line, tok.column, width), hint=hint,
                              found=str(tok.value))


def _acceptable(exc: UnexpectedToken) -> set:
    """The terminals the parser could really have taken here.

    LALR's own ``expected`` set is too wide after default reductions; asking
    the interactive parser gives the exact set."""
    try:
        return set(exc.interactive_parser.accepts()) or set(exc.expected)
    except Exception:  # pragma: no cover - best effort only
        return set(exc.expected)


_EXPRESSION_START = {"NAME", "NUMBER", "QUANTITY", "STRING", "LPAR", "MINUS", "PLUS", "TRUE", "FALSE", "NOT"}
_OPERATORS = {"PLUS", "MINUS", "STAR", "SLASH", "PERCENT", "POW", "COMPARE", "AND", "OR", "IN", "NOT", "IF", "ELSE", "LPAR", "LSQB"}


def _expected(names) -> str:
    """Plain words for a set of terminal names: 'an expression', 'an operator or end of line'."""
    names = set(names)
    words = []
    if {"NAME", "NUMBER"} <= names:
        words.append("an expression")
        names -= _EXPRESSION_START
    if {"PLUS", "STAR"} <= names:
        words.append("an operator")
        names -= _OPERATORS
    words += sorted({_WORDS.get(n, _keyword(n)) for n in names})
    if not words:
        return "something else"
    if len(words) > 6:
        words = words[:6] + ["..."]
    return ", ".join(words[:-1]) + (" or " if len(words) > 1 else "") + words[-1]


def _keyword(name: str) -> str:
    # Lark names anonymous keyword terminals after their text in upper case.
    return f"'{name.lower()}'" if name.isalpha() else name


def _hint_for_char(char: str) -> Optional[str]:
    if char == ";":
        return "statements end at the end of the line; no ';' is needed"
    if char in "\"'":
        return "strings must close on the same line"
    if char == "\\":
        return "to go on over several lines, indent the following lines"
    if char.isdigit() or char.isnumeric():
        return "only the ASCII digits 0-9 make numbers (is this a full-width or other script's digit?)"
    if char == "\x00" or not char.isprintable():
        return "is this a formula file? it contains a control character"
    return "formulas use names, numbers, + - * / % ^ **, comparisons, brackets and strings"
