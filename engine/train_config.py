"""Training configs as input (``--train-config FILE``): a DeepSpeed JSON, transformers'
TrainingArguments or a TRL config (JSON or YAML), an axolotl or a LLaMA-Factory YAML → the
entries they decide, each located at its key in the file, with the keys used and those ignored.
Which keys set which input is data: ``specs/catalog/training_configs.toml``.

A file is read as a spec is (a regular file, bounded, UTF-8; JSON through the YAML reader, which
reads it with the same duplicate-key refusal and locations). A DeepSpeed config a file names
(``deepspeed: ds_z3.json``, relative to that file) is read after it; the base model a file names
(axolotl's ``base_model``, LLaMA-Factory's ``model_name_or_path``) is the spec when none is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from . import resources
from .errors import InvalidValue, LimitExceeded, Location, SpecError, UnreadableFile
from .spec_file import _UNSHOWABLE, _check_lines, _describe, _Lines, _read_text, _short
from .spec_types import Entry

__all__ = ["TrainConfig", "read_train_configs"]

MAX_INCLUDES = 4  # a config naming a DeepSpeed config naming ...: real ones go one level


def catalog() -> dict:
    return resources.catalog("training_configs.toml")


@dataclass(frozen=True)
class TrainConfig:
    """What one training config decides."""

    path: str
    format: str  # the catalog's name: deepspeed, trainer, axolotl, llamafactory
    title: str
    entries: Tuple[Entry, ...]
    used: Tuple[str, ...]  # the keys that set an input (dotted paths)
    ignored: Tuple[Tuple[str, str], ...]  # (key, why) for the keys that set none
    model: Optional[Tuple[str, Location]] = None  # the base model it names

    def as_dict(self) -> dict:
        return {"file": self.path, "format": self.format, "used": list(self.used),
                "ignored": {k: why for k, why in self.ignored}}


def read_train_configs(paths, within=None) -> List[TrainConfig]:
    """Every file of ``--train-config`` (in order) and the DeepSpeed configs they name. With
    ``within`` (a folder: the web page's upload), a named file is looked for beside its config and
    must lie in that folder: no other path is opened."""
    out: List[TrainConfig] = []
    todo = [(str(p), None, None) for p in paths]
    while todo:
        path, named_at, written = todo.pop(0)
        if within is not None and named_at is not None:
            folder = Path(within).resolve()
            if folder not in Path(path).resolve().parents:
                raise UnreadableFile[SpecError](
                    f"the DeepSpeed config '{_short(written or path)}' it names is a path the page does not open",
                    named_at, hint="write the DeepSpeed config inline (\"deepspeed\": {...}), or use the command "
                    "line: vram-eval SPEC --train-config FILE", file=_UNSHOWABLE.sub("\ufffd", path), reason="outside")
        config, includes = _read_one(path, named_at, written, beside_only=within is not None)
        out.append(config)
        if len(out) > len(paths) + MAX_INCLUDES:
            raise LimitExceeded[SpecError]("training configs name each other more than "
                                           f"{MAX_INCLUDES} deep", named_at, what="includes", limit=MAX_INCLUDES)
        todo[0:0] = includes
    return out


def _read_one(path: str, named_at: Optional[Location], written: Optional[str], beside_only: bool = False):
    shown = _UNSHOWABLE.sub("\ufffd", path)
    p = Path(path)
    try:
        exists = p.is_file()
    except (OSError, ValueError):
        exists = False
    if not exists and named_at is not None:
        raise UnreadableFile[SpecError](f"the DeepSpeed config '{_short(written or path)}' it names is not there",
                                        named_at, hint="it is opened from the current directory, as the training "
                                        "tools open it, or beside the config", file=shown, reason="missing")
    if p.suffix.lower() not in (".json", ".yaml", ".yml"):
        raise UnreadableFile[SpecError](f"a training config is a .json, .yaml or .yml file, not '{_short(p.name)}'",
                                        Location(shown), file=shown, reason="format")
    text = _read_text(p, shown)
    lines = _Lines(shown, text)
    _check_lines(lines)
    from .spec_yaml import _read_yaml

    tree, locate = _read_yaml(lines)
    if not isinstance(tree, dict):
        raise InvalidValue[SpecError]("a training config must be a mapping of keys to values", lines.at(1, 1),
                                      name="training config", value=None, expected="a mapping of keys to values")
    name, fmt = _format(tree, lines, shown)
    rules: Dict[str, object] = fmt.get("keys", {})
    entries: List[Entry] = []
    used: List[str] = []
    ignored: List[Tuple[str, str]] = []
    includes: List[Tuple[str, Location, str]] = []
    model = None
    for target, value in fmt.get("sets", {}).items():
        entries.append(Entry(f"({fmt['title']})", value, Location(shown), target=target))
    for key, value, where in _leaves(tree, locate, rules):
        rule = rules.get(key)
        if rule is None:
            ignored.append((key, "not read by vram-eval"))
            continue
        if isinstance(rule, dict) and "ignore" in rule:
            ignored.append((key, rule["ignore"]))
            continue
        if value == "auto" or value is None:
            ignored.append((key, "auto: the Trainer decides" if value == "auto" else "null"))
            continue
        if isinstance(rule, dict) and rule.get("model"):
            if not isinstance(value, str) or not value:
                raise _cannot(key, value, where, "a Hub id or a model folder")
            model = (value, where)
            used.append(key)
            continue
        if isinstance(rule, dict) and rule.get("include"):
            if isinstance(value, dict):
                raise _cannot(key, value, where, "the path of a DeepSpeed JSON (an inline config is not read)")
            if not isinstance(value, str):
                raise _cannot(key, value, where, "the path of a DeepSpeed JSON")
            includes.append((_named_path(value, p, beside_only), where, value))
            used.append(key)
            continue
        if isinstance(rule, dict) and any(tree.get(k) == v for k, v in rule.get("unless", {}).items()):
            used.append(key)  # another key says it (finetuning_type: lora under quantization_bit: 4)
            continue
        target, given = _translate(key, value, rule, where)
        used.append(key)
        if target and given != "":
            entries.append(Entry(key, given, where, target=target))
    return (TrainConfig(shown, name, fmt["title"], tuple(entries), tuple(used), tuple(ignored), model),
            includes)


def _named_path(value: str, config: Path, beside_only: bool = False) -> str:
    """A file a config names, as the tools open it (from the directory they run in: LLaMA-Factory's
    examples/deepspeed/ds_z3_config.json, axolotl's deepspeed_configs/zero2.json); failing that,
    beside the config."""
    named = Path(value)
    if beside_only:
        return str(config.parent / named)
    if named.is_absolute() or named.exists():
        return str(named)
    beside = config.parent / named
    return str(beside) if beside.exists() else value


def _format(tree: dict, lines: _Lines, shown: str):
    formats = catalog()["formats"]
    for name, fmt in formats.items():
        if any(k in tree for k in fmt.get("any_of", ())) and not any(k in tree for k in fmt.get("none_of", ())):
            return name, fmt
    raise UnreadableFile[SpecError](
        "this is not a training config vram-eval reads (DeepSpeed, TrainingArguments or TRL, axolotl, LLaMA-Factory)",
        lines.at(1, 1), hint="it has none of the keys they start from: "
        + ", ".join(sorted({k for f in formats.values() for k in f.get("any_of", ())})), file=shown, reason="format")


def _leaves(tree: dict, locate, rules, section: Tuple[str, ...] = ()):
    """(dotted key, value, location) of every scalar or list in the tree; a mapping is walked,
    unless a rule reads it whole (an inline DeepSpeed config)."""
    for key, value in tree.items():
        path = section + (str(key),)
        where = locate(tree, section, key)
        if isinstance(value, dict) and value and ".".join(path) not in rules:
            yield from _leaves(value, locate, rules, path)
        else:
            yield ".".join(path), value, where


def _translate(key: str, value, rule, where: Location):
    """(input, value) a key sets; "" as the value sets nothing."""
    if isinstance(rule, str):
        return rule, value
    written = str(value).lower() if isinstance(value, bool) else str(value) if isinstance(value, (int, str)) else None
    values = rule.get("values", {})
    if written in values:
        return rule.get("input", ""), values[written]
    if rule.get("others") == "as written":  # LLaMA-Factory's lora_target: q_proj,v_proj
        if isinstance(value, str) and "," in value:
            value = [v.strip() for v in value.split(",") if v.strip()]
        return rule.get("input", ""), value
    raise _cannot(key, value, where, " or ".join(values) or "another value")


def _cannot(key: str, value, where: Location, expected: str) -> SpecError:
    return InvalidValue[SpecError](
        f"'{_short(key)}' is {_describe(value)}, which vram-eval cannot honour (it takes {expected})", where,
        hint="vram-eval would have to guess what this run holds in memory: change the value, or model it with "
        "--set and leave the key out", name=key, value=value, expected=expected)
