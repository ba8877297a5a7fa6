"""Spec files (TOML, YAML, Hugging Face config.json) and ``--set`` → bindings.

Reading and binding are two steps:

1. :func:`load_spec` reads a file into :class:`Entry` objects — key, raw
   value and location — without knowing the formulas. TOML/YAML sections are
   for people and do not change meaning; a config.json's keys are translated
   by ``specs/catalog/huggingface.toml`` and the rest ignored.
2. :func:`bind` checks each entry against a :class:`RuleSet`: the key must
   name an input or definition (or an alias), the value must suit it
   ("24GiB" for memory, "13B" for counts, one of the allowed strings…).

No TOML/YAML/JSON object leaves the spec modules: values become exact numbers
(int where whole, else Fraction), strings, tuples of strings (a list) or True/False. Reading a file safely and
its bounds are in spec_file; each format has its own module (spec_toml, spec_yaml,
spec_hf). Duplicate keys are refused in every format, and each value is checked
against its input's unit where it enters (counts whole and >= 0, memory >= 0,
booleans only from booleans).
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from . import resources
from .errors import (ArgumentSyntaxError, DuplicateDefinition, InvalidValue, LimitExceeded, Location, SpecError,
                     SpecSyntaxError, UnknownName, UnreadableFile, WrongKind, closest, did_you_mean)
from .rules import RuleSet
from .spec_file import (MAX_DEPTH, MAX_ENTRIES, _NUMBER_BOUNDS, _UNSHOWABLE, _BadNumber, _check_lines, _check_text,
                        _describe, _Lines, _read_text, _short)
from .spec_hf import _read_config_json
from .spec_toml import _read_toml
from .spec_types import METADATA_KEYS, Binding, Entry, Spec
from .units import MAX_MAGNITUDE, NumberTooLarge, parse_quantity, unit_hint
from .values import plain_number

__all__ = ["Entry", "Spec", "Binding", "load_spec", "parse_set", "bind", "METADATA_KEYS"]


def find_spec(path: str) -> Path:
    """``path`` itself if it exists, else a built-in spec of that name: ``llama13b``,
    ``llama13b.toml`` and ``specs/llama13b.toml`` all find the installed
    ``specs/llama13b.toml`` from any directory."""
    p = Path(path)
    try:
        if p.exists():
            return p
        builtin = resources.specs_dir()
        name = p.name if p.parent in (Path("."), Path("specs")) else None
        if name:
            for candidate in (builtin / name, builtin / f"{name}.toml"):
                if candidate.is_file():
                    return candidate
    except (OSError, ValueError):  # a name too long, a NUL byte: _read_bytes says so
        pass
    return p


def load_spec(path: str, fetch: bool = False) -> Spec:
    """Read a spec file, a model folder or a Hub id of the local Hugging Face cache into
    entries; every problem is a located SpecError. With ``fetch``, a Hub id the cache does not
    hold is read from the Hub: its config.json and safetensors headers only (engine/fetch.py)."""
    shown = _UNSHOWABLE.sub("\ufffd", str(path))
    p = find_spec(path)
    try:
        is_dir, exists = p.is_dir(), p.exists()
    except (OSError, ValueError):  # a name too long, a NUL byte: _read_bytes says so
        is_dir = exists = False
    if is_dir:
        return _load_folder(p, shown, None)
    if p.suffix.lower() == ".gguf":
        return _load_gguf(p, shown)
    if not exists:
        from .hub import looks_like_hub_id, snapshot_folder

        if looks_like_hub_id(str(path)):
            try:
                folder = snapshot_folder(str(path))
            except SpecError:
                if not fetch:
                    raise
                return _fetched(str(path), shown)
            return _load_folder(folder, None, shown)
    text = _read_text(p, shown)
    suffix = p.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml", ".toml"):
        raise UnreadableFile[SpecError](f"unknown spec format '{_short(suffix or p.name)}'", Location(shown),
                                        hint="a spec is a .toml, .yaml/.yml or Hugging Face config.json file",
                                        file=shown, reason="format")
    lines = _Lines(shown, text)
    _check_lines(lines)
    if suffix == ".json":
        return _read_config_json(lines)
    if suffix == ".toml":
        tree, locate = _read_toml(lines)
        return _from_tree(tree, lines, locate, "toml")
    from .spec_yaml import _read_yaml  # only YAML specs pay for the YAML reader (and PyYAML)

    tree, locate = _read_yaml(lines)
    return _from_tree(tree, lines, locate, "yaml")


def _fetched(hub_id: str, shown: str) -> Spec:
    """A Hub id read from the Hub (config.json and the weight files' headers) into a temporary
    folder, read as a model folder, and the folder removed."""
    import tempfile

    from .fetch import fetch_snapshot
    from .hub import parse_hub_id

    org, name, revision = parse_hub_id(hub_id)
    with tempfile.TemporaryDirectory(prefix="vram-eval-fetch-") as folder:
        return _load_folder(fetch_snapshot(hub_id, org, name, revision, Path(folder) / "snapshot"), None, shown)


_LOADED_AS = ("fp32", "fp16", "bf16")


def _load_gguf(path: Path, shown: str) -> Spec:
    """A GGUF file: its metadata read as the config.json it stands for (specs/catalog/gguf.toml),
    its tensors as the checkpoint (engine/gguf_header.py)."""
    import json

    from .gguf_header import catalog, config_of, read_gguf

    metadata, checkpoint = read_gguf(path, shown)
    config = config_of(metadata, [t.name for t in checkpoint.tensors], shown)
    lines = _Lines(f"{shown} (its metadata as a config.json)", json.dumps(config, indent=2))
    spec = _read_config_json(lines)
    defaults = tuple(Entry(k, v, Location(shown)) for k, v in catalog().get("defaults", {}).items())
    entries = spec.entries + tuple(checkpoint.entries(Location(shown))) + defaults
    return _with_checkpoint(spec, shown, str(config.get("_name_or_path") or path.stem), entries, checkpoint)


def _with_checkpoint(spec: Spec, path: str, name: str, entries, checkpoint) -> Spec:
    """A config.json's spec as the model folder (or GGUF file) it was read from."""
    import dataclasses

    return dataclasses.replace(spec, path=path, name=name, entries=entries, checkpoint=checkpoint,
                               metadata=dict(spec.metadata, name=name))


def _load_folder(folder: Path, shown: Optional[str], hub_id: Optional[str]) -> Spec:
    """A model folder (a save_pretrained output, a Hub snapshot): its config.json read as a
    config.json is, and the checkpoint its safetensors headers describe (engine/checkpoint.py)."""
    from .checkpoint import read_checkpoint

    where = shown if shown is not None else _UNSHOWABLE.sub("\ufffd", str(folder))
    config = folder / "config.json"
    if not config.is_file():
        raise UnreadableFile[SpecError]("this is a directory without a config.json, so not a model folder",
                                        Location(where), hint="give a model folder (config.json and its *.safetensors, "
                                        "as save_pretrained writes it), a Hub id, or a .toml, .yaml or config.json spec",
                                        file=where, reason="directory")
    text = _read_text(config, f"{where}/config.json")
    lines = _Lines(f"{where}/config.json", text)
    _check_lines(lines)
    spec = _read_config_json(lines)
    checkpoint = read_checkpoint(folder, where)
    entries = spec.entries + (tuple(checkpoint.entries(Location(where))) if checkpoint else ())
    if checkpoint and checkpoint.dtype in _LOADED_AS and not any(e.name == "weight_dtype" for e in spec.entries):
        # transformers loads a model in the dtype its config names, else in its weights' own
        # (from_pretrained's dtype="auto", the default since transformers 4.56)
        entries += (Entry("weight_dtype", checkpoint.dtype, Location(where)),)
    name = hub_id or (spec.name if Path(where).name else folder.resolve().name)
    return _with_checkpoint(spec, hub_id or where, name, entries, checkpoint)


# ---------------------------------------------------------------------------
# TOML and YAML trees → entries


def _from_tree(tree, lines: _Lines, locate, kind: str) -> Spec:
    shown = lines.shown
    if not isinstance(tree, dict):
        raise SpecSyntaxError("a spec must be a table of keys and values", lines.at(1, 1), format=kind)
    entries: List[Entry] = []
    metadata: Dict[str, str] = {}
    seen: Dict[str, str] = {}
    first: Dict[str, Location] = {}
    count = 0

    def limit(where: Location) -> SpecError:
        return LimitExceeded[SpecError](f"more than {MAX_ENTRIES:,} keys and list items, the most a spec may have",
                                        where, hint="a spec has a few dozen keys: is this the right file?",
                                        what="entries", limit=MAX_ENTRIES)

    def too_deep(where: Location) -> SpecError:
        return LimitExceeded[SpecError](f"tables and lists are nested more than {MAX_DEPTH} levels deep", where,
                                        hint="a spec needs two or three levels", what="nesting", limit=MAX_DEPTH)

    def measure(value, depth: int, where: Location) -> None:
        """Count the items of a list value (aliases expanded, as the engine would)."""
        nonlocal count
        stack = [(value, depth)]
        while stack:
            item, level = stack.pop()
            if isinstance(item, (list, dict)):
                if level > MAX_DEPTH:
                    raise too_deep(where)
                count += len(item)
                if count > MAX_ENTRIES:
                    raise limit(where)
                stack.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))

    def walk(node: dict, section: Tuple[str, ...]) -> None:
        nonlocal count
        for key, value in node.items():
            count += 1
            if count > MAX_ENTRIES:
                raise limit(locate(node, section, key))
            if isinstance(value, dict):
                if len(section) + 2 > MAX_DEPTH:
                    raise too_deep(locate(node, section, key))
                walk(value, section + (str(key),))
                continue
            where = locate(node, section, key)
            key = str(key)
            measure(value, len(section) + 2, where)
            dotted = ".".join(section + (key,))
            if key in seen:
                raise DuplicateDefinition[SpecError](
                    f"'{_short(key)}' is set twice: as {_short(seen[key])} and as {_short(dotted)}",
                    where, hint="sections are only for readers; each key may appear once", name=key, first=first[key])
            seen[key] = dotted
            first[key] = where
            _check_text(key, value, where, metadata=key in METADATA_KEYS and not section)
            if key in METADATA_KEYS and not section:
                metadata[key] = str(value)
                continue
            entries.append(Entry(key, value, where))

    walk(tree, ())
    return Spec(shown, metadata.get("name"), tuple(entries), metadata, kind)


# ---------------------------------------------------------------------------
# --set NAME=VALUE


def parse_set(text: str) -> Entry:
    """``--set s=4096`` → an Entry located on the command line."""
    shown = _UNSHOWABLE.sub("\ufffd", text)
    if "=" not in text:
        raise ArgumentSyntaxError("--set needs NAME=VALUE", Location("--set", None, 1, shown, len(text)),
                                  hint="for example  --set s=4096  or  --set weight_dtype=bf16", option="--set", text=text)
    key, value = text.split("=", 1)
    key, value = key.strip(), value.strip()
    if not key:
        raise ArgumentSyntaxError("--set needs a name before '='", Location("--set", None, 1, shown), option="--set",
                                  text=text)
    if value == "":
        raise ArgumentSyntaxError(f"--set {_short(key)}= needs a value", Location("--set", None, len(text) + 1, shown),
                                  option="--set", text=text)
    raw: object = value
    if value.lower() in ("true", "false"):  # the documented spellings, in any case
        raw = value.lower() == "true"
    elif "," in value:
        raw = [v.strip() for v in value.split(",") if v.strip()]
    start = text.index("=") + 1
    start += len(text[start:]) - len(text[start:].lstrip())
    value_at = Location("--set", None, start + 1, shown, len(value))
    _check_text(key, raw, value_at)
    return Entry(key, raw, Location("--set", None, 1, shown, len(key)), value_at=value_at)


# ---------------------------------------------------------------------------
# binding


@functools.lru_cache(maxsize=1)
def aliases() -> dict:
    """specs/catalog/aliases.toml: the ecosystem's names of values (``values``) and of inputs
    that set one of vram-eval's (``inputs``)."""
    data = resources.catalog("aliases.toml")
    return {"values": data.get("values", {}), "inputs": data.get("inputs", {})}


def _input_alias(entry: Entry, alias: dict) -> Entry:
    """``gradient_checkpointing = true`` → ``recompute = "full"``: another tool's input, as the
    input of vram-eval it sets (its location kept)."""
    raw = entry.value
    key = str(raw).lower() if isinstance(raw, bool) else raw if isinstance(raw, str) else None
    values = alias["values"]
    if key not in values:
        raise InvalidValue[SpecError](
            f"'{_short(entry.key)}' (vram-eval's {alias['sets']}) takes {', '.join(values)}, not {_describe(raw)}",
            entry.value_at or entry.location, name=entry.key, value=raw, allowed=tuple(values),
            expected=" or ".join(values))
    return Entry(entry.key, values[key], entry.location, alias["sets"], entry.optional, entry.value_at)


def _value_alias(item: str, allowed) -> Optional[tuple]:
    """The values an input takes that the ecosystem's name ``item`` stands for, or None."""
    meant = aliases()["values"].get(item)
    if meant is None:
        return None
    meant = tuple(meant) if isinstance(meant, list) else (meant,)
    return meant if all(m in allowed for m in meant) else None


def bind(ruleset: RuleSet, entries: Iterable[Entry]) -> Dict[str, Binding]:
    """Check entries against the formulas; later entries override earlier ones."""
    bindings: Dict[str, Binding] = {}
    known = ruleset.known_names()
    for entry in entries:
        name = ruleset.resolve(entry.name)
        if name is None and entry.name in aliases()["inputs"]:
            entry = _input_alias(entry, aliases()["inputs"][entry.name])
            name = ruleset.resolve(entry.name)
        if name is None and entry.optional:
            continue
        if name is None:
            names = known + list(METADATA_KEYS)
            guess = closest(entry.name, names)
            raise UnknownName[SpecError](
                f"unknown key '{_short(entry.key)}'" + (f" (for '{entry.target}')" if entry.target else ""),
                entry.location,
                hint=did_you_mean(guess) or "run `vram-eval explain --list` to see every input and output name",
                name=entry.name, known=names, suggestion=guess,
            )
        rule = ruleset.rules.get(name)
        if rule is not None and rule.kind == "table":
            raise WrongKind[SpecError](f"'{name}' is a table of the formulas and cannot be set", entry.location,
                                       notes=[f"{rule.where}: {name} is defined here"], name=name, actual="table",
                                       wanted="an input")
        value = _convert(entry, name, ruleset)
        bindings.pop(name, None)  # the latest setting comes last: errors point at it first
        bindings[name] = Binding(name, value, entry.location, entry.key)
    return bindings


def _convert(entry: Entry, name: str, ruleset: RuleSet):
    raw = entry.value
    unit = ruleset.unit(name)
    allowed = ruleset.allowed_values(name)
    is_list = ruleset.is_list_input(name)
    what = f"'{_short(entry.key)}'"
    numeric = unit in ("bytes", "count", "ratio")

    def fail(message: str, hint: Optional[str] = None) -> SpecError:
        return InvalidValue[SpecError](f"{what}: {message}", entry.value_at or entry.location, hint=hint, name=name,
                                       value=raw, allowed=tuple(sorted(allowed)) if allowed is not None else None,
                                       expected=_expects(unit, allowed))

    if isinstance(raw, _BadNumber):
        raise fail(f"{raw.text} is {raw.why}", _NUMBER_BOUNDS)
    if unit == "bool" and not isinstance(raw, bool):
        # Booleans only from booleans: "yes", "1" or 1 are not silently true.
        if entry.location.path == "--set":
            hint = f"on the command line write --set {_short(entry.key)}=true or --set {_short(entry.key)}=false"
        elif isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
            hint = f"write {raw.strip().lower()} without quotes"
        else:
            hint = "write true or false, without quotes"
        raise fail(f"expects true or false, not {_describe(raw)}", hint)
    if isinstance(raw, bool):
        if unit not in (None, "bool") or allowed is not None:
            raise fail(f"expects {_expects(unit, allowed)}, not {str(raw).lower()}")
        return bool(raw)
    if isinstance(raw, list):
        if not is_list:
            raise fail(f"expects {_expects(unit, allowed)}, not a list")
        items = []
        for item in raw:
            if not isinstance(item, str):
                raise fail(f"list items must be strings, not {_describe(item)}")
            meant = (item,)
            if allowed is not None and item not in allowed:
                meant = _value_alias(item, allowed)
                if meant is None:
                    raise fail(f"'{_short(item)}' is not one of: {', '.join(sorted(allowed))}",
                               did_you_mean(closest(item, allowed)))
            for m in meant:
                if m not in items:  # order kept, repeats dropped
                    items.append(m)
        return tuple(items)
    if isinstance(raw, (int, float)):
        if isinstance(raw, float) and not math.isfinite(raw):
            raise fail(f"{raw} is not a finite number", _NUMBER_BOUNDS)
        if abs(raw) > MAX_MAGNITUDE:
            raise fail(f"{_describe(raw)} is out of range", _NUMBER_BOUNDS)
        number = _exact(raw)
        kind = None
    elif isinstance(raw, str):
        try:
            parsed = parse_quantity(raw)
        except NumberTooLarge as exc:
            raise fail(f"the number '{_short(raw)}' is out of range: {exc}", _NUMBER_BOUNDS) from None
        if parsed is None:
            if numeric:
                fixed = unit_hint(raw)
                if raw.strip().lower().lstrip("+-") in ("inf", "infinity", "nan"):
                    raise fail(f"'{_short(raw)}' is not a finite number", _NUMBER_BOUNDS)
                if any(c.isdigit() and not ("0" <= c <= "9") for c in raw):
                    hint = "write numbers with the ASCII digits 0-9"
                elif fixed:
                    hint = f"did you mean '{raw[: -len(fixed)].strip()}{fixed}'?"
                else:
                    hint = _unit_examples(unit)
                raise fail(f"'{_short(raw)}' is not {_expects(unit, None)}", hint)
            if is_list:
                return _convert(Entry(entry.key, [raw], entry.location, entry.target, value_at=entry.value_at),
                                name, ruleset)
            if allowed is not None and raw not in allowed:
                meant = _value_alias(raw, allowed)
                if meant is not None and len(meant) == 1:
                    return meant[0]
                raise fail(f"'{_short(raw)}' is not one of: {', '.join(sorted(allowed))}",
                           did_you_mean(closest(raw, allowed)))
            return raw
        value, kind = parsed
        number = plain_number(value)  # whole numbers as int
    else:
        raise fail(f"expects {_expects(unit, allowed)}, not {_describe(raw)}")

    shown = _short(raw if isinstance(raw, str) else _describe(raw).replace("the number ", ""))
    if allowed is not None or unit in ("text", "list", "bool") or is_list:
        raise fail(f"expects {_expects(unit, allowed)}, not the number {shown}")
    if kind == "count" and unit == "bytes":
        raise fail(f"'{shown}' is a count (K/M/B/T = 10^3..10^12), but this is memory",
                   'give a byte unit, for example "24GiB" or "80GB"')
    if kind == "bytes" and unit in ("count", "ratio"):
        raise fail(f"'{shown}' is memory, but this is {'a count' if unit == 'count' else 'a plain number'}")
    if unit == "count" and (number.denominator != 1 or number < 0):
        raise fail(f"a count is a whole number, at least 0, not {shown}",
                   "counts (heads, layers, experts, tokens, GPUs) are whole numbers")
    if unit == "bytes" and number < 0:
        raise fail(f"a memory size cannot be negative ({shown})")
    return number


def _exact(raw):
    """An int or a finite float (checked by the caller) as an exact number: an int where whole."""
    if isinstance(raw, int):
        return raw
    # repr() is the shortest decimal that round-trips: 0.1 stays 1/10.
    return plain_number(Fraction(repr(raw)))



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
