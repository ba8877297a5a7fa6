"""A model's checkpoint as it lies on disk: every tensor's dtype, shape and bytes, read from the
safetensors headers alone — a weight file's data is never read — and grouped as
``specs/catalog/checkpoints.toml`` says; and the inputs it binds (formulas/checkpoint.formula).

Which files are the checkpoint: the shards ``model.safetensors.index.json`` names (each a file
of the folder, each tensor in the shard the index says), else ``model.safetensors``. Shards
without their index, and a folder's other ``*.safetensors`` (Mistral's ``consolidated``, a PEFT
adapter), are not the model's weights as transformers loads them: the first is an error, the
others are left alone. Every header is checked as the format specifies (length, JSON, dtypes,
shapes, offsets contiguous and matching the file's size): a truncated download or a header that
lies about its length is a located error, never a wrong number.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from . import resources
from .errors import DuplicateDefinition, LimitExceeded, Location, SpecError, UnreadableFile
from .safe_read import NotRegular, read_head, read_regular
from .spec_hf import _json_pairs, _JsonDuplicate
from .spec_types import Entry

__all__ = ["Checkpoint", "TensorInfo", "read_checkpoint", "read_safetensors", "INDEX", "SINGLE"]

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
_SHARD = re.compile(r"model-\d+-of-\d+\.safetensors")
MAX_INDEX_BYTES = 64 * 2**20  # DeepSeek-V3's index (91,000 tensors) is under 10 MiB
MAX_DIMS = 16


def _catalog() -> dict:
    return resources.catalog("checkpoints.toml")


def _dtypes() -> Dict[str, dict]:
    return _catalog()["safetensors"]["dtypes"]


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # the safetensors dtype, as the header writes it ("BF16")
    shape: Tuple[int, ...]
    nbytes: int
    file: str  # the weight file it is in, relative to the folder

    @property
    def elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class Checkpoint:
    """The tensors of a model folder's weight files."""

    folder: str  # as the user gave it (or the Hub id's snapshot); a GGUF file's path
    files: Tuple[str, ...]
    tensors: Tuple[TensorInfo, ...]
    format: str = "safetensors"  # or "gguf" (engine/gguf_header.py): dtypes are then GGML types (Q4_K, F16)

    @property
    def bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    @property
    def elements(self) -> int:
        return sum(t.elements for t in self.tensors)

    @property
    def dtype(self) -> str:
        """vram-eval's name of the one dtype every tensor has ("bf16"), else "mixed"."""
        if self.format == "safetensors":
            table = _dtypes()
        else:
            from .gguf_header import catalog

            table = catalog()["dtypes"]
        names = {table.get(t.dtype, {}).get("name", t.dtype.lower()) for t in self.tensors}
        return names.pop() if len(names) == 1 else "mixed"

    def groups(self) -> Dict[str, Dict[str, int]]:
        """group → safetensors dtype → bytes, in the catalog's order of groups."""
        out: Dict[str, Dict[str, int]] = {g["name"]: {} for g in _catalog()["groups"]}
        for t in self.tensors:
            by = out[group_of(t.name)]
            by[t.dtype] = by.get(t.dtype, 0) + t.nbytes
        return out

    def entries(self, location: Location) -> List[Entry]:
        """The inputs of formulas/checkpoint.formula this checkpoint sets."""
        groups = self.groups()
        out = [Entry(g["input"], sum(groups[g["name"]].values()), location) for g in _catalog()["groups"]]
        out.append(Entry("checkpoint_params", self.elements, location))
        out.append(Entry("checkpoint_dtype", self.dtype, location))
        out.append(Entry("checkpoint_files", len(self.files), location))
        out.append(Entry("checkpoint_format", self.format, location))
        out += [Entry(t["input"], value, location) for t, value in zip(_catalog().get("tallies", ()), self.tallies())]
        if self.format == "gguf":
            out += [Entry(name, value, location) for name, value in self.llamacpp_layers().items()]
        return out

    def llamacpp_layers(self) -> Dict[str, int]:
        """A GGUF's tensors by llama.cpp's layer (specs/catalog/gguf.toml [layers]): the bytes of
        the input and output layers, of all repeating layers, of the smallest and the largest
        repeating layer, and of token_embd (formulas/llamacpp.formula)."""
        from .gguf_header import catalog

        spec = catalog()["layers"]
        output, repeating = set(spec["output"]), spec["repeating"]
        layers: Dict[int, int] = {}
        outside = {"input": 0, "output": 0}
        for t in self.tensors:
            parts = t.name.split(".")
            if parts[0] == repeating and len(parts) > 2 and parts[1].isdigit():
                layers[int(parts[1])] = layers.get(int(parts[1]), 0) + t.nbytes
            else:
                outside["output" if parts[0] in output else "input"] += t.nbytes
        sizes = list(layers.values()) or [0]
        return {"checkpoint_input_layer_bytes": outside["input"], "checkpoint_output_layer_bytes": outside["output"],
                "checkpoint_repeating_bytes": sum(sizes), "checkpoint_layer_bytes_min": min(sizes),
                "checkpoint_layer_bytes_max": max(sizes),
                "checkpoint_token_embd_bytes": sum(t.nbytes for t in self.tensors if t.name == spec["token_embd"])}

    def tallies(self) -> List[int]:
        """The catalog's [[tallies]], in order: the tensors whose names end in one of a tally's
        `endings` (where it has `beside`, only those whose module also holds that tensor), counted
        as tensors, elements or bytes."""
        names = {t.name for t in self.tensors}
        out = []
        for tally in _catalog().get("tallies", ()):
            endings, beside = tuple(tally["endings"]), tally.get("beside")
            picked = [t for t in self.tensors if t.name.endswith(endings)
                      and (beside is None or any(t.name[: -len(e)] + beside in names
                                                 for e in endings if t.name.endswith(e)))]
            out.append(len(picked) if tally["count"] == "tensors"
                       else sum(t.elements if tally["count"] == "elements" else t.nbytes for t in picked))
        return out

    def as_dict(self) -> dict:
        """What ``--format json`` shows of the checkpoint (bytes, exact)."""
        return {"folder": self.folder, "format": self.format, "files": list(self.files), "tensors": len(self.tensors),
                "bytes": self.bytes, "elements": self.elements, "dtype": self.dtype,
                "groups": {g: dict(sorted(d.items())) for g, d in self.groups().items() if d}}


def group_of(name: str) -> str:
    """The report's group of a tensor, by its name's dot-separated parts (see the catalog)."""
    parts = name.split(".")
    for group in _catalog()["groups"]:
        components = group.get("components", ())
        containing = group.get("containing", ())
        if (any(p in components for p in parts) or parts[0] in group.get("first", ())
                or any(c in p for p in parts for c in containing)):
            return group["name"]
    return _catalog()["groups"][-1]["name"]


# ---------------------------------------------------------------------------
# reading


def read_checkpoint(folder: Path, shown: str) -> Optional[Checkpoint]:
    """The checkpoint of a model folder, or None where it has no weight files transformers
    would load (a config-only snapshot)."""
    index = folder / INDEX
    if index.exists():
        files, expected, index_lines = _read_index(index, f"{shown}/{INDEX}")
    elif (folder / SINGLE).exists():
        files, expected, index_lines = [SINGLE], None, None
    else:
        shards = sorted(p.name for p in folder.glob("*.safetensors") if _SHARD.fullmatch(p.name))
        if shards:
            raise UnreadableFile[SpecError](
                f"the folder has weight shards ({shards[0]}, ...) but not their index, {INDEX}", Location(shown),
                hint="copy the index from the model's repository: it says which shard holds each tensor",
                file=shown, reason="missing")
        return None
    tensors: List[TensorInfo] = []
    seen: Dict[str, str] = {}
    for name in files:
        for t in read_safetensors(folder / name, f"{shown}/{name}", name):
            if t.name in seen:
                raise DuplicateDefinition[SpecError](
                    f"the tensor '{_short(t.name)}' is in two weight files, {seen[t.name]} and {name}",
                    Location(f"{shown}/{name}"), hint="is an old shard left in the folder?", name=t.name)
            seen[t.name] = name
            tensors.append(t)
    if expected is not None:
        for tensor, file in expected.items():
            if seen.get(tensor) != file:
                found = f"it is in {seen[tensor]}" if tensor in seen else "no weight file has it"
                where = _find(index_lines, tensor)
                raise UnreadableFile[SpecError](
                    f"the index puts '{_short(tensor)}' in {file}, but {found}", where,
                    hint="the index and the shards are from different revisions: download them again",
                    file=where.path, reason="format")
        extra = sorted(set(seen) - set(expected))
        if extra:
            raise UnreadableFile[SpecError](
                f"{seen[extra[0]]} holds '{_short(extra[0])}', which the index does not name",
                Location(f"{shown}/{seen[extra[0]]}"),
                hint="the index and the shards are from different revisions: download them again",
                file=f"{shown}/{seen[extra[0]]}", reason="format")
    return Checkpoint(shown, tuple(files), tuple(tensors))


def _read_index(path: Path, shown: str):
    """The shard files an index names, in order, and tensor → (file, location of its line)."""
    from .spec_file import _Lines

    bad = UnreadableFile[SpecError]
    text = _text(path, shown, MAX_INDEX_BYTES)
    lines = _Lines(shown, text)
    try:
        data = json.loads(text, object_pairs_hook=_json_pairs)
    except _JsonDuplicate as exc:
        key = exc.args[0]
        raise DuplicateDefinition[SpecError](f"the index names '{_short(key)}' twice", _find(lines, key),
                                             name=key) from None
    except (ValueError, RecursionError) as exc:
        where = lines.at(getattr(exc, "lineno", None), getattr(exc, "colno", None))
        raise bad(f"the index is not JSON: {getattr(exc, 'msg', 'too deeply nested')}", where,
                  hint="is the download complete?", file=shown, reason="format") from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise bad('the index has no "weight_map" of tensor names to file names', lines.at(1, 1),
                  hint="a safetensors index is {\"metadata\": {...}, \"weight_map\": {\"tensor\": \"file\"}}",
                  file=shown, reason="format")
    files: List[str] = []
    expected = {}
    for tensor, file in weight_map.items():
        if file not in files:
            where = _find(lines, file)
            if not file or "/" in file or "\\" in file or file in (".", "..") or not file.endswith(".safetensors"):
                raise bad(f"the index names '{_short(file)}', which is not a .safetensors file of the folder", where,
                          hint="an index names files beside it", file=shown, reason="format")
            if not (path.parent / file).exists():
                raise UnreadableFile[SpecError](
                    f"the index names the shard {_short(file)}, which is not in the folder", where,
                    hint="download every shard the index lists (or remove the index of a merged checkpoint)",
                    file=shown, reason="missing")
            files.append(file)
        expected[tensor] = file
    return files, expected, lines


def read_safetensors(path: Path, shown: str, file: str = "") -> List[TensorInfo]:
    """Every tensor a safetensors file's header lists, checked against the file's size; only
    the 8-byte length and the header are read."""
    bad = UnreadableFile[SpecError]
    limit = _catalog()["safetensors"]["max_header_bytes"]
    head, size = _head(path, shown, 8)
    if len(head) < 8:
        raise bad(f"the file is {size} bytes long, too short for a safetensors header", Location(shown),
                  hint="is the download complete?", file=shown, reason="truncated")
    (length,) = struct.unpack("<Q", head)
    if length > limit:
        raise LimitExceeded[SpecError](
            f"the header says it is {length:,} bytes long, more than the {limit:,} the format allows",
            Location(shown), hint="this is not a safetensors file, or it is damaged", what="header size",
            limit=limit, amount=length)
    if 8 + length > size:
        raise bad(f"the header says it is {length:,} bytes long, but the file has {size - 8:,} bytes after its "
                  "length", Location(shown), hint="the file is truncated or not a safetensors file: download it again",
                  file=shown, reason="truncated")
    raw, _ = _head(path, shown, length, offset=8)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_json_pairs)
    except _JsonDuplicate as exc:
        raise DuplicateDefinition[SpecError](f"the header lists the tensor '{_short(exc.args[0])}' twice",
                                             Location(shown), name=exc.args[0]) from None
    except (ValueError, RecursionError):
        raise bad("the header is not JSON", Location(shown), hint="this is not a safetensors file, or it is damaged",
                  file=shown, reason="format") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object", Location(shown), file=shown, reason="format")
    dtypes = _dtypes()
    tensors: List[Tuple[int, int, TensorInfo]] = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        what = f"the tensor '{_short(name)}'"
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise bad(f"{what} is not {{dtype, shape, data_offsets}}", Location(shown), file=shown, reason="format")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or dtype not in dtypes:
            raise bad(f"{what} has the dtype {_short(repr(dtype))}, which safetensors does not define",
                      Location(shown), hint="known: " + ", ".join(dtypes), file=shown, reason="format")
        if (not isinstance(shape, list) or len(shape) > MAX_DIMS
                or not all(type(d) is int and 0 <= d < 2**63 for d in shape)):
            raise bad(f"{what} has the shape {_short(json.dumps(shape))}: not a list of sizes", Location(shown),
                      file=shown, reason="format")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(type(o) is int and 0 <= o for o in offsets) or offsets[0] > offsets[1]):
            raise bad(f"{what} has the data_offsets {_short(json.dumps(offsets))}: not [begin, end]", Location(shown),
                      file=shown, reason="format")
        elements = 1
        for d in shape:
            elements *= d
        bits = elements * dtypes[dtype]["bits"]
        if bits % 8 or offsets[1] - offsets[0] != bits // 8:
            raise bad(f"{what} ({dtype}, shape {shape}) takes {bits / 8:,g} bytes, but its offsets span "
                      f"{offsets[1] - offsets[0]:,}", Location(shown), hint="the file is damaged", file=shown,
                      reason="format")
        tensors.append((offsets[0], offsets[1], TensorInfo(name, dtype, tuple(shape), bits // 8, file)))
    end = 0
    for begin, stop, t in sorted(tensors, key=lambda x: (x[0], x[1])):
        if begin != end:
            raise bad(f"the tensor '{_short(t.name)}' starts at byte {begin:,} of the data, not where the one "
                      f"before it ends ({end:,})", Location(shown), hint="the file is damaged", file=shown,
                      reason="format")
        end = stop
    data = size - 8 - length
    if end != data:
        missing = end > data
        raise bad(f"the tensors take {end:,} bytes, but the file has {data:,} after its header"
                  + (": it is truncated" if missing else ""), Location(shown),
                  hint="download it again" if missing else "the file is damaged", file=shown,
                  reason="truncated" if missing else "format")
    return [t for _, _, t in tensors]


def _head(path: Path, shown: str, count: int, offset: int = 0):
    try:
        return read_head(path, count, offset)
    except (OSError, ValueError, NotRegular) as exc:
        raise refused(exc, shown) from None


def refused(exc: Exception, shown: str, what: str = "a weight file") -> SpecError:
    """Why a weight file (safetensors, GGUF) cannot be opened, as a located error."""
    if isinstance(exc, FileNotFoundError):
        return UnreadableFile[SpecError]("no such file", Location(shown), file=shown, reason="missing")
    if isinstance(exc, IsADirectoryError):
        return UnreadableFile[SpecError](f"this is a directory, not {what}", Location(shown), file=shown,
                                         reason="directory")
    if isinstance(exc, NotRegular):
        return UnreadableFile[SpecError](f"this is {exc.kind}, not {what}", Location(shown), file=shown,
                                         reason="not regular")
    return UnreadableFile[SpecError](f"cannot read the file: {getattr(exc, 'strerror', None) or exc}",
                                     Location(shown), file=shown, reason="unreadable")


def _text(path: Path, shown: str, limit: int) -> str:
    from .safe_read import FileTooLarge

    try:
        data = read_regular(path, limit)
    except FileTooLarge as exc:
        raise LimitExceeded[SpecError](f"the index is larger than {limit // 2**20} MiB", Location(shown),
                                       what="file size", limit=limit, amount=exc.size) from None
    except (OSError, ValueError, NotRegular) as exc:
        raise UnreadableFile[SpecError](f"cannot read the file: {getattr(exc, 'strerror', None) or exc}",
                                        Location(shown), file=shown, reason="unreadable") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UnreadableFile[SpecError]("the index is not UTF-8 text", Location(shown), file=shown,
                                        reason="not UTF-8") from None


def _find(lines, text: str) -> Location:
    """The location of the first occurrence of ``text`` as a JSON string in the file."""
    at = lines.text.find(json.dumps(text))
    return lines.offset(at + 1, len(text)) if at >= 0 else lines.at(1, 1)


def _short(text: str, most: int = 80) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"
