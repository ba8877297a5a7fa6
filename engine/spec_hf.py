"""Hugging Face config.json specs: the JSON read strictly (duplicate keys, depth and
numbers bounded), its keys translated by ``specs/catalog/huggingface.toml`` into
entries and the rest ignored.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from . import resources
from .errors import (DuplicateDefinition, InvalidValue, LimitExceeded, Location, SpecError, SpecSyntaxError,
                     UnknownKey, UnknownModelType, UnreadableFile)
from .spec_file import MAX_DEPTH, MAX_ENTRIES, _BadNumber, _check_text, _describe, _finite_float, _Lines, _short
from .spec_types import Entry, Spec
from .units import MAX_DIGITS

_Invalid = InvalidValue[SpecError]
_Limit = LimitExceeded[SpecError]

# The catalog, as messages and the report name it.
CATALOG_SHOWN = "specs/catalog/huggingface.toml"


def _hf_catalog() -> dict:
    return resources.catalog(CATALOG_SHOWN.rsplit("/", 1)[-1])


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
            yield "open", len(stack), None, m.start(), objects[-1] if token == "{" else None
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


def _list_counts(key: str, value, rule: dict, where: Location, layers=None) -> List[Entry]:
    """A per-layer list such as ``layer_types`` → how many entries it has and how many of each
    kind the formulas count (the catalog's [lists.KEY]: which input gets which count). Kinds are
    strings, or whole numbers where `known` lists numbers (Llama-4's no_rope_layers: 1 and 0);
    several kinds may count into one input; with `empty_is_default` an empty list states nothing.
    With `indices` the list names layers (Bamba's attn_layer_indices): distinct whole numbers
    below the config's num_hidden_layers (`layers`), since transformers ignores any other."""
    if not isinstance(value, list):
        raise _Invalid(f'"{key}" must be a list, not {_describe(value)}', where, name=key, value=value,
                       expected="a list")
    if rule.get("indices"):
        whole = all(isinstance(item, int) and not isinstance(item, bool) and item >= 0 for item in value)
        if not whole or len(set(value)) != len(value) or (
                isinstance(layers, int) and not isinstance(layers, bool) and any(item >= layers for item in value)):
            raise _Invalid(f'"{key}" must list distinct layer indices from 0 to num_hidden_layers - 1', where,
                           hint="transformers skips a repeated or out-of-range index, so the count would be wrong",
                           name=key, value=value, expected="distinct layer indices from 0 to num_hidden_layers - 1")
    if not value and rule.get("empty_is_default"):
        return []
    known = rule.get("known")
    numbers = known is not None and all(isinstance(k, int) and not isinstance(k, bool) for k in known)
    if "counts" in rule and not all(isinstance(item, int) and not isinstance(item, bool) if numbers
                                    else isinstance(item, str) for item in value):
        raise _Invalid(f'"{key}" must be a list of {"whole numbers" if numbers else "strings"}, one per layer', where,
                       name=key, value=value, expected=f'a list of {"whole numbers" if numbers else "strings"}, one per layer')
    for item in value if known is not None else ():
        if item not in known:
            raise _Invalid(f'"{key}" lists the layer kind "{_short(str(item))}", which vram-eval does not model',
                           where, hint="modelled kinds: " + ", ".join(str(k) for k in known), name=key, value=item,
                           allowed=tuple(known), expected="a modelled layer kind")
    entries = [Entry(key, len(value), where, target=rule["length"], optional=True)]
    totals: Dict[str, int] = {}
    for kind, target in rule.get("counts", {}).items():
        totals[target] = totals.get(target, 0) + sum(str(item) == kind for item in value)
    for target, count in totals.items():
        entries.append(Entry(key, count, where, target=target, optional=True))
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
        raise SpecSyntaxError(f"JSON syntax: {exc.msg}", lines.at(exc.lineno, exc.colno), format="json") from None
    except _JsonDuplicate as exc:
        key = exc.args[0]
        where, first, seen = lines.at(1, 1), None, {}
        for event, _, token, offset, obj in _json_scan(text):
            if event == "key" and _json_decode_key(token) == key:
                if obj in seen:
                    where, first = lines.offset(offset, len(token)), seen[obj]
                    break
                seen[obj] = lines.offset(offset, len(token))
        raise DuplicateDefinition[SpecError](
            f"\"{_short(key)}\" is set twice in one JSON object", where,
            hint="each key may appear once (Python's json would silently keep the last)", name=key,
            first=first) from None
    except RecursionError:
        raise _Limit(too_deep, deep_location(), hint="a config.json needs two or three levels", what="nesting",
                     limit=MAX_DEPTH) from None
    if not isinstance(tree, dict):
        raise SpecSyntaxError("a config.json must be a JSON object", lines.at(1, 1), format="json")
    if _json_too_deep(tree):
        raise _Limit(too_deep, deep_location(), hint="a config.json needs two or three levels", what="nesting",
                     limit=MAX_DEPTH)

    if len(tree) > MAX_ENTRIES:
        where = lines.at(1, 1)
        for number, (event, depth, token, offset, _) in enumerate(
                (e for e in _json_scan(text) if e[0] == "key" and e[1] == 1), 1):
            if number > MAX_ENTRIES:
                where = lines.offset(offset, len(token))
                break
        raise _Limit(f"more than {MAX_ENTRIES:,} keys, the most a config.json may have", where,
                     hint="is this a model's config.json?", what="entries", limit=MAX_ENTRIES, amount=len(tree))

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
    nested: Dict[str, dict] = catalog.get("nested", {})
    text_trees = [tree] + [tree[k] for k, rule in nested.items()
                           if rule.get("bind") == "text" and isinstance(tree.get(k), dict)]
    if not any(key in keys and value is not None for t in text_trees for key, value in t.items()):
        raise UnreadableFile[SpecError]("this config.json has none of the fields vram-eval reads", lines.at(1, 1),
                                        hint="expected keys such as hidden_size, num_hidden_layers, "
                                        "num_attention_heads, vocab_size", file=shown, reason="format")
    entries: List[Entry] = []
    model_type = tree.get("model_type")
    if model_type is None:
        raise _Invalid('this config.json has no "model_type", so the architecture is unknown', lines.at(1, 1),
                       hint=f'add "model_type" ({known}), or write a TOML spec with arch = "llama" or "gpt" '
                       "and the sizes instead", name="model_type", value=None, allowed=tuple(sorted(model_types)),
                       expected="a model type of the catalog")
    where = locate("model_type")
    if not isinstance(model_type, str):
        raise _Invalid(f'"model_type" must be a string such as "llama", not {_describe(model_type)}', where,
                       hint=known, name="model_type", value=model_type, expected='a string such as "llama"')
    unknown = None
    if model_type not in model_types:
        # No "did you mean" from the name: a family with a similar name (qwen3_moe, qwen3) often has
        # other layers. Only a model type the catalog's [near] lists, checked to share a family's
        # layers, is named.
        near = catalog.get("near", {}).get(model_type)
        unknown = UnknownModelType(
            f"model_type \"{_short(model_type)}\" is not one vram-eval knows",
            where,
            hint=(f"its parameters are {near}. " if near else "")
            + known + ". To get an answer anyway, give its block with --set arch=llama (or gpt): the "
            "config's sizes are read as that block's, with a warning; or write a TOML spec with arch and "
            "the sizes (README, \"Specs\"), or add the family to specs/catalog/huggingface.toml "
            "(README, \"Adding a model family\")",
            model_type=str(model_type), keys=tuple(sorted(model_types)),
        )
    # The model type's bindings come first; the config's own keys (later entries win)
    # override them, except those the catalog fixes for the type.
    for target, value in catalog.get("every_config", {}).items():
        entries.append(Entry("default_context", value, Location(CATALOG_SHOWN), target=target))
    for target, value in (model_types[model_type] if unknown is None else _unknown_bindings(model_type)).items():
        entries.append(Entry("model_type", value, where, target=target))
    lists: Dict[str, dict] = catalog.get("lists", {})
    null_as: Dict[str, object] = catalog.get("null_as", {})

    def bind(obj: dict, where_is, prefix: str, of_type: str, key_map: Dict[str, object], bound: set) -> None:
        """The entries of one JSON object's keys, through key_map and of_type's [renamed];
        the first of several keys for one input wins (e.g. n_embd and hidden_size)."""
        renamed: Dict[str, str] = catalog.get("renamed", {}).get(of_type, {})
        unsupported: Dict[str, str] = catalog.get("unsupported", {}).get(of_type, {})
        for key, value in obj.items():
            if value is None and key in null_as:
                value = null_as[key]  # a null that means something (DeepSeek-V2-Lite's q_lora_rank: no latent)
            if key in unsupported and value not in (None, False, 0, "", []):
                raise _Invalid(f'"{prefix + key}" is set: {unsupported[key]} for model_type "{of_type}"',
                               where_is(key), hint="a wrong count is worse than none: vram-eval refuses this "
                               "config.json rather than guess (README, \"Model families read from a config.json\")",
                               name=prefix + key, value=value, expected=f"unset (null, false, 0 or empty) for {of_type}")
            if key in nested and prefix == "":
                continue  # a sub-config: bound below, by its own rule
            if key in lists and value is not None and key_map is keys:
                entries.extend(_list_counts(prefix + key, value, lists[key], where_is(key),
                                            obj.get("num_hidden_layers")))
                continue
            targets = renamed.get(key, key_map.get(key))
            if targets is None or value is None:
                continue
            # A key may feed several inputs (StarCoder2's use_bias: attention and MLP biases).
            for target in [targets] if isinstance(targets, str) else targets:
                if target in bound:
                    continue
                _check_text(prefix + key, value, where_is(key))
                given = values[target].get(value, value) if target in values and isinstance(value, str) else value
                entries.append(Entry(prefix + key, given, where_is(key), target=target, optional=True))
                bound.add(target)

    # A composite (image-text) config.json: its language model's keys in text_config, its vision
    # tower's in vision_config (the catalog's [nested]); each sub-config is read by its own
    # model_type's bindings, or by the one transformers gives it when it names none.
    subs, sub_entries = [], []
    for sub_key, rule in nested.items() if unknown is None else ():
        sub, sub_where = tree.get(sub_key), locate(sub_key)
        if sub is None:
            # transformers builds an absent sub-config from its class's defaults (sub_configs_defaults)
            if model_type not in rule.get("model_types", {}):
                continue
            sub, sub_where = {}, where
        if not isinstance(sub, dict):
            raise _Invalid(f'"{sub_key}" must be an object of config keys, not {_describe(sub)}', sub_where,
                           name=sub_key, value=sub, expected="an object of config keys")
        if len(sub) > MAX_ENTRIES:
            raise _Limit(f"\"{sub_key}\" has more than {MAX_ENTRIES:,} keys, the most a config.json may have",
                         sub_where, hint="is this a model's config.json?", what="entries", limit=MAX_ENTRIES,
                         amount=len(sub))
        types: Dict[str, dict] = catalog.get(rule.get("types", "model_types"), {})
        sub_type = sub.get("model_type", rule.get("model_types", {}).get(model_type))
        type_where = _nested_keys(text, lines, sub_key).get("model_type") or sub_where
        if not isinstance(sub_type, str) or sub_type not in types:
            shown_type = f'"{_short(sub_type)}"' if isinstance(sub_type, str) else _describe(sub_type)
            raise UnknownKey[SpecError](f"{sub_key}'s model_type {shown_type} is not one vram-eval knows", type_where,
                                        hint="known: " + ", ".join(sorted(types)),
                                        table=rule.get("types", "model_types"), key=sub_type,
                                        keys=tuple(sorted(types)), suggestion=None)
        for target, value in types[sub_type].items():
            sub_entries.append(Entry(f"{sub_key}.model_type", value, type_where, target=target))
        subs.append((sub_key, rule, sub, sub_type))
    # before the outer model type's bindings: the composite type's own (its `unmeasured`) win
    first = len(catalog.get("every_config", {}))
    entries[first:first] = sub_entries

    bound = set(catalog.get("fixed", {}).get(model_type, ()))
    bind(tree, locate, "", model_type, keys, bound)
    for sub_key, rule, sub, sub_type in subs:
        text_like = rule.get("bind") == "text"

        def where_is(key: str, _sub_key=sub_key) -> Location:
            return _nested_keys(text, lines, _sub_key).get(key) or locate(_sub_key)

        # The top-level keys come first (a composite class reads its own tie_word_embeddings and
        # dtype); the text config's fixed inputs are its model type's.
        sub_bound = (bound | set(catalog.get("fixed", {}).get(sub_type, ()))) if text_like else set()
        bind(sub, where_is, sub_key + ".", sub_type, keys if text_like else catalog.get(rule["keys"], {}),
             sub_bound)
        if text_like:
            bound |= sub_bound
    entries += _quantization(tree, locate, lines, text, catalog.get("quantization", {}))
    for sub_key in [k for k, rule in nested.items() if rule.get("bind") == "text" and isinstance(tree.get(k), dict)]:
        entries += _rope(tree[sub_key], lambda key, _s=sub_key: _nested_keys(text, lines, _s).get(key) or locate(_s),
                         sub_key + ".", catalog.get("rope", {}), text, lines)
    entries += _rope(tree, locate, "", catalog.get("rope", {}), text, lines)
    # A file named config.json is named by its directory (a Hub snapshot); any other by itself.
    path = Path(shown)
    name = tree.get("_name_or_path") or (path.parent.name if path.name == "config.json" else "") or path.stem
    _check_text("_name_or_path", str(name), locate("_name_or_path"), metadata=True)
    return Spec(shown, str(name), tuple(entries), {"name": str(name)}, "config.json", unknown)


def _nested_keys(text: str, lines: _Lines, parent: str) -> Dict[str, Location]:
    """Where each key of the object under a top-level key is (one scan per object, remembered)."""
    memo = _NESTED_MEMO.get((id(lines), parent))
    if memo is not None and memo[0] is lines:
        return memo[1]
    found: Dict[str, Location] = {}
    parent_seen, inner = False, None
    for event, depth, token, offset, obj in _json_scan(text):
        if not parent_seen:
            parent_seen = event == "key" and depth == 1 and _json_decode_key(token) == parent
        elif inner is None:
            if event == "open" and depth == 2:
                inner = obj
                if obj is None:
                    break
            elif event == "key":
                break
        elif event == "key" and depth == 1:
            break
        elif event == "key" and depth == 2 and obj == inner:
            found.setdefault(_json_decode_key(token), lines.offset(offset + 1, len(token) - 2))
    _NESTED_MEMO.clear()
    _NESTED_MEMO[(id(lines), parent)] = (lines, found)
    return found


_NESTED_MEMO: Dict[tuple, tuple] = {}


def _rope(tree: dict, locate, prefix: str, table: dict, text: str, lines: _Lines) -> List[Entry]:
    """The RoPE scaling object (rope_scaling, or transformers 5's rope_parameters): its keys bound
    as the catalog's [rope] says (the type and factor vLLM derives its longest context from). An
    object of per-layer-kind objects (Gemma-3's) is not read: vLLM does not scale those."""
    out: List[Entry] = []
    for name in table.get("objects", []):
        rope = tree.get(name)
        if not isinstance(rope, dict):
            continue
        keys = _nested_keys(text, lines, name) if prefix == "" else {}
        for key, target in table.get("keys", {}).items():
            value = rope.get(key)
            if value is None or isinstance(value, (dict, list)) or isinstance(value, bool):
                continue
            if isinstance(value, str):
                _check_text(prefix + f"{name}.{key}", value, keys.get(key) or locate(name))
            elif not isinstance(value, (int, float)):
                continue
            out.append(Entry(prefix + f"{name}.{key}", value, keys.get(key) or locate(name), target=target,
                             optional=True))
        if out:
            break  # rope_scaling first; rope_parameters repeats it in transformers 5 saves
    return out


def _quantization(tree: dict, locate, lines: _Lines, text: str, table: dict) -> List[Entry]:
    """A pre-quantized checkpoint's quantization_config → weight_format, quant_bits and, where a
    rule of the catalog's [quantization] gives one, the inference_dtype that predicts its weights."""
    config = tree.get("quantization_config")
    if config is None:
        return []
    where = locate("quantization_config")
    if not isinstance(config, dict):
        raise _Invalid(f'"quantization_config" must be an object, not {_describe(config)}', where,
                       name="quantization_config", value=config, expected="an object with quant_method")
    keys = _nested_keys(text, lines, "quantization_config")
    method = config.get("quant_method")
    methods = table.get("methods", [])
    if method not in methods:
        raise UnknownKey[SpecError](
            f"quantization_config's quant_method {_short(repr(method))} is not one vram-eval knows",
            keys.get("quant_method") or where, hint="known: " + ", ".join(methods), table="quantization",
            key=method, keys=tuple(methods), suggestion=None)
    at = keys.get("quant_method") or where
    out = [Entry("quantization_config.quant_method", method, at, target="weight_format")]
    translated = table.get("values", {})
    for key, target in table.get("keys", {}).get(method, {}).items():
        value = config.get(key)
        if value is None:
            continue
        value = translated.get(key, {}).get(str(value).lower() if isinstance(value, str) else str(value), value)
        out.append(Entry(f"quantization_config.{key}", value, keys.get(key) or at, target=target))
    defaults = table.get("defaults", {}).get(method, {})
    for key, targets in table.get("lists", {}).get(method, {}).items():
        # a key the config leaves out takes its quantizer's default ([quantization.defaults]); null stays none
        value = config.get(key, defaults.get(key))
        if value is None:
            continue
        if not isinstance(value, list) or len(value) != len(targets):
            raise _Invalid(f'quantization_config\'s "{key}" must be a list of {len(targets)} numbers, not '
                           f"{_describe(value)}", keys.get(key) or at, name=key, value=value,
                           expected=f"a list of {len(targets)} numbers")
        out += [Entry(f"quantization_config.{key}[{i}]", v, keys.get(key) or at, target=t)
                for i, (v, t) in enumerate(zip(value, targets))]
    if method in table.get("schemes", {}):
        out += _schemes(config, keys, at, table["schemes"][method])
    out += _ignored(config, keys, at, method, table.get("ignore", {}))
    bound = {e.target for e in out}
    for path, target in table.get("paths", {}).get(method, {}).items():
        value = _at_path(config, path)
        if value is not None and target not in bound:
            out.append(Entry(f"quantization_config.{path}", value, keys.get(path.split(".")[0]) or at, target=target))
            bound.add(target)
    kv_target = table.get("kv_schemes", {}).get("targets", {}).get(method)
    kv = config.get("kv_cache_scheme")
    if kv_target and isinstance(kv, dict) and kv_target not in bound:
        name = table["kv_schemes"]["names"].get(f"{kv.get('type')}{kv.get('num_bits')}", "other")
        out.append(Entry("quantization_config.kv_cache_scheme", name, keys.get("kv_cache_scheme") or at,
                         target=kv_target))
    for rule in table.get("rules", []):
        if rule["method"] == method and all(config.get(k) == v for k, v in rule.get("when", {}).items()):
            if rule.get("dequantized"):
                out.append(Entry("quantization_config.dequantize", True, keys.get("dequantize") or at,
                                 target="weight_dequantized"))
            else:
                out.append(Entry("quantization_config", rule["inference_dtype"], at, target="inference_dtype"))
            break
    return out


def _schemes(config: dict, keys: Dict[str, Location], at: Location, table: dict) -> List[Entry]:
    """compressed-tensors' config_groups, ignore and kv_cache_scheme → the inputs of
    formulas/compressed_tensors.formula, by the catalog's [quantization.schemes.<method>] table: the
    one scheme every group shares (else ct_scheme_read = false, and the formulas say so), each ignore
    entry as the part it names (compared as text: a pattern is never run)."""
    groups_at = keys.get("config_groups") or at
    groups = config.get("config_groups")
    if groups is None:  # a sparsity-only checkpoint, or one vram-eval reads no scheme of
        return [Entry("quantization_config", False, at, target="ct_scheme_read")]
    if not isinstance(groups, dict) or not groups or not all(isinstance(g, dict) for g in groups.values()):
        raise _Invalid(f'quantization_config\'s "config_groups" must be an object of schemes, not {_describe(groups)}',
                       groups_at, name="config_groups", value=groups, expected="an object of schemes")
    fields = table["fields"]

    def scheme(group: dict) -> tuple:
        weights = group.get("weights")
        inputs = group.get("input_activations")
        if not isinstance(weights, dict) or not (inputs is None or isinstance(inputs, dict)):
            raise _Invalid('a config group\'s "weights" must be an object and its "input_activations" an object or '
                           f"null, not {_describe(weights)} and {_describe(inputs)}", groups_at,
                           name="config_groups", value=group, expected="weights and input_activations objects")
        return (group.get("format", config.get("format")),
                tuple(json.dumps(weights.get(k), sort_keys=True) for k in fields),
                json.dumps(None if inputs is None else [inputs.get("dynamic"), inputs.get("strategy")]),
                group.get("output_activations") is None)

    schemes = {scheme(g) for g in groups.values()}
    read = (len(schemes) == 1 and all(g.get("targets") == table["targets"] for g in groups.values())
            and next(iter(schemes))[3])
    form, weights, inputs, _ = next(iter(schemes))
    inputs = json.loads(inputs)
    args = dict(zip(fields, (json.loads(w) for w in weights)))
    if str(args.get("scale_dtype")) not in table["scale_dtypes"].get(str(form), ["None"]):
        read = False
    out = [Entry("quantization_config.config_groups", read, groups_at, target="ct_scheme_read")]
    if not read:
        return out
    def entry(key: str, value, target: str) -> Entry:
        return Entry(f"quantization_config.config_groups.{key}", value, groups_at, target=target)

    out.append(entry("format", form, "ct_format"))
    for key, target in table["weights"].items():
        value = args.get(key)
        value = table["values"].get(key, {}).get(str(value).lower(), value)
        if value is not None:
            out.append(entry(f"weights.{key}", value, target))
    block = args.get("block_structure")
    if block is not None:
        if not isinstance(block, list) or len(block) != 2:
            raise _Invalid(f'a config group\'s "block_structure" must be a list of 2 numbers, not {_describe(block)}',
                           groups_at, name="block_structure", value=block, expected="a list of 2 numbers")
        out += [entry(f"weights.block_structure[{i}]", v, t) for i, (v, t) in enumerate(zip(block, table["block"]))]
    if inputs is not None:
        dynamic, strategy = inputs
        out.append(entry("input_activations.dynamic", table["values"]["dynamic"].get(str(dynamic).lower(), dynamic),
                         "ct_input"))
        out.append(entry("input_activations.strategy", strategy, "ct_input_strategy"))
    kv = config.get("kv_cache_scheme")
    if kv is not None:
        out.append(Entry("quantization_config.kv_cache_scheme",
                         isinstance(kv, dict) and kv.get("dynamic") is False, keys.get("kv_cache_scheme") or at,
                         target="ct_kv_cache"))
    return out


def _ignored(config: dict, keys: Dict[str, Location], at: Location, method: str, parts: dict) -> List[Entry]:
    """The modules a quantized checkpoint leaves unquantized (compressed-tensors' ignore, modelopt's
    exclude_modules), as the parts of the catalog's [quantization.ignore] they name."""
    out: List[Entry] = []
    for key in parts.get("keys", {}).get(method, []):
        ignore = config.get(key)
        if ignore is None:
            continue
        where = keys.get(key) or at
        if not isinstance(ignore, list) or not all(isinstance(x, str) for x in ignore):
            raise _Invalid(f'quantization_config\'s "{key}" must be a list of module names, not {_describe(ignore)}',
                           where, name=key, value=ignore, expected="a list of strings")
        named = [_ignored_part(x, parts) for x in ignore]
        out += [Entry(f"quantization_config.{key}", part in named, where, target=target)
                for part, target in parts["roles"].items()]
        out.append(Entry(f"quantization_config.{key}", named.count(None), where, target="quant_unread_ignores"))
        break
    else:
        if parts.get("keys", {}).get(method):  # nothing listed: every Linear quantised, the head too,
            kept = parts.get("absent", {}).get(method, [])  # but what the quantizer keeps by default
            out += [Entry("quantization_config", part in kept, at, target=target)
                    for part, target in parts["roles"].items()]
    return out


def _at_path(tree: dict, path: str):
    """The value at a dotted path of nested objects (None where any step is missing)."""
    for step in path.split("."):
        if not isinstance(tree, dict):
            return None
        tree = tree.get(step)
    return tree


def _ignored_part(entry: str, parts: dict) -> Optional[str]:
    """The part an ignore entry names by the catalog's spellings (the whole entry, its end or its
    start), "harmless" for parts no Linear target reaches, or None."""
    if entry in parts["exact"]:
        return parts["exact"][entry]
    for end, part in parts["suffixes"].items():
        if entry.endswith(end):
            return part
    for start, part in parts["prefixes"].items():
        if entry.startswith(start):
            return part
    return None


def _unknown_bindings(model_type: str) -> Dict[str, object]:
    """What a model type the catalog does not know is read with once --set arch gives its block:
    the config's own keys only, and the report says the block is unchecked."""
    return {"block_checked": False, "unmeasured": [f'model_type "{_short(model_type)}"']}
