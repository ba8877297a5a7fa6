"""Hugging Face config.json specs: the JSON read strictly (duplicate keys, depth and
numbers bounded), its keys translated by ``specs/catalog/huggingface.toml`` into
entries and the rest ignored.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from pathlib import Path
from typing import Dict, List, Tuple

from . import resources
from .errors import Location, SpecError
from .spec_file import MAX_DEPTH, MAX_ENTRIES, _BadNumber, _check_text, _describe, _finite_float, _Lines, _short
from .spec_types import Entry, Spec
from .units import MAX_DIGITS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.9/3.10 only
    import tomli as tomllib


# The catalog, as messages and the report name it.
CATALOG_SHOWN = "specs/catalog/huggingface.toml"


@functools.lru_cache(maxsize=1)
def _hf_catalog() -> dict:
    path = resources.catalog_path(CATALOG_SHOWN.rsplit("/", 1)[-1])
    return tomllib.loads(path.read_text(encoding="utf-8"))


class _JsonDuplicate(Exception):
    pass


def _json_pairs(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise _JsonDuplicate(key)
        out[key] = value
    return out


def _json_int(text: str):
    digits = len(text.lstrip("-"))
    return int(text) if digits <= MAX_DIGITS else _BadNumber(text, f"longer than {MAX_DIGITS} digits")


def _json_constant(text: str):
    return _BadNumber(text, "not a finite number")


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],:]', re.S)


def _json_scan(text: str):
    """(event, depth, key token, offset, object number) for each key and each opening
    bracket of a JSON text: where things are, which json.loads does not say."""
    stack: List[str] = []
    expect_key = False
    objects: List[int] = []
    serial = 0
    for m in _JSON_TOKEN.finditer(text):
        token = m.group()
        if token in "{[":
            stack.append(token)
            if token == "{":
                serial += 1
                objects.append(serial)
            expect_key = token == "{"
            yield "open", len(stack), None, m.start(), None
        elif token in "}]":
            if stack:
                if stack.pop() == "{":
                    objects.pop()
            expect_key = False
        elif token == ",":
            expect_key = bool(stack) and stack[-1] == "{"
        elif token == ":":
            expect_key = False
        elif expect_key:
            yield "key", len(stack), token, m.start(), objects[-1] if objects else 0
            expect_key = False


def _json_decode_key(token: str) -> str:
    try:
        return json.loads(token)
    except ValueError:
        return token[1:-1]


def _json_too_deep(value) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                return True
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return False


def _list_counts(key: str, value, rule: dict, where: Location) -> List[Entry]:
    """A per-layer list such as ``layer_types`` → how many entries it has and how many of each
    kind the formulas count (the catalog's [lists.KEY]: which input gets which count)."""
    if not isinstance(value, list):
        raise SpecError(f'"{key}" must be a list, not {_describe(value)}', where)
    if "counts" in rule and not all(isinstance(item, str) for item in value):
        raise SpecError(f'"{key}" must be a list of strings, one per layer', where)
    known = rule.get("known")
    for item in value if known is not None else ():
        if item not in known:
            raise SpecError(f'"{key}" lists the layer kind "{_short(item)}", which vram-eval does not model',
                            where, hint="modelled kinds: " + ", ".join(known))
    entries = [Entry(key, len(value), where, target=rule["length"], optional=True)]
    for kind, target in rule.get("counts", {}).items():
        entries.append(Entry(key, sum(item == kind for item in value), where, target=target, optional=True))
    return entries


def _read_config_json(lines: _Lines) -> Spec:
    text, shown = lines.text, lines.shown
    too_deep = f"objects and lists are nested more than {MAX_DEPTH} levels deep"

    def deep_location() -> Location:
        for event, depth, _, offset, _ in _json_scan(text):
            if event == "open" and depth > MAX_DEPTH:
                return lines.offset(offset)
        return lines.at(1, 1)

    try:
        tree = json.loads(text, object_pairs_hook=_json_pairs, parse_int=_json_int,
                          parse_float=_finite_float, parse_constant=_json_constant)
    except json.JSONDecodeError as exc:
        raise SpecError(f"JSON syntax: {exc.msg}", lines.at(exc.lineno, exc.colno)) from None
    except _JsonDuplicate as exc:
        key = exc.args[0]
        where, seen = lines.at(1, 1), set()
        for event, _, token, offset, obj in _json_scan(text):
            if event == "key" and _json_decode_key(token) == key:
                if obj in seen:
                    where = lines.offset(offset, len(token))
                    break
                seen.add(obj)
        raise SpecError(f"\"{_short(key)}\" is set twice in one JSON object", where,
                        hint="each key may appear once (Python's json would silently keep the last)") from None
    except RecursionError:
        raise SpecError(too_deep, deep_location(), hint="a config.json needs two or three levels") from None
    if not isinstance(tree, dict):
        raise SpecError("a config.json must be a JSON object", lines.at(1, 1))
    if _json_too_deep(tree):
        raise SpecError(too_deep, deep_location(), hint="a config.json needs two or three levels")

    if len(tree) > MAX_ENTRIES:
        where = lines.at(1, 1)
        for number, (event, depth, token, offset, _) in enumerate(
                (e for e in _json_scan(text) if e[0] == "key" and e[1] == 1), 1):
            if number > MAX_ENTRIES:
                where = lines.offset(offset, len(token))
                break
        raise SpecError(f"more than {MAX_ENTRIES:,} keys, the most a config.json may have", where,
                        hint="is this a model's config.json?")

    positions: Dict[str, Tuple[int, int]] = {}
    scan = (e for e in _json_scan(text) if e[0] == "key" and e[1] == 1)

    def locate(key: str) -> Location:
        """Where a top-level key is: the text is scanned only as far as needed."""
        while key not in positions:
            found = next(scan, None)
            if found is None:
                return lines.at(1, 1)
            positions.setdefault(_json_decode_key(found[2]), (found[3], len(found[2])))
        offset, width = positions[key]
        return lines.offset(offset + 1, width - 2)  # the key, inside its quotes

    catalog = _hf_catalog()
    keys: Dict[str, str] = catalog.get("keys", {})
    values: Dict[str, Dict[str, str]] = catalog.get("values", {})
    model_types: Dict[str, dict] = catalog.get("model_types", {})
    known = "known: " + ", ".join(sorted(model_types))
    if not any(key in keys and value is not None for key, value in tree.items()):
        raise SpecError("this config.json has none of the fields vram-eval reads", lines.at(1, 1),
                        hint="expected keys such as hidden_size, num_hidden_layers, num_attention_heads, vocab_size")
    entries: List[Entry] = []
    model_type = tree.get("model_type")
    if model_type is None:
        raise SpecError('this config.json has no "model_type", so the architecture is unknown', lines.at(1, 1),
                        hint=f'add "model_type" ({known}), or write a TOML spec with arch = "llama" or "gpt" '
                        "and the sizes instead")
    where = locate("model_type")
    if not isinstance(model_type, str):
        raise SpecError(f'"model_type" must be a string such as "llama", not {_describe(model_type)}', where,
                        hint=known)
    if model_type not in model_types:
        # No "did you mean": a family with a similar name (qwen3_moe, qwen3) often has other layers.
        raise SpecError(
            f"model_type \"{_short(model_type)}\" is not one vram-eval knows",
            where,
            hint=known + ". To get an answer anyway, write a TOML spec with arch = \"llama\" or \"gpt\" and "
            "the sizes (README, \"Specs\"), or add the family to specs/catalog/huggingface.toml "
            "(README, \"Adding a model family\")",
        )
    # The model type's bindings come first; the config's own keys (later entries win)
    # override them, except those the catalog fixes for the type.
    for target, value in catalog.get("every_config", {}).items():
        entries.append(Entry("default_context", value, Location(CATALOG_SHOWN), target=target))
    for target, value in model_types[model_type].items():
        entries.append(Entry("model_type", value, where, target=target))
    bound = set(catalog.get("fixed", {}).get(model_type, ()))
    renamed: Dict[str, str] = catalog.get("renamed", {}).get(model_type, {})
    lists: Dict[str, dict] = catalog.get("lists", {})
    null_as: Dict[str, object] = catalog.get("null_as", {})
    for key, value in tree.items():
        if value is None and key in null_as:
            value = null_as[key]  # a null that means something (DeepSeek-V2-Lite's q_lora_rank: no latent)
        if key in lists and value is not None:
            entries.extend(_list_counts(key, value, lists[key], locate(key)))
            continue
        targets = renamed.get(key, keys.get(key))
        if targets is None or value is None:
            continue
        # A key may feed several inputs (StarCoder2's use_bias: attention and MLP biases).
        for target in [targets] if isinstance(targets, str) else targets:
            if target in bound:
                # The first of several config keys for one input wins (e.g. n_embd and hidden_size).
                continue
            _check_text(key, value, locate(key))
            given = values[target].get(value, value) if target in values and isinstance(value, str) else value
            entries.append(Entry(key, given, locate(key), target=target, optional=True))
            bound.add(target)
    # A file named config.json is named by its directory (a Hub snapshot); any other by itself.
    path = Path(shown)
    name = tree.get("_name_or_path") or (path.parent.name if path.name == "config.json" else "") or path.stem
    _check_text("_name_or_path", str(name), locate("_name_or_path"), metadata=True)
    return Spec(shown, str(name), tuple(entries), {"name": str(name)}, "config.json")
