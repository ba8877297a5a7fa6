"""Byte and count quantities: exact parsing of "24GiB", "80 GB", "13B", and
formatting for reports.

Memory is in bytes inside the engine. Binary units are powers of 2
(1 GiB = 2^30 bytes), decimal units powers of 10 (1 GB = 10^9 bytes), as in
IEC 80000-13. Counts use K/M/B/T = 10^3..10^12 (parameter counts are quoted
that way: "13B" is 13 × 10^9 parameters, never bytes).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Optional, Tuple

__all__ = [
    "BYTE_UNITS",
    "COUNT_UNITS",
    "UNIT_NAMES",
    "parse_number",
    "parse_quantity",
    "format_bytes",
    "format_count",
    "format_number",
    "NumberTooLarge",
]

BYTE_UNITS = {
    "B": 1,  # only ever used for output; "13B" in input is a count
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
    "PiB": 2**50,
    "kB": 10**3,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "PB": 10**15,
}

COUNT_UNITS = {"K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}

# Units a definition or input may declare, and what each means.
UNIT_NAMES = {
    "bytes": "memory, in bytes",
    "count": "a number of things (parameters, tokens, GPUs)",
    "ratio": "a plain number",
    "bool": "true or false",
    "text": "a string, one of a fixed set",
    "list": "a list of strings",
}

# Decimal exponents beyond this are refused: 1e400 bytes is no memory size,
# and 1e999999999 would take minutes to expand exactly.
MAX_EXPONENT = 400
# Nor are numbers written with more digits than this (Python refuses to convert
# more than 4300 digits to int by default anyway).
MAX_DIGITS = 400
# No input value (a count, a memory size, a plain number) may exceed this in
# magnitude, with its unit applied: 10^30 is a million times the bytes of every
# disk ever made, and far beyond any parameter or token count, so a larger value
# is a typo or an attack, never a model. Within it every value is also a finite float.
MAX_MAGNITUDE = 10**30
MAX_MAGNITUDE_TEXT = "10^30"

# Only ASCII digits are digits: "１２８" (full-width) or "١٢٨" (Arabic-Indic) are
# not numbers, though Python's \d and int() would take them.
_NUMBER = re.compile(r"^\s*([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?\s*$", re.ASCII)
_QUANTITY = re.compile(r"^\s*([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]+)\s*$", re.ASCII)


class NumberTooLarge(ValueError):
    """A number beyond MAX_DIGITS, MAX_EXPONENT or MAX_MAGNITUDE; ``str()`` says which bound."""


def parse_number(text: str) -> Optional[Fraction]:
    """An exact decimal number ("13e9", "0.5", ".25"), or None if ``text`` is none."""
    m = _NUMBER.match(text)
    if not m:
        return None
    sign, mantissa, exponent = m.groups()
    if len(mantissa) > MAX_DIGITS:
        raise NumberTooLarge(f"numbers are limited to {MAX_DIGITS} digits")
    if exponent and (len(exponent) > 6 or abs(int(exponent)) > MAX_EXPONENT):
        raise NumberTooLarge(f"exponents are limited to ±{MAX_EXPONENT}")
    exp = int(exponent) if exponent else 0
    if "." in mantissa:
        whole, frac = mantissa.split(".")
        value = Fraction(int((whole or "0") + frac) if (whole or frac) else 0, 10 ** len(frac))
    else:
        value = Fraction(int(mantissa))
    value *= Fraction(10) ** exp
    return -value if sign == "-" else value


def parse_quantity(text: str) -> Optional[Tuple[Fraction, Optional[str]]]:
    """``(value, kind)`` for "24GiB" → (24·2^30, "bytes"), "13B" → (13·10^9, "count"),
    "42" → (42, None); None when ``text`` is not a number with a known unit.

    Raises :class:`NumberTooLarge` beyond the bounds (digits, exponent, and
    MAX_MAGNITUDE once the unit is applied)."""
    parsed = _parse_quantity(text)
    if parsed is not None and abs(parsed[0]) > MAX_MAGNITUDE:
        raise NumberTooLarge(f"values are limited to {MAX_MAGNITUDE_TEXT} in magnitude")
    return parsed


def _parse_quantity(text: str) -> Optional[Tuple[Fraction, Optional[str]]]:
    plain = parse_number(text)
    if plain is not None:
        return plain, None
    m = _QUANTITY.match(text)
    if not m:
        return None
    number, unit = m.groups()
    value = parse_number(number)
    if value is None:
        return None
    if unit in COUNT_UNITS:
        return value * COUNT_UNITS[unit], "count"
    if unit in BYTE_UNITS and unit != "B":
        return value * BYTE_UNITS[unit], "bytes"
    return None


def unit_hint(text: str) -> Optional[str]:
    """For a quantity with an unknown unit, the closest known one (e.g. 'gib')."""
    m = _QUANTITY.match(text)
    if not m:
        return None
    unit = m.group(2)
    for known in list(BYTE_UNITS) + list(COUNT_UNITS):
        if known.lower() == unit.lower() and known != "B":
            return known
    return None


# Beyond this magnitude a report writes a number as "1.23e+400": float() cannot hold it,
# and its exact digits (up to 4,300 before Python refuses to print them) would fill the screen.
_FLOAT_LIMIT = Fraction(10) ** 300


def _fraction(value) -> Fraction:
    """An exact Fraction of an int, Fraction, float or SymPy number (without str() of huge ints)."""
    if isinstance(value, (int, Fraction)):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(repr(value))  # the shortest decimal that round-trips, as before
    p, q = getattr(value, "p", None), getattr(value, "q", None)  # a SymPy Integer or Rational
    if isinstance(p, int) and isinstance(q, int):
        return Fraction(p, q)
    return Fraction(str(value))


def _scientific(x: Fraction, digits: int = 3) -> str:
    """``x`` as "1.23e+400", computed exactly (no float overflow), for any magnitude."""
    if x == 0:
        return "0"
    sign, x = ("-" if x < 0 else ""), abs(x)
    exponent = int((x.numerator.bit_length() - x.denominator.bit_length()) * 0.30102999566398120)
    mantissa = x / Fraction(10) ** exponent
    while mantissa >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    while mantissa < 1:
        mantissa, exponent = mantissa * 10, exponent - 1
    text = f"{float(mantissa):.{digits}g}"
    if text.startswith("10"):  # 9.999 rounded up
        text, exponent = "1", exponent + 1
    return f"{sign}{text}e{exponent:+d}"


def _huge(x: Fraction) -> bool:
    return abs(x) >= _FLOAT_LIMIT


def format_bytes(value, unit: str = "GiB", digits: int = 2) -> str:
    """``format_bytes(26e9)`` → "24.21 GiB"; small values keep 3 significant digits
    ("0.00781 GiB") so that nothing non-zero prints as 0.00; beyond 10^300, "1.23e+400 GiB"."""
    if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
        return f"{value} {unit}"
    exact = _fraction(value) / BYTE_UNITS[unit]
    if _huge(exact):
        return f"{_scientific(exact)} {unit}"
    scaled = float(exact)
    if scaled != 0 and abs(scaled) < 0.995:
        return f"{scaled:.3g} {unit}"
    return f"{scaled:,.{digits}f} {unit}"


def format_count(value) -> str:
    """13015864320 → "13.02B"; small counts as they are."""
    if not isinstance(value, float) and _huge(_fraction(value)):
        return _scientific(_fraction(value))
    v = float(value)
    for suffix, factor in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if abs(v) >= factor:
            return f"{v / factor:,.2f}{suffix}"
    return format_number(value)


def format_number(value) -> str:
    """Integers exactly; other numbers with up to 6 significant digits (beyond 10^300: "1.23e+400")."""
    if not isinstance(value, float) and _huge(_fraction(value)):
        return _scientific(_fraction(value))
    if isinstance(value, int) or (isinstance(value, Fraction) and value.denominator == 1):
        return f"{int(value):,}"
    return f"{float(value):.6g}"
