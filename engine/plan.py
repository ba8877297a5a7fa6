"""`vram-eval serve-plan`: the launch line of a vLLM or SGLang server for a model and a GPU.

The engines' flags and the job a launch is are data (specs/catalog/engines.toml). The plan asks
the layers below: each candidate tensor-parallel size is the problem with ``tp`` bound
(Problem.changed), evaluated once; where the model's own context does not fit any of them,
``solve`` answers the longest request that does. Nothing here computes memory.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from . import resources
from .errors import EngineError, Location, SolveError, UnknownKey
from .regimes import JOBS

__all__ = ["Plan", "plan", "engines"]

CATALOG = "engines.toml"


def engines() -> Dict[str, dict]:
    """The engines serve-plan knows (specs/catalog/engines.toml), by name."""
    return resources.catalog(CATALOG)


@dataclass
class Plan:
    engine: str
    version: str
    model: str
    argv: List[str]  # the launch line, one argument each
    gpu: Optional[str]  # the catalog GPU's id
    gpus: int  # GPUs the launch splits the model over (tp x pp)
    chosen: str  # why these values: "the model's context" or "the longest that fits"
    settings: Dict[str, object]  # the inputs the flags show, as bound
    capacity: Dict[str, object]  # the engine's capacity outputs
    need: object  # bytes of each GPU the launch needs (the job's total)
    headroom: object  # bytes each GPU has beyond it
    job: str
    notes: Tuple[str, ...] = field(default_factory=tuple)
    docs: Dict[str, Tuple[Optional[str], str]] = field(default_factory=dict)  # capacity output → (unit, doc)
    gpu_memory: object = None  # bytes of each GPU

    @property
    def command(self) -> str:
        return " ".join(shlex.quote(a) for a in self.argv)

    def as_dict(self) -> dict:
        from .values import to_python

        return {"engine": self.engine, "version": self.version, "model": self.model, "command": self.command,
                "argv": list(self.argv), "gpu": self.gpu, "gpus": self.gpus, "chosen": self.chosen,
                "settings": {k: to_python(v) for k, v in self.settings.items()},
                "capacity": {k: to_python(v) for k, v in self.capacity.items()},
                "job": self.job, "need": to_python(self.need), "headroom": to_python(self.headroom),
                "notes": list(self.notes)}


def plan(problem, engine: str, model: str, max_gpus: int = 8, margin: int = 0) -> Plan:
    """The launch line for ``problem`` (a model, a GPU bound as gpu_memory) on ``engine``: the
    fewest GPUs (tensor parallel, powers of two up to ``max_gpus``) on which a start holds the
    model's context (or the ``length`` the spec or --set gives) with ``margin`` bytes of each GPU
    to spare; where none does, the longest request that fits on any of them, on the fewest GPUs
    that give it."""
    table = engines()
    if engine not in table:
        raise UnknownKey[SolveError](f"serve-plan knows no engine '{engine}'", Location("--engine"),
                                     hint="engines: " + ", ".join(sorted(table)), table="engines", key=engine,
                                     keys=tuple(sorted(table)), suggestion=None)
    spec = table[engine]
    job = JOBS[spec["job"]]
    if "gpu_memory" not in problem.bindings:
        raise SolveError("serve-plan needs the GPU each rank runs on", Location("--gpu"),
                         hint="give --gpu ID (h100, a100-80gb, rtx4090, ...: `vram-eval gpus` lists them), "
                         "gpu = \"h100\" in the spec, or --set gpu_memory=80GiB")
    length = spec["length"]
    fixed_tp = "tp" in problem.bindings
    candidates = [None] if fixed_tp else _powers_of_two(max_gpus)
    tried: List[Tuple[object, object]] = []  # (problem, values) for the candidates the formulas accept
    last_error: Optional[EngineError] = None
    for tp in candidates:
        candidate = problem if tp is None else problem.changed([_entry(f"tp={tp}")])
        try:
            values = _values(candidate, [job.total, job.headroom, "gpu_memory"])
        except EngineError as exc:  # a tp the model's heads refuse, a launch the engine refuses
            last_error = exc
            continue
        tried.append((candidate, values))
        if values[job.headroom] >= margin:
            return _plan(candidate, engine, spec, model, job, "the model's context" if length not in problem.bindings
                         else f"the {length} asked for", margin)
    if not tried:
        raise last_error  # every tensor-parallel size refused: the formulas say why
    # Nothing holds the asked length: the longest request that fits, on the fewest GPUs that give it.
    from .inverse import solve

    best = None
    for candidate, values in tried:
        solution = solve(candidate, length, int(values["gpu_memory"]) - margin, job.peak, remedies=False)
        if solution.value is not None and (best is None or solution.value > best[1]):
            best = (candidate, solution.value)
    if best is None:
        worst = tried[-1][1]
        raise SolveError(f"{job.heading} does not start on {max_gpus if not fixed_tp else 'these'} GPU(s) with any "
                         f"{length}: {_gib(worst[job.total])} GiB of each GPU needed at the most GPUs tried, "
                         f"{_gib(worst[job.headroom])} GiB {'short' if worst[job.headroom] < 0 else 'spare'}",
                         Location("--gpus" if not fixed_tp else "--set"),
                         hint="a larger GPU (--gpu), more of them (--gpus), a quantized checkpoint or "
                         "--set kv_cache_dtype=fp8")
    candidate, value = best
    return _plan(candidate.changed([_entry(f"{length}={int(value)}")]), engine, spec, model, job,
                 f"the longest {length} that fits", margin)


def _plan(problem, engine: str, spec: dict, model: str, job, chosen: str, margin: int) -> Plan:
    caveats = spec.get("caveats", [])
    names = [f["input"] for f in spec["flags"]] + list(spec["capacity"]) + [c["when"] for c in caveats] + [
        job.total, job.headroom, "tp", "pp", "gpu_memory"]
    values = _values(problem, names)
    argv = shlex.split(spec["command"].replace("{model}", shlex.quote(model)))
    settings = {}
    for flag in spec["flags"]:
        name = flag["input"]
        if name not in values:
            continue
        value = values[name]
        plain = _plain(value)
        if flag.get("when_set") and name not in problem.bindings:
            continue
        if "unless" in flag and plain == flag["unless"]:
            continue
        if flag.get("switch") or flag.get("switch_off"):
            if plain is (True if flag.get("switch") else False):
                argv.append(flag["flag"])
                settings[name] = value
            continue
        settings[name] = value
        shown = flag.get("values", {}).get(plain, plain) if isinstance(plain, str) else plain
        argv += [flag["flag"], _text(shown)]
    notes = [c["note"] for c in caveats if _plain(values.get(c["when"])) is True]
    if model.endswith((".toml", ".yaml", ".yml")):
        notes.append(f"{model} is a vram-eval spec: give {engine} the model's Hub id or folder instead")
    if spec.get("estimated"):
        notes.append(spec["estimated"])
    if margin:
        chosen += f", with {_gib(margin)} GiB of each GPU to spare (--margin)"
    gpus = int(_plain(values["tp"])) * int(_plain(values["pp"]))
    return Plan(engine=engine, version=spec["version"], model=model, argv=argv,
                gpu=problem.gpu.id if problem.gpu is not None else None, gpus=gpus, chosen=chosen,
                settings=settings, capacity={n: values[n] for n in spec["capacity"] if n in values},
                need=values[job.total], headroom=values[job.headroom], job=job.name, notes=tuple(notes),
                docs={n: (problem.ruleset.unit(n), problem.ruleset.rules[n].doc or "") for n in spec["capacity"]
                      if n in problem.ruleset.rules},
                gpu_memory=values.get("gpu_memory"))


def _values(problem, names: Sequence[str]) -> dict:
    """The plain values of ``names`` at the problem's point, every requirement checked (as `eval`
    checks them): a launch the engine refuses, or the model's heads refuse, is its located error."""
    from .forward import evaluate

    result = evaluate(problem, wanted=[n for n in names if n in problem.ruleset.rules
                                       and problem.ruleset.rules[n].kind == "definition"])
    return {n: result.plain[n] for n in names if n in result.plain}


def _entry(text: str):
    from .spec import parse_set

    return parse_set(text)


def _powers_of_two(limit: int) -> List[int]:
    out, n = [], 1
    while n <= limit:
        out.append(n)
        n *= 2
    return out


def _plain(value):
    from .values import to_python

    return to_python(value)


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _gib(value) -> str:
    """A byte count's size in GiB, 2 decimals (the sign is said in words)."""
    return f"{abs(float(_plain(value))) / 2**30:.2f}"
