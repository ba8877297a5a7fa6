"""The GPU catalog (``specs/catalog/gpus.toml``): ``gpu = "h100"`` → a memory budget.

The catalog is data: one table per GPU with its name, its marketed size, its
capacity with an explicit unit ("80GiB"), the memory its driver reports
(``reported_mib``, nvidia-smi ``memory.total``) and the sources of both. A
spec's ``gpu`` key, ``--set gpu=...`` or ``--gpu`` bind the ``gpu_memory``
input to :attr:`GPU.usable_bytes`: what one device's driver exposes, not the
marketed size, which nothing can allocate.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from . import resources
from .errors import DuplicateDefinition, InvalidValue, Location, SpecError, UnknownKey, closest, did_you_mean
from .units import parse_quantity

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["GPU", "gpu_catalog", "find_gpu", "GPU_KEY", "GPU_MEMORY", "GPU_ARCH", "GPU_COMPUTE", "MiB"]

# The spec key (and --set name) that names a GPU of the catalog; the input a catalog GPU binds
# (its usable bytes: formulas/hardware.formula's budget) and the one it binds its architecture to.
GPU_KEY = "gpu"
GPU_MEMORY = "gpu_memory"
GPU_ARCH = "gpu_arch"
GPU_COMPUTE = "gpu_compute_capability"

MiB = 2**20

# How the budget of a catalog GPU was found (GPU.basis).
DRIVER = "driver"  # reported_mib x 2^20: what nvidia-smi / rocm-smi report on a real card
CAPACITY = "capacity"  # no driver figure on record: the card's capacity, unchecked


@dataclass(frozen=True)
class GPU:
    id: str
    name: str
    memory: str  # the capacity with its unit, e.g. "80GiB"
    marketed: Optional[str]  # as the vendor prints it, e.g. "80GB"
    source: Optional[str]  # where `marketed` comes from
    vendor: Optional[str] = None
    memory_bytes: int = 0  # `memory` in bytes
    reported_mib: Optional[int] = None  # the driver's memory.total of one device, MiB
    reported_source: Optional[str] = None
    no_driver_figure: Optional[str] = None  # why there is no reported_mib
    devices: int = 1  # devices the OS sees per package (MI250X: 2 GCDs)
    aliases: Tuple[str, ...] = ()
    arch: Optional[str] = None  # NVIDIA architecture, bound to gpu_arch (formulas/overhead.formula)
    compute_capability: Optional[float] = None  # CUDA's major.minor, bound to gpu_compute_capability

    @property
    def usable_bytes(self) -> int:
        """The budget: one device's driver-reported memory, or the capacity where none is on record."""
        if self.reported_mib is not None:
            return self.reported_mib * MiB
        return self.memory_bytes // self.devices

    @property
    def basis(self) -> str:
        return DRIVER if self.reported_mib is not None else CAPACITY

    def describe(self) -> str:
        """How the budget was found, in words, for the report header and the listing."""
        parts = []
        if self.devices > 1:
            parts.append(f"one of its {self.devices} devices; {self.marketed or self.memory} marketed per package")
        elif self.marketed:
            parts.append(f"{self.marketed} marketed")
        if self.reported_mib is not None:
            each = " per device" if self.devices > 1 else ""
            parts.append(f"the driver reports {self.reported_mib:,} MiB{each}")
        else:
            parts.append("no driver figure on record: its full capacity, not checked against a driver")
        return "; ".join(parts)

    def as_dict(self) -> Dict[str, Any]:
        """The report JSON's "gpu" object (bytes as integers)."""
        return {
            "id": self.id,
            "name": self.name,
            "vendor": self.vendor,
            "marketed": self.marketed,
            "memory_bytes": self.memory_bytes,
            "reported_mib": self.reported_mib,
            "usable_bytes": self.usable_bytes,
            "basis": self.basis,
            "devices": self.devices,
            "arch": self.arch,
            "compute_capability": self.compute_capability,
            "note": self.no_driver_figure,
            "source": self.source,
            "reported_source": self.reported_source,
        }


def _header(path, key: str) -> Location:
    """Where the entry ``[key]`` starts: its table header."""
    lines = path.read_text(encoding="utf-8").splitlines()
    line = next((n for n, text in enumerate(lines, 1) if text.strip() == f"[{key}]"), None)
    source = lines[line - 1] if line else None
    return Location(str(path), line, 1 if line else None, source, len(source or "") or 1)


def _error(path, key: str, message: str, field: str, value, expected: str = "") -> SpecError:
    """An entry's value that is not one the catalog takes, located at the entry's table header."""
    return InvalidValue[SpecError](f"GPU catalog entry [{key}]: {message}", _header(path, key),
                                   name=f"{key}.{field}", value=value, expected=expected)


def _entry(path, key: str, entry: Dict[str, Any]) -> GPU:
    """One table of the catalog → GPU, checked: the catalog is data and may be edited by hand."""
    memory = str(entry["memory"])
    parsed = parse_quantity(memory)
    if parsed is None or parsed[1] != "bytes":
        raise _error(path, key, f"memory = \"{memory}\" is not a memory size such as \"80GiB\"", "memory", memory,
                     "a memory size such as \"80GiB\"")
    memory_bytes = int(parsed[0])
    if entry.get("memory_bytes", memory_bytes) != memory_bytes:
        raise _error(path, key, f"memory_bytes = {entry['memory_bytes']} but memory = \"{memory}\" is {memory_bytes} bytes",
                     "memory_bytes", entry["memory_bytes"], f"{memory_bytes} (memory in bytes)")
    devices = entry.get("devices", 1)
    if not isinstance(devices, int) or isinstance(devices, bool) or devices < 1:
        raise _error(path, key, "devices must be a whole number of at least 1", "devices", devices,
                     "a whole number of at least 1")
    reported = entry.get("reported_mib")
    reason = entry.get("no_driver_figure")
    if reported is None and not reason:
        raise _error(path, key, "needs reported_mib (the driver's memory.total in MiB) or a no_driver_figure reason",
                     "reported_mib", None, "the driver's memory.total in MiB, or a no_driver_figure reason")
    if reported is not None:
        if not isinstance(reported, int) or isinstance(reported, bool) or reported <= 0:
            raise _error(path, key, "reported_mib must be a positive whole number of MiB", "reported_mib", reported,
                         "a positive whole number of MiB")
        if reported * MiB * devices > memory_bytes:
            raise _error(path, key, f"reported_mib = {reported} is more than memory = \"{memory}\" holds",
                         "reported_mib", reported, f"at most memory = \"{memory}\"")
    return GPU(
        id=key,
        name=entry.get("name", key),
        memory=memory,
        marketed=entry.get("marketed"),
        source=entry.get("source"),
        vendor=entry.get("vendor"),
        memory_bytes=memory_bytes,
        reported_mib=reported,
        reported_source=entry.get("reported_source"),
        no_driver_figure=reason,
        devices=devices,
        aliases=tuple(entry.get("aliases", ())),
        arch=entry.get("arch"),
        compute_capability=entry.get("compute_capability"),
    )


@functools.lru_cache(maxsize=1)
def gpu_catalog() -> Dict[str, GPU]:
    """id or alias → GPU."""
    path = resources.catalog_path("gpus.toml")
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    out: Dict[str, GPU] = {}
    for key, entry in data.items():
        if not isinstance(entry, dict) or "memory" not in entry:
            continue
        gpu = _entry(path, key, entry)
        for name in (key, *gpu.aliases):
            if name in out:
                raise DuplicateDefinition[SpecError](
                    f"GPU catalog entry [{key}]: the id or alias '{name}' is already used by [{out[name].id}]",
                    _header(path, key), name=name, first=_header(path, out[name].id))
            out[name] = gpu
    return out


def find_gpu(name: str, location: Optional[Location] = None) -> GPU:
    catalog = gpu_catalog()
    if not isinstance(name, str):
        raise InvalidValue[SpecError](f"'{GPU_KEY}' names a GPU of the catalog, such as \"h100\"", location,
                                      name=GPU_KEY, value=name, expected="the id of a GPU of the catalog")
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    if key in catalog:
        return catalog[key]
    ids = sorted({g.id for g in catalog.values()})
    guess = closest(key, list(catalog))
    hint = did_you_mean(guess)
    raise UnknownKey[SpecError](
        f"unknown GPU '{name if len(name) <= 60 else name[:57] + '...'}'",
        location,
        hint=(hint + " " if hint else "") + "known: " + ", ".join(ids)
        + '; `vram-eval gpus` lists them; or give the memory directly: gpu_memory = "24GiB"',
        table="gpus", key=name, keys=tuple(sorted(catalog)), suggestion=guess,
    )
