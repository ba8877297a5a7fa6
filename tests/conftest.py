"""Shared helpers: evaluate a spec (or bare --set values) and run the CLI in-process."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
SPECS = ROOT / "specs"

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


# --- running in parallel (pytest-xdist) -------------------------------------------------------
# pyproject.toml's addopts run the suite on every core (--numprocesses=auto --dist=loadgroup);
# -n 0 (or -p no:xdist) runs it in this one process. Tests that share something costly, worked out
# once per process, are kept together on one worker; every other test is dealt out on its own.
GROUPS = {
    # the measured cases' points (evaluate_once, below): docs/ACCURACY.md's table and these files
    # ask the same points; one worker works each out once (apart: 21 s of work, together: 9 s)
    "measured-points": ("test_accuracy.py", "test_measured.py", "test_measured_peaks.py",
                        "test_measured_kv_cache.py", "test_family_activations.py", "test_step_counters.py",
                        "test_families.py"),
    "torch": ("test_validate.py",),  # importing torch and transformers, ~3 s, once
    "sensitivity": ("test_sensitivity.py",),  # its answers, shared between its tests (rows)
    "browser": ("test_web_browser.py",),  # one headless Chromium (a second start, ~1 s, on another worker)
}
_GROUP_OF = {file: group for group, files in GROUPS.items() for file in files}
# Seconds of work (one core of a 2-core x86_64, summed --durations) of the units that take more
# than their number of tests says: the longest are dealt out first, so that the run ends on short
# ones, not with one worker still busy with a long one. Any other unit counts 2 ms a test. Only
# the order the workers are given their units depends on this.
SECONDS = {"measured-points": 16, "hostile-subprocess": 12, "test_vectorise.py": 12, "sensitivity": 10, "torch": 6,
           "test_property.py": 4.5, "test_cold_start.py": 4, "test_sweep.py": 3.7, "test_formula_limits.py": 1.9,
           "test_hostile.py": 3, "test_quantized.py": 2.4, "test_cache.py": 2.3, "test_job_example.py": 1,
           "test_wheel.py": 1.9, "test_sharding.py": 1.9, "test_solve.py": 1.8, "test_spec_limits.py": 1.6,
           "test_web_api.py": 6, "test_web_browser.py": 5}
_HOSTILE_SUBPROCESS: list = []  # the hostile cases run in a fresh interpreter (cases.toml)


def _group(nodeid: str):
    """The group of a test's node id, or None: a file's, or, for tests/test_hostile.py, the cases
    run in a fresh interpreter (the parse cache they share, each attack's baseline without a
    cache and the filled caches the attacks copy are each made once, in one process)."""
    path, _, rest = nodeid.partition("::")
    file = path.rpartition("/")[2]
    if file == "test_hostile.py" and rest.startswith("test_hostile_input["):
        if not _HOSTILE_SUBPROCESS:
            cases = load_toml(DATA / "hostile" / "cases.toml")["case"]
            _HOSTILE_SUBPROCESS.append({c["id"] for c in cases if c.get("run") == "subprocess"})
        return "hostile-subprocess" if rest[len("test_hostile_input["):-1] in _HOSTILE_SUBPROCESS[0] else None
    return _GROUP_OF.get(file)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """--dist=loadgroup with the groups above. (xdist_group marks would say the same, but with
    pytest >= 9.2 and pytest-xdist 3.8 they are silently ignored: pytest-xdist issue #1386.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class Grouped(LoadGroupScheduling):
        """LoadGroupScheduling with its bookkeeping kept in counts: pytest-xdist 3.8 works out a
        node's pending tests, at the end of each test, by walking every test the node was ever
        given, and finds each test's index in the collection by a list search (quadratic in the
        suite's size: seconds of the controlling process's time for 6,000 tests, taken from the
        workers on a 2-core machine). The same answers, by count and by dict."""

        def __init__(self, config, log=None) -> None:
            super().__init__(config, log)
            self._pending: dict = {}  # id(a node's assigned work) -> its tests not yet complete
            self._index: dict = {}  # node -> {node id: its first index in the node's collection}

        def _split_scope(self, nodeid: str) -> str:
            return _group(nodeid) or nodeid.partition("::")[0]

        def _pending_of(self, workload) -> int:
            count = self._pending.get(id(workload))
            return super()._pending_of(workload) if count is None else count

        def _assign_work_unit(self, node) -> None:
            assert self.workqueue
            if not getattr(self, "_longest_first", False):  # once, before the first unit is dealt
                self._longest_first = True
                units = sorted(self.workqueue.items(), reverse=True,
                               key=lambda item: SECONDS.get(item[0].rpartition("/")[2], 0.002 * len(item[1])))
                self.workqueue.clear()
                self.workqueue.update(units)
            scope, work_unit = self.workqueue.popitem(last=False)
            assigned = self.assigned_work.setdefault(node, {})
            assigned[scope] = work_unit
            index = self._index.get(node)
            if index is None:
                index = self._index[node] = {}
                for i, nodeid in enumerate(self.registered_collections[node]):
                    index.setdefault(nodeid, i)
            todo = [index[nodeid] for nodeid, completed in work_unit.items() if not completed]
            if id(assigned) in self._pending:
                self._pending[id(assigned)] += len(todo)
            else:  # the node's first unit: counted once, as pytest-xdist counts
                self._pending[id(assigned)] = super()._pending_of(assigned)
            node.send_runtest_some(todo)

        def mark_test_complete(self, node, item_index: int, duration: float = 0) -> None:
            nodeid = self.registered_collections[node][item_index]
            assigned = self.assigned_work[node]
            unit = assigned[self._split_scope(nodeid)]
            if not unit[nodeid]:
                unit[nodeid] = True
                if id(assigned) in self._pending:
                    self._pending[id(assigned)] -= 1
            self._reschedule(node)

        def remove_node(self, node):
            workload = self.assigned_work.get(node)
            try:
                return super().remove_node(node)
            finally:
                if workload is not None:
                    self._pending.pop(id(workload), None)
                self._index.pop(node, None)

    return Grouped(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Hypothesis's own modules imported as they are, not assertion-rewritten: pytest rewrites
    every module of a plugin's distribution on import (Hypothesis's ~100, in each worker and in
    the controlling process, which imports it for its summary), with no bytecode kept where
    PYTHONDONTWRITEBYTECODE is set: ~1 s a process. Their asserts are Hypothesis's, not this
    suite's; the suite's own modules (tests/*.py, conftest.py) are rewritten as before. (Where
    pytest's hook has another shape, nothing changes.)"""
    hook = getattr(config.pluginmanager, "rewrite_hook", None)
    marked = getattr(hook, "_must_rewrite", None)
    if isinstance(marked, set) and "hypothesis" in marked:
        marked.discard("hypothesis")
        getattr(hook, "_marked_for_rewrite_cache", {}).clear()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """The controlling process imports Hypothesis for its summary (its plugin's terminal summary)
    once every worker is done: imported as the first worker finishes, while that core is free."""
    import importlib

    try:
        importlib.import_module("hypothesis.internal.observability")
    except ImportError:  # pragma: no cover - Hypothesis is a test dependency
        pass


def pytest_addoption(parser, pluginmanager):
    """With pytest-xdist blocked (-p no:xdist), the --numprocesses and --dist of pyproject.toml's
    addopts are accepted and do nothing: the suite runs in this one process."""
    if not pluginmanager.has_plugin("xdist"):
        parser.addoption("--numprocesses", dest="numprocesses", default=None,
                         help="(pytest-xdist is not loaded: ignored)")
        parser.addoption("--dist", dest="dist", default="no", help="(pytest-xdist is not loaded: ignored)")


def load_toml(path: Path) -> dict:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def evaluate(spec=None, *sets, formulas=(), gpu=None):
    """The Breakdown of a spec path (or None) with --set texts."""
    import vram_eval

    problem = vram_eval.load(None if spec is None else str(spec), list(sets), list(formulas), gpu=gpu)
    return vram_eval.evaluate(problem.ruleset, problem.bindings, spec=problem.spec_path, title=problem.title)


# evaluate_once's answers: (spec, its bytes, sets) → the point, for the whole session.
_ONCE: dict = {}


class _AtPoint:
    """A loaded problem whose values are worked out as they are read (``point[name]``, as a
    Breakdown gives them): the measured cases read a few outputs each, not every rule. The
    point's requirements are checked when it is made, and each value read passes the same
    memory checks as a full evaluation's (engine/guards.py)."""

    def __init__(self, problem) -> None:
        from vram_eval.forward import check_requirements

        self.problem = problem
        values, _ = problem.point.plain_of({d for r in problem.ruleset.requirements for d in r.deps})
        check_requirements(problem.ruleset, problem.bindings, values)

    def __getitem__(self, name):
        from vram_eval.forward import Breakdown
        from vram_eval.guards import check_memory

        problem = self.problem
        canonical = problem.ruleset.resolve(name) or name
        values, missing = problem.point.plain_of([canonical] if canonical in problem.ruleset.rules else [])
        check_memory(problem.ruleset, problem.bindings, {canonical: values[canonical]} if canonical in values else {})
        return Breakdown(problem.ruleset, problem.bindings, values, missing)[name]


_SCRATCH: list = []  # [the session's directory for scratch_dir's folders, how many it has made]


@pytest.fixture(scope="session", autouse=True)
def _scratch_base(tmp_path_factory):
    _SCRATCH[:] = [tmp_path_factory.mktemp("scratch"), 0]


@contextlib.contextmanager
def scratch_dir():
    """A new empty directory for a with block: a folder of the session's temporary directory,
    left there as tmp_path's folders are (pytest removes them with the session's directory, runs
    later), since removing a file just written costs ~3 ms of waiting on this filesystem (the
    measured cases write ~500 config.json files); outside a test session, a TemporaryDirectory."""
    if not _SCRATCH:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            yield Path(tmp)
        return
    _SCRATCH[1] += 1
    path = _SCRATCH[0] / str(_SCRATCH[1])
    path.mkdir()
    yield path


def evaluate_once(spec=None, *sets):
    """The values at (spec, sets), worked out once per test session and each only when read:
    for the measured cases, which several tests and docs/ACCURACY.md's table
    (tests/test_accuracy.py) ask the same point of. ``spec`` is None, a path (keyed by its bytes
    too), or a config.json's content as a dict (written as json.dumps writes it, to a temporary
    config.json). The point is shared: read its values (``point[name]``). An error is raised
    again each time (nothing is kept)."""
    import json

    import vram_eval

    def at(path):
        return _AtPoint(vram_eval.load(None if path is None else str(path), list(sets)))

    if isinstance(spec, dict):
        text = json.dumps(spec)
        key = ("config.json", text, sets)
        if key not in _ONCE:
            with scratch_dir() as tmp:
                path = tmp / "config.json"
                path.write_text(text)
                _ONCE[key] = at(path)
        return _ONCE[key]
    key = (None if spec is None else (str(spec), Path(spec).read_bytes()), sets)
    if key not in _ONCE:
        _ONCE[key] = at(spec)
    return _ONCE[key]


def value(result, name):
    """A value as a Python int where exact, else the SymPy number."""
    v = result[name]
    return int(v) if v.is_Integer else v


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `vram-eval ARGS` in-process from the repository root: (status, stdout, stderr)."""
    from vram_eval.cli import main

    monkeypatch.chdir(ROOT)

    def run(*args):
        status = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return status, out, err

    return run


def session_dir(tmp_path_factory) -> Path:
    """A directory this test run's processes share: under pytest-xdist the run's base directory
    (each worker's own is a folder in it), else this process's. A new one each run."""
    import os

    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _fill_parse_cache(directory: Path) -> None:
    """Fill ``directory`` from a forked child of this process that first forgets the formula
    files this process has parsed (the library's in-memory parse results), so that it parses each
    file and writes its entry exactly as a first run does; the child only fills it and exits."""
    import os

    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            import vram_eval
            from vram_eval import library

            library._read.cache_clear()
            library._RULESETS.clear()
            os.environ["VRAM_EVAL_CACHE"] = str(directory)
            builtin = library.Library()
            builtin.shared_files()
            builtin.variant_files()
            vram_eval.load(None, [])
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "filling the parse cache failed"


@pytest.fixture(scope="session")
def parse_cache(tmp_path_factory):
    """A parse-cache directory holding an entry for every built-in formula file (variants too), for
    the tests that run the command line in a new process and are not about the cache: such a run
    then starts as a user's second run does, instead of parsing every file again (~1 s a process).

    Filled once per test run, by the first process to ask (:func:`_fill_parse_cache`: a fresh
    parse, as a first run does); the other pytest-xdist workers wait for it and share it (the
    cache's entries are written by atomic renames: concurrent runs may add to it)."""
    import fcntl

    shared = session_dir(tmp_path_factory)
    directory = shared / "parse-cache"
    with open(shared / "parse-cache.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        done = shared / "parse-cache.filled"
        if not done.exists():
            directory.mkdir(mode=0o700, exist_ok=True)
            _fill_parse_cache(directory)
            done.touch()
    assert any(directory.iterdir()), "filling the parse cache wrote no entry"
    return directory


# --- GGUF files for the tests (the gguf package's own writer) ---------------------------------
GGUF_SHAPE = {"H": 256, "F": 512, "V": 320, "A": 4, "KV": 2}


def write_gguf(path: Path, layers=2, types=None, tied=False, experts=0, arch="llama", name="tiny",
               context=4096, layer_types=None) -> Path:
    """A Llama-shaped GGUF of zeros (GGUF_SHAPE, ``layers`` blocks): every linear layer in
    ``types`` (by name part) or Q8_0, norms F32; ``layer_types`` {layer: {part: type}} overrides
    one layer's (a quantization mix); ``experts`` > 0: fused expert tensors and an F32 router."""
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    from gguf import GGMLQuantizationType as T
    from gguf.constants import GGML_QUANT_SIZES

    H, F, V, A, KV = (GGUF_SHAPE[k] for k in ("H", "F", "V", "A", "KV"))
    types, layer_types = types or {}, layer_types or {}
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(name)
    w.add_embedding_length(H)
    w.add_block_count(layers)
    w.add_head_count(A)
    w.add_head_count_kv(KV)
    w.add_feed_forward_length(F)
    w.add_context_length(context)
    w.add_token_list([f"t{i}" for i in range(V)])
    if experts:
        w.add_expert_count(experts)
        w.add_expert_used_count(2)

    def add(tensor, shape, default=T.Q8_0, layer=None):
        part = tensor.split(".")[-2]
        kind = layer_types.get(layer, {}).get(part, types.get(part, default))
        if kind == T.F32:
            w.add_tensor(tensor, np.zeros(shape, np.float32))
            return
        block, size = GGML_QUANT_SIZES[kind]
        rows = int(np.prod(shape[:-1]))
        w.add_tensor(tensor, np.zeros((rows, shape[-1] // block * size), np.uint8).reshape(*shape[:-1], -1),
                     raw_dtype=kind)

    add("token_embd.weight", (V, H))
    head = H // A
    for i in range(layers):
        add(f"blk.{i}.attn_norm.weight", (H,), T.F32, i)
        add(f"blk.{i}.attn_q.weight", (H, H), layer=i)
        add(f"blk.{i}.attn_k.weight", (head * KV, H), layer=i)
        add(f"blk.{i}.attn_v.weight", (head * KV, H), layer=i)
        add(f"blk.{i}.attn_output.weight", (H, H), layer=i)
        add(f"blk.{i}.ffn_norm.weight", (H,), T.F32, i)
        if experts:
            add(f"blk.{i}.ffn_gate_inp.weight", (experts, H), T.F32, i)
            for part, shape in (("ffn_gate_exps", (experts, F, H)), ("ffn_up_exps", (experts, F, H)),
                                ("ffn_down_exps", (experts, H, F))):
                add(f"blk.{i}.{part}.weight", shape, layer=i)
        else:
            add(f"blk.{i}.ffn_gate.weight", (F, H), layer=i)
            add(f"blk.{i}.ffn_up.weight", (F, H), layer=i)
            add(f"blk.{i}.ffn_down.weight", (H, F), layer=i)
    add("output_norm.weight", (H,), T.F32)
    if not tied:
        add("output.weight", (V, H))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
