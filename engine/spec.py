"""Spec files (TOML, YAML, Hugging Face config.json) and ``--set`` → bindings.

Reading and binding are two steps:

1. :func:`load_spec` reads a file into :class:`Entry` objects — key, raw
   value and location — without knowing the formulas. TOML/YAML sections are
   for people and do not change meaning; a config.json's keys are translated
   by ``specs/catalog/huggingface.toml`` and the rest ignored.
2. :func:`bind` checks each entry against a :class:`RuleSet`: the key must
   name an input or definition (or an alias), the value must suit it
   ("24GiB" for memory, "13B" for counts, one of the allowed strings…).

No TOML/YAML/JSON object leaves this module: values become exact SymPy
numbers, :class:`Text`, :class:`TextSet` or true/false.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from sympy import Basic, Integer, Rational
from sympy.logic.boolalg import false, true

from . import resources
from .errors import Location, SpecError, suggest
from .rules import RuleSet
from .symbols import Text, TextSet
from .units import NumberTooLarge, parse_quantity, unit_hint

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.9/3.10 only
    import tomli as tomllib

__all__ = ["Entry", "Spec", "Binding", "load_spec", "parse_set", "bind", "METADATA_KEYS"]

# Keys that describe a spec rather than bind an input.
METADATA_KEYS = {
    "name": "the model's name, shown in reports",
    "description": "free text",
    "source": "where the numbers come from",
    "notes": "free text",
}


@dataclass(frozen=True)
class Entry:
    """One key of a spec (or one --set), before it is checked against the formulas."""

    key: str  # as written, e.g. "hidden_size"
    value: object  # the raw value: int, float, str, bool or list
    location: Location
    target: Optional[str] = None  # the input it binds, when it differs from key (config.json)
    optional: bool = False  # skip silently if the formulas have no such input (config.json)

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

    def chosen(self) -> Dict[str, Tuple[object, Location]]:
        """Raw values by key, for choosing formula variants before binding."""
        return {e.name: (_raw_text(e.value), e.location) for e in self.entries}


@dataclass(frozen=True)
class Binding:
    name: str  # the canonical input name
    value: Basic
    location: Location
    key: str  # the key as the user wrote it

    @property
    def source(self) -> str:
        return str(self.location.path)


def _raw_text(value):
    return value if isinstance(value, str) else None


# ---------------------------------------------------------------------------
# reading


def find_spec(path: str) -> Path:
    """``path`` itself if it exists, else a built-in spec of that name: ``llama13b``,
    ``llama13b.toml`` and ``specs/llama13b.toml`` all find the installed
    ``specs/llama13b.toml`` from any directory."""
    p = Path(path)
    if p.exists():
        return p
    builtin = resources.specs_dir()
    name = p.name if p.parent in (Path("."), Path("specs")) else None
    if name:
        for candidate in (builtin / name, builtin / f"{name}.toml"):
            if candidate.is_file():
                return candidate
    return p


def load_spec(path: str) -> Spec:
    """Read a spec file into entries; every problem is a located SpecError."""
    shown = str(path)
    p = find_spec(path)
    try:
        data = p.read_bytes()
    except IsADirectoryError:
        raise SpecError("this is a directory, not a spec file", Location(shown),
                        hint="give a .toml, .yaml or config.json file") from None
    except FileNotFoundError:
        raise SpecError("no such file", Location(shown), hint=_nearby_specs_hint(p)) from None
    except OSError as exc:
        raise SpecError(f"cannot read the file: {exc.strerror}", Location(shown)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SpecError(f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x})", Location(shown, line),
                        hint="spec files are UTF-8 TOML, YAML or JSON") from None
    suffix = p.suffix.lower()
    if suffix == ".json":
        return _read_config_json(text, shown)
    if suffix in (".yaml", ".yml"):
        tree, kind = _read_yaml(text, shown), "yaml"
    elif suffix == ".toml":
        tree, kind = _read_toml(text, shown), "toml"
    else:
        raise SpecError(f"unknown spec format '{suffix or p.name}'", Location(shown),
                        hint="a spec is a .toml, .yaml/.yml or Hugging Face config.json file")
    return _from_tree(tree, text, shown, kind)


def _nearby_specs_hint(p: Path) -> Optional[str]:
    try:
        known = [s.name for s in resources.specs_dir().glob("*.toml")]
    except OSError:  # pragma: no cover
        return None
    guess = suggest(p.name, known)
    return (guess[:-1] + f" (in {resources.specs_dir()})") if guess else None


def _read_toml(text: str, shown: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", message)
        line, col = (int(m.group(1)), int(m.group(2))) if m else (None, None)
        message = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", message)
        loc = Location.in_text(shown, text, line, col) if line else Location(shown)
        raise SpecError(f"TOML syntax: {message[:1].lower() + message[1:]}", loc,
                        hint='strings need quotes: weight_dtype = "fp16", memory = "24GiB"') from None


def _read_yaml(text: str, shown: str) -> dict:
    import yaml  # only YAML specs pay for importing it

    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = Location.in_text(shown, text, mark.line + 1, mark.column + 1) if mark else Location(shown)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"YAML syntax: {problem}", loc) from None
    return {} if tree is None else tree


def _from_tree(tree, text: str, shown: str, kind: str) -> Spec:
    if not isinstance(tree, dict):
        raise SpecError("a spec must be a table of keys and values", Location(shown))
    entries: List[Entry] = []
    metadata: Dict[str, str] = {}
    seen: Dict[str, str] = {}

    def walk(node: dict, section: Tuple[str, ...]) -> None:
        for key, value in node.items():
            key = str(key)
            if isinstance(value, dict):
                walk(value, section + (key,))
                continue
            where = _locate(text, shown, section, key, kind)
            dotted = ".".join(section + (key,))
            if key in seen:
                raise SpecError(f"'{key}' is set twice: as {seen[key]} and as {dotted}", where,
                                hint="sections are only for readers; each key may appear once")
            seen[key] = dotted
            if key in METADATA_KEYS and not section:
                metadata[key] = str(value)
                continue
            entries.append(Entry(key, value, where))

    walk(tree, ())
    return Spec(shown, metadata.get("name"), tuple(entries), metadata, kind)


def _locate(text: str, shown: str, section: Tuple[str, ...], key: str, kind: str) -> Location:
    """The line where ``key`` is set (best effort: TOML/YAML parsers forget it)."""
    if kind == "yaml":
        pattern = re.compile(r"^(\s*)" + re.escape(key) + r"\s*:")
    elif kind == "json":
        pattern = re.compile(r'^(\s*)"' + re.escape(key) + r'"\s*:')
    else:
        pattern = re.compile(r'^(\s*)(?:' + re.escape(key) + r'|"' + re.escape(key) + r'")\s*=')
    header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?")
    current: Tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), 1):
        if kind == "toml":
            h = header.match(line)
            if h:
                current = tuple(part.strip().strip('"') for part in h.group(1).split("."))
                continue
            if current != section:
                continue
        m = pattern.match(line)
        if m:
            return Location(shown, number, len(m.group(1)) + 1, line, len(key))
    return Location(shown)


# ---------------------------------------------------------------------------
# Hugging Face config.json


@functools.lru_cache(maxsize=1)
def _hf_catalog() -> dict:
    path = resources.catalog_path("huggingface.toml")
    return tomllib.loads(path.read_text(encoding="utf-8"))


def _read_config_json(text: str, shown: str) -> Spec:
    try:
        tree = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"JSON syntax: {exc.msg}", Location.in_text(shown, text, exc.lineno, exc.colno)) from None
    if not isinstance(tree, dict):
        raise SpecError("a config.json must be a JSON object", Location(shown))
    catalog = _hf_catalog()
    keys: Dict[str, str] = catalog.get("keys", {})
    values: Dict[str, Dict[str, str]] = catalog.get("values", {})
    model_types: Dict[str, dict] = catalog.get("model_types", {})
    entries: List[Entry] = []
    bound = set()
    model_type = tree.get("model_type")
    if isinstance(model_type, str):
        where = _locate(text, shown, (), "model_type", "json")
        if model_type not in model_types:
            hint = suggest(model_type, model_types)
            raise SpecError(
                f"model_type \"{model_type}\" is not one vram-eval knows",
                where,
                hint=(hint + " " if hint else "") + "known: " + ", ".join(sorted(model_types))
                + "; or write a TOML spec with arch = \"gpt\" or \"llama\"",
            )
        for target, value in model_types[model_type].items():
            entries.append(Entry("model_type", value, where, target=target))
            bound.add(target)
    for key, value in tree.items():
        if key not in keys or value is None:
            continue
        target = keys[key]
        if target in bound and key != "model_type":
            # The first key listed in the catalog wins (e.g. n_embd and hidden_size).
            continue
        if target in values and isinstance(value, str):
            value = values[target].get(value, value)
        entries.append(Entry(key, value, _locate(text, shown, (), key, "json"), target=target, optional=True))
        bound.add(target)
    if not any(e.key != "model_type" for e in entries):
        raise SpecError("this config.json has none of the fields vram-eval reads", Location(shown),
                        hint="expected keys such as hidden_size, num_hidden_layers, num_attention_heads, vocab_size")
    # A file named config.json is named by its directory (a Hub snapshot); any other by itself.
    path = Path(shown)
    name = tree.get("_name_or_path") or (path.parent.name if path.name == "config.json" else "") or path.stem
    return Spec(shown, str(name), tuple(entries), {"name": str(name)}, "config.json")


# ---------------------------------------------------------------------------
# --set NAME=VALUE


def parse_set(text: str) -> Entry:
    """``--set s=4096`` → an Entry located on the command line."""
    if "=" not in text:
        raise SpecError("--set needs NAME=VALUE", Location("--set", None, 1, text, len(text)),
                        hint="for example  --set s=4096  or  --set weight_dtype=bf16")
    key, value = text.split("=", 1)
    key, value = key.strip(), value.strip()
    if not key:
        raise SpecError("--set needs a name before '='", Location("--set", None, 1, text))
    if value == "":
        raise SpecError(f"--set {key}= needs a value", Location("--set", None, len(text) + 1, text))
    raw: object = value
    if value.lower() in ("true", "false"):
        raw = value.lower() == "true"
    elif "," in value:
        raw = [v.strip() for v in value.split(",") if v.strip()]
    return Entry(key, raw, Location("--set", None, 1, text, len(key)))


# ---------------------------------------------------------------------------
# binding


def bind(ruleset: RuleSet, entries: Iterable[Entry]) -> Dict[str, Binding]:
    """Check entries against the formulas; later entries override earlier ones."""
    bindings: Dict[str, Binding] = {}
    known = ruleset.known_names()
    for entry in entries:
        name = ruleset.resolve(entry.name)
        if name is None and entry.optional:
            continue
        if name is None:
            hint = suggest(entry.name, known + list(METADATA_KEYS))
            raise SpecError(
                f"unknown key '{entry.key}'" + (f" (for '{entry.target}')" if entry.target else ""),
                entry.location,
                hint=hint or "run `vram-eval explain --list` to see every input and output name",
            )
        rule = ruleset.rules.get(name)
        if rule is not None and rule.kind == "table":
            raise SpecError(f"'{name}' is a table of the formulas and cannot be set", entry.location,
                            notes=[f"{rule.where}: {name} is defined here"])
        value = _convert(entry, name, ruleset)
        bindings.pop(name, None)  # the latest setting comes last: errors point at it first
        bindings[name] = Binding(name, value, entry.location, entry.key)
    return bindings


def _convert(entry: Entry, name: str, ruleset: RuleSet) -> Basic:
    raw = entry.value
    unit = ruleset.unit(name)
    allowed = ruleset.allowed_values(name)
    is_list = ruleset.is_list_input(name)
    what = f"'{entry.key}'"

    def fail(message: str, hint: Optional[str] = None) -> SpecError:
        return SpecError(f"{what}: {message}", entry.location, hint=hint)

    if isinstance(raw, bool):
        if unit not in (None, "bool") or allowed is not None:
            raise fail(f"expects {_expects(unit, allowed)}, not {str(raw).lower()}")
        return true if raw else false
    if isinstance(raw, list):
        if not is_list:
            raise fail(f"expects {_expects(unit, allowed)}, not a list")
        items = []
        for item in raw:
            if not isinstance(item, str):
                raise fail(f"list items must be strings, not {item!r}")
            if allowed is not None and item not in allowed:
                raise fail(f"'{item}' is not one of: {', '.join(sorted(allowed))}", suggest(item, allowed))
            items.append(Text(item))
        return TextSet(*items)
    if isinstance(raw, (int, float)):
        number = _exact(raw)
        kind = None
    elif isinstance(raw, str):
        try:
            parsed = parse_quantity(raw)
        except NumberTooLarge:
            raise fail(f"the number {raw!r} is out of range") from None
        if parsed is None:
            if unit in ("bytes", "count", "ratio"):
                fixed = unit_hint(raw)
                raise fail(
                    f"{raw!r} is not {_expects(unit, None)}",
                    f"did you mean '{raw[: -len(fixed)].strip()}{fixed}'?" if fixed else _unit_examples(unit),
                )
            if is_list:
                return _convert(Entry(entry.key, [raw], entry.location, entry.target), name, ruleset)
            if allowed is not None and raw not in allowed:
                raise fail(f"'{raw}' is not one of: {', '.join(sorted(allowed))}", suggest(raw, allowed))
            return Text(raw)
        value, kind = parsed
        number = Rational(value.numerator, value.denominator)
    else:
        raise fail(f"cannot use a value of type {type(raw).__name__} here")

    if allowed is not None or unit in ("text", "list", "bool") or is_list:
        raise fail(f"expects {_expects(unit, allowed)}, not the number {raw}")
    if kind == "count" and unit == "bytes":
        raise fail(f"{raw!r} is a count (K/M/B/T = 10^3..10^12), but this is memory",
                   'give a byte unit, for example "24GiB" or "80GB"')
    if kind == "bytes" and unit in ("count", "ratio"):
        raise fail(f"{raw!r} is memory, but this is {'a count' if unit == 'count' else 'a plain number'}")
    return number


def _exact(raw) -> Rational:
    if isinstance(raw, int):
        return Integer(raw)
    if raw != raw or raw in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    # repr() is the shortest decimal that round-trips: 0.1 stays 1/10.
    f = Fraction(repr(raw))
    return Rational(f.numerator, f.denominator)


def _expects(unit: Optional[str], allowed) -> str:
    if allowed is not None:
        return "one of: " + ", ".join(sorted(allowed))
    return {
        "bytes": 'a memory size such as "24GiB" or a number of bytes',
        "count": 'a count such as 4096 or "13B"',
        "ratio": "a number",
        "bool": "true or false",
        "text": "a string",
        "list": "a list of strings",
    }.get(unit, "a value")


def _unit_examples(unit: Optional[str]) -> Optional[str]:
    if unit == "bytes":
        return "memory units: KiB MiB GiB TiB (powers of 2), KB MB GB TB (powers of 10)"
    if unit == "count":
        return "count suffixes: K M B T (10^3, 10^6, 10^9, 10^12)"
    return None
