"""Spec + ``--set`` + formula files → a bound :class:`Problem`, ready for the
four questions (evaluate, solve, sensitivity, sweep).

The order matters once: the spec is read first, because its values choose
formula variants (``arch = "llama"`` loads ``formulas/arch/llama.formula``);
then the RuleSet is composed and every entry is checked against it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple

from .hardware import GPU, GPU_ARCH, GPU_COMPUTE, GPU_KEY, GPU_MEMORY, find_gpu
from .library import Library
from .rules import RuleSet
from .errors import Location
from .spec import Binding, Entry, Spec, bind, load_spec, parse_set

# The input a catalog GPU's architecture binds (formulas/overhead.formula: the cuBLAS workspace).

__all__ = ["Problem", "load"]


@dataclass(frozen=True)
class Problem:
    """The formulas and the bound inputs of one question."""

    ruleset: RuleSet
    bindings: Mapping[str, Binding]
    spec: Optional[Spec] = None
    gpu: Optional[GPU] = None
    # Said on stderr by the CLI before any answer (a config.json read with a --set arch block).
    warnings: Tuple[str, ...] = ()
    # --train-config files read (engine/train_config.py): what each set and left out.
    train_configs: Tuple[object, ...] = ()

    @functools.cached_property
    def point(self):
        """The values at the bound point (:class:`~vram_eval.forward.Point`), each worked out once
        for every question asked of this problem."""
        from .forward import Point

        return Point(self.ruleset, self.bindings)

    def changed(self, entries: Sequence[Entry]) -> "Problem":
        """The same problem with ``entries`` bound on top (a remedy's settings): its point keeps
        every value that does not depend on them."""
        bindings = dict(self.bindings)
        new = bind(self.ruleset, entries)
        bindings.update(new)
        problem = Problem(self.ruleset, bindings, self.spec, self.gpu, self.warnings, self.train_configs)
        problem.__dict__["point"] = self.point.moved(bindings, new)  # functools.cached_property's slot
        return problem

    @property
    def spec_path(self) -> Optional[str]:
        return self.spec.path if self.spec else None

    @property
    def title(self) -> Optional[str]:
        return self.spec.name if self.spec else None


def load(
    spec: Optional[str] = None,
    sets: Sequence[str] = (),
    formulas: Sequence[str] = (),
    extra: Sequence[Entry] = (),
    gpu: Optional[str] = None,
    train_configs: Sequence[str] = (),
    confine: Optional[str] = None,
    fetch: bool = False,
) -> Problem:
    """Read ``spec`` (a path, or None for no spec), apply ``--set`` texts, bind.

    ``train_configs`` (``--train-config`` files: engine/train_config.py) bind after the spec and
    before ``extra`` and the sets; a base model one names is the spec when none is given.
    ``extra`` entries (already located) go between the spec and the sets;
    ``gpu`` (a catalog id, as ``--gpu``) overrides the spec's ``gpu``; ``confine`` (a folder) keeps
    the files a training config names within it (the web page's uploads); ``fetch`` reads a Hub id
    the local cache lacks from the Hub (its config.json and safetensors headers: ``--fetch``)."""
    configs: tuple = ()
    named = []
    if train_configs:
        from .train_config import read_train_configs

        configs = tuple(read_train_configs(train_configs, within=confine))
        named = [(c.model, c.path) for c in configs if c.model is not None]
    if spec is None and named:
        (model, _), _ = named[0]
        spec = model
    loaded = load_spec(spec, fetch=fetch) if spec is not None else None
    set_entries = [parse_set(s) for s in sets]
    warnings = _unknown_model_type(loaded, set_entries) + tuple(
        f"{path}: its base model '{model}' is not read: the spec given is" for (model, _), path in named
        if model != spec)
    entries = (list(loaded.entries if loaded else ()) + [e for c in configs for e in c.entries] + list(extra)
               + set_entries)
    if gpu is not None:
        entries.append(Entry(GPU_KEY, gpu, Location("--gpu", None, 1, gpu, len(gpu))))
    entries, chosen_gpu = _resolve_gpus(entries)
    chosen: Dict[str, object] = {}
    for entry in entries:
        if isinstance(entry.value, str):
            chosen[entry.name] = (entry.value, entry.location)
    ruleset = Library(formulas).ruleset(chosen)
    _check_undeclared(ruleset, entries)
    return Problem(ruleset, bind(ruleset, entries), loaded, chosen_gpu, warnings, configs)


def _unknown_model_type(loaded: Optional[Spec], sets: Sequence[Entry]) -> Tuple[str, ...]:
    """A config.json whose model_type the catalog does not know stops here, unless --set arch
    names the block to read it with; then the answer comes with a warning."""
    error = loaded.unknown_model_type if loaded else None
    if error is None:
        return ()
    arch = [e for e in sets if e.name == "arch"]
    if not arch:
        raise error
    return (f"{error.location}: model_type \"{error.model_type}\" is not in the catalog; its config.json is "
            f"read as an arch={arch[-1].value} block with the config's own keys only. Nothing of this "
            "family was checked against a real model: its numbers may be wrong.",)


def _check_undeclared(ruleset: RuleSet, entries) -> None:
    """A name a formula uses that nothing defines is a typo, unless the spec or --set binds it."""
    if not ruleset.free:
        return
    given = {e.name for e in entries} | {e.key for e in entries}
    for name, error in ruleset.undeclared():
        if name not in given:
            raise error


def _resolve_gpus(entries):
    """``gpu = "h100"`` → a gpu_memory entry from the catalog (the last one wins): the GPU's
    usable bytes (what its driver reports), not its marketed size; and gpu_arch and
    gpu_compute_capability entries, its architecture and compute capability, unless given. A
    later ``gpu_memory`` wins."""
    out, chosen = [], None
    arch_given = any(entry.name == GPU_ARCH for entry in entries)
    compute_given = any(entry.name == GPU_COMPUTE for entry in entries)
    gpus = [n for n, entry in enumerate(entries) if entry.key == GPU_KEY and entry.target is None]
    if gpus and any(entry.name == GPU_MEMORY for entry in entries[gpus[-1]:]):
        gpus = []  # a memory given after the last GPU: the job is no longer on a catalog GPU
    for n, entry in enumerate(entries):
        if entry.key == GPU_KEY and entry.target is None:
            chosen = find_gpu(entry.value, entry.location)  # a value that is not a GPU's id: its error
            entry = Entry(GPU_KEY, chosen.usable_bytes, entry.location, target=GPU_MEMORY)
            if gpus and n == gpus[-1] and chosen.arch is not None and not arch_given:  # the last GPU's, unless named
                out.append(Entry(GPU_KEY, chosen.arch, entry.location, target=GPU_ARCH))
            if gpus and n == gpus[-1] and chosen.compute_capability is not None and not compute_given:
                out.append(Entry(GPU_KEY, chosen.compute_capability, entry.location, target=GPU_COMPUTE))
        elif entry.name == GPU_MEMORY:
            chosen = None
        out.append(entry)
    return out, chosen
