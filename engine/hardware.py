"""The GPU catalog (``specs/catalog/gpus.toml``): ``gpu = "h100"`` → memory.

The catalog is data: one table per GPU with its name, its memory with an
explicit unit ("80GiB") and the source of the figure. A spec's ``gpu`` key,
``--set gpu=...`` or ``--gpu`` become a binding of the ``gpu_memory`` input.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from typing import Dict, Optional

from . import resources
from .errors import Location, SpecError, suggest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["GPU", "gpu_catalog", "find_gpu", "GPU_KEY"]

# The spec key (and --set name) that names a GPU of the catalog.
GPU_KEY = "gpu"


@dataclass(frozen=True)
class GPU:
    id: str
    name: str
    memory: str  # with its unit, e.g. "80GiB"
    marketed: Optional[str]
    source: Optional[str]


@functools.lru_cache(maxsize=1)
def gpu_catalog() -> Dict[str, GPU]:
    """id or alias → GPU."""
    path = resources.catalog_path("gpus.toml")
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    out: Dict[str, GPU] = {}
    for key, entry in data.items():
        if not isinstance(entry, dict) or "memory" not in entry:
            continue
        gpu = GPU(key, entry.get("name", key), str(entry["memory"]), entry.get("marketed"), entry.get("source"))
        out[key] = gpu
        for alias in entry.get("aliases", ()):
            out[alias] = gpu
    return out


def find_gpu(name: str, location: Optional[Location] = None) -> GPU:
    catalog = gpu_catalog()
    if not isinstance(name, str):
        raise SpecError(f"'{GPU_KEY}' names a GPU of the catalog, such as \"h100\"", location)
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    if key in catalog:
        return catalog[key]
    ids = sorted({g.id for g in catalog.values()})
    hint = suggest(key, list(catalog))
    raise SpecError(
        f"unknown GPU '{name if len(name) <= 60 else name[:57] + '...'}'",
        location,
        hint=(hint + " " if hint else "") + "known: " + ", ".join(ids)
        + '; or give the memory directly: gpu_memory = "24GiB"',
    )
