"""A GGUF file's header: its metadata and its tensor table, read sequentially and bounded —
a tensor's data is never read — with the format's value types, tensor types and their block
sizes from the gguf package (llama.cpp's gguf-py, the optional ``gguf`` extra).

GGUF (llama.cpp docs/gguf.md): "GGUF", a version (2 or 3), the tensor count and the metadata
count (u64), the metadata (key string, value type u32, value; an array is its item type, a u64
count and the items), then per tensor its name, dimension count, dimensions (u64), type and
offset (u64) into the data, which starts at the next multiple of ``general.alignment`` (32).
Strings are a u64 length and UTF-8 bytes; everything is little-endian.

:func:`read_gguf` gives the metadata (scalars and short strings; an array's length and, for a
short array of numbers, its items) and a :class:`~vram_eval.checkpoint.Checkpoint` whose dtypes
are the GGML type names (``Q4_K``, ``F32``): a tensor of n elements of a type of block size B
and type size T takes n / B · T bytes.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Dict, List, Tuple

from . import resources
from .errors import LimitExceeded, Location, MissingDependency, SpecError, UnreadableFile
from .safe_read import NotRegular, open_regular

__all__ = ["read_gguf", "GGUF_SUFFIX"]

GGUF_SUFFIX = ".gguf"
_MAGIC = b"GGUF"
_SHORT = 1024  # longest string value kept (longer ones: their length only)
_ITEMS = 4096  # most items of a numeric array kept (a per-layer head count)


def catalog() -> dict:
    return resources.catalog("gguf.toml")


def _gguf():
    try:
        from gguf import constants
    except ImportError:
        raise MissingDependency("reading a .gguf file needs the gguf package",
                                hint="pip install 'vram-eval[gguf]' (llama.cpp's gguf-py)",
                                package="gguf", extra="gguf") from None
    return constants


class _Reader:
    """The header's bytes, read in order from an open file, never past ``limit``."""

    def __init__(self, fd: int, shown: str, limit: int) -> None:
        self.fd, self.shown, self.limit = fd, shown, limit
        self.buffer = b""
        self.pos = 0  # bytes consumed

    def take(self, n: int) -> bytes:
        if self.pos + n > self.limit:
            raise LimitExceeded[SpecError](
                f"the GGUF header is longer than {self.limit:,} bytes, the most vram-eval reads",
                Location(self.shown), hint="this is not a GGUF file, or it is damaged", what="header size",
                limit=self.limit, amount=None)
        while len(self.buffer) < n:
            chunk = os.read(self.fd, max(1 << 20, n - len(self.buffer)))
            if not chunk:
                raise UnreadableFile[SpecError](
                    f"the file ends inside its GGUF header (after {self.pos + len(self.buffer):,} bytes)",
                    Location(self.shown), hint="the file is truncated: download it again", file=self.shown,
                    reason="truncated")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        self.pos += n
        return out

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.unpack("Q")
        raw = self.take(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.bad("a string of the header is not UTF-8") from None

    def bad(self, message: str) -> SpecError:
        return UnreadableFile[SpecError](message, Location(self.shown), hint="the file is damaged or not GGUF",
                                         file=self.shown, reason="format")


def read_gguf(path: Path, shown: str):
    """(metadata, Checkpoint) of a GGUF file; every problem a located SpecError."""
    from .checkpoint import Checkpoint, TensorInfo, refused

    constants = _gguf()
    bounds = catalog()["header"]
    try:
        fd = open_regular(path)
    except (OSError, ValueError, NotRegular) as exc:
        raise refused(exc, shown, "a GGUF file") from None
    try:
        size = os.fstat(fd).st_size
        r = _Reader(fd, shown, bounds["max_header_bytes"])
        if r.take(4) != _MAGIC:
            raise r.bad("the file does not start with GGUF's magic bytes")
        version = r.unpack("I")
        if version not in (2, 3):
            raise r.bad(f"GGUF version {version}: vram-eval reads versions 2 and 3")
        n_tensors, n_keys = r.unpack("Q"), r.unpack("Q")
        for count, most, what in ((n_tensors, bounds["max_tensors"], "tensors"), (n_keys, bounds["max_keys"], "keys")):
            if count > most:
                raise LimitExceeded[SpecError](f"the header says it has {count:,} {what}, more than {most:,}",
                                               Location(shown), hint="the file is damaged or not GGUF",
                                               what=what, limit=most, amount=count)
        metadata = _metadata(r, n_keys, constants)
        alignment = metadata.get("general.alignment", constants.GGUF_DEFAULT_ALIGNMENT)
        if type(alignment) is not int or alignment <= 0 or alignment % 8:
            raise r.bad(f"general.alignment is {alignment!r}: not a positive multiple of 8")
        infos = [_tensor(r, bounds["max_dims"], constants) for _ in range(n_tensors)]
    finally:
        os.close(fd)
    start = -(-r.pos // alignment) * alignment
    tensors, end = [], 0
    names = set()
    for name, shape, kind, offset, nbytes in sorted(infos, key=lambda t: t[3]):
        if name in names:
            raise r.bad(f"the tensor '{name}' is listed twice")
        names.add(name)
        if offset % alignment or offset < end:
            raise r.bad(f"the tensor '{name}' starts at byte {offset:,} of the data: not aligned to {alignment} "
                        f"or inside the tensor before it (which ends at {end:,})")
        end = offset + nbytes
        tensors.append(TensorInfo(name, kind, shape, nbytes, path.name))
    if start + end > size:
        raise UnreadableFile[SpecError](
            f"the tensors end at byte {start + end:,}, but the file has {size:,}: it is truncated", Location(shown),
            hint="download it again", file=shown, reason="truncated")
    return metadata, Checkpoint(shown, (path.name,), tuple(sorted(tensors, key=lambda t: t.name)), "gguf")


def _metadata(r: _Reader, count: int, constants) -> Dict[str, object]:
    types = constants.GGUFValueType
    out: Dict[str, object] = {}
    for _ in range(count):
        key = r.string()
        kind = r.unpack("I")
        if kind == types.ARRAY:
            item, n = r.unpack("I"), r.unpack("Q")
            items = [_value(r, item, types) for _ in range(n)] if n <= _ITEMS else None
            if items is None:
                _skip(r, item, n, types)
            out[key] = _Array(n, items if items is not None and all(type(i) in (int, float) for i in items) else None)
        else:
            out[key] = _value(r, kind, types)
    return out


class _Array:
    """An array value of the metadata: its length, and its items when it is a short list of numbers."""

    __slots__ = ("length", "items")

    def __init__(self, length: int, items) -> None:
        self.length, self.items = length, items


_FORMATS = {"UINT8": "B", "INT8": "b", "UINT16": "H", "INT16": "h", "UINT32": "I", "INT32": "i", "FLOAT32": "f",
            "BOOL": "?", "UINT64": "Q", "INT64": "q", "FLOAT64": "d"}


def _value(r: _Reader, kind: int, types):
    try:
        name = types(kind).name
    except ValueError:
        raise r.bad(f"a metadata value has the type {kind}, which GGUF does not define") from None
    if name == "STRING":
        n = r.unpack("Q")
        raw = r.take(n)
        return raw.decode("utf-8", "replace") if n <= _SHORT else None
    if name == "ARRAY":
        raise r.bad("an array of arrays in the metadata")
    return r.unpack(_FORMATS[name])


def _skip(r: _Reader, kind: int, n: int, types) -> None:
    try:
        name = types(kind).name
    except ValueError:
        raise r.bad(f"a metadata array has the item type {kind}, which GGUF does not define") from None
    if name == "STRING":
        for _ in range(n):
            r.take(r.unpack("Q"))
    elif name == "ARRAY":
        raise r.bad("an array of arrays in the metadata")
    else:
        r.take(struct.calcsize("<" + _FORMATS[name]) * n)


def _tensor(r: _Reader, max_dims: int, constants) -> Tuple[str, Tuple[int, ...], str, int, int]:
    name = r.string()
    dims = r.unpack("I")
    if dims > max_dims:
        raise r.bad(f"the tensor '{name[:80]}' has {dims} dimensions; GGML has at most {max_dims}")
    shape = tuple(r.unpack("Q") for _ in range(dims))
    kind, offset = r.unpack("I"), r.unpack("Q")
    try:
        qtype = constants.GGMLQuantizationType(kind)
        block, type_size = constants.GGML_QUANT_SIZES[qtype]
    except (ValueError, KeyError):
        raise r.bad(f"the tensor '{name[:80]}' has the type {kind}, which this gguf package does not know") from None
    elements = 1
    for d in shape:
        elements *= d
    if shape and shape[0] % block:
        raise r.bad(f"the tensor '{name[:80]}' ({qtype.name}) has rows of {shape[0]} elements, not a multiple of "
                    f"its block of {block}")
    # GGUF lists dimensions innermost first; the reversed shape is the one PyTorch would show.
    return name, tuple(reversed(shape)), qtype.name, offset, elements // block * type_size


def config_of(metadata: Dict[str, object], tensors: List[str], shown: str) -> dict:
    """The config.json keys the GGUF metadata stands for (specs/catalog/gguf.toml)."""
    arch = metadata.get("general.architecture")
    known = catalog()["architectures"]
    if not isinstance(arch, str) or arch not in known:
        raise UnreadableFile[SpecError](
            f"general.architecture is {arch!r}, which vram-eval does not read from a GGUF file", Location(shown),
            hint="known: " + ", ".join(sorted(known)) + "; or give the model's config.json", file=shown,
            reason="format")
    config: Dict[str, object] = {}
    for key, target in catalog()["keys"].items():
        value = metadata.get(f"{arch}.{key}")
        if isinstance(value, _Array):
            if value.items and len(set(value.items)) == 1:
                value = value.items[0]  # one value per layer, all the same
            else:
                continue
        if value is not None:
            config[target] = value
    if "vocab_size" not in config and isinstance(metadata.get("tokenizer.ggml.tokens"), _Array):
        config["vocab_size"] = metadata["tokenizer.ggml.tokens"].length
    entry = known[arch]
    experts = config.get("num_local_experts") or 0
    config["model_type"] = entry.get("with_experts", entry["model_type"]) if experts else entry["model_type"]
    config["tie_word_embeddings"] = "output.weight" not in tensors
    name = metadata.get("general.name")
    if isinstance(name, str):
        config["_name_or_path"] = name
    return config
