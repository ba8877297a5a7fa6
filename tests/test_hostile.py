"""Hostile and malformed input against the command line (issue 9).

The promise: every bad input exits 2 with one located paragraph on stderr
(``PATH:LINE:COL: error: ...``, or ``--set``/``sweep`` for command-line text),
never a traceback, no hang, bounded memory, no file written but the output asked
for, no code executed. The cases are data, in tests/data/hostile/cases.toml (what
each field means is said at its top); this file only runs them.

Three ways to run a case, cheapest first:

* ``inprocess``: ``vram_eval.cli.main`` in the test process (what cannot hang or blow up);
* ``fork``: ``main`` in a forked child of the test process, with a time limit, an
  address-space limit (RLIMIT_AS) and its own process group — the isolation of a
  subprocess without paying ~0.5 s to import SymPy again (hangs, blow-ups, deep nesting);
* ``subprocess``: ``python -m engine`` from scratch, for what a fork would mask: the
  parse cache on disk (a fork inherits the in-memory one) and the terminal's encoding.

Every case runs in its own temporary directory, with HOME, XDG_CACHE_HOME and
VRAM_EVAL_CACHE pointed away from the user's.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, load_toml

CASES_FILE = ROOT / "tests" / "data" / "hostile" / "cases.toml"
DATA = load_toml(CASES_FILE)
SETTINGS = DATA["settings"]
CASES = DATA["case"]
CLASSES = set(SETTINGS["classes"])

TIMEOUT_S = SETTINGS["timeout_s"]
MEMORY_BYTES = SETTINGS["memory_limit_mib"] * 2**20
MAX_STDERR = SETTINGS["max_stderr_chars"]
FORBIDDEN = SETTINGS["forbidden_in_stderr"]
CACHE_DIR = "cache"  # under each case's directory; not part of the files-written check


class _Hang(BaseException):
    """Raised by the alarm in an in-process run (BaseException: main() must not swallow it)."""


# ---------------------------------------------------------------------------
# building a case's files


def _fill(text: str, env: dict) -> str:
    """Replace {dir}, {root}, {specs}, {marker}, {victim} (nothing else: formula and JSON text has braces)."""
    for key, value in env.items():
        text = text.replace("{" + key + "}", value)
    return text


def _content(spec, env: dict) -> str:
    """A file's content: a string, or a list of parts — strings, and [chunk, n] repeated n times
    (``{i}`` in a repeated chunk is its index, 0..n-1, and ``{j}`` is i + 1)."""
    if isinstance(spec, str):
        return _fill(spec, env)
    out = []
    for part in spec:
        if isinstance(part, str):
            out.append(_fill(part, env))
        else:
            chunk, n = part
            chunk = _fill(chunk, env)
            if "{i}" in chunk or "{j}" in chunk:
                out.append("".join(chunk.replace("{i}", str(i)).replace("{j}", str(i + 1)) for i in range(n)))
            else:
                out.append(chunk * n)
    return "".join(out)


def _prepare(case: dict, tmp: Path) -> dict:
    env = {
        "dir": str(tmp),
        "root": str(ROOT),
        "specs": str(ROOT / "specs"),
        "marker": str(tmp / "MARKER"),
        "victim": str(tmp / "victim.txt"),
    }
    for name, spec in case.get("files", {}).items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_content(spec, env).encode(case.get("encodings", {}).get(name, "utf-8")))
    for name in case.get("fifos", []):
        os.mkfifo(tmp / name)
    for name, target in case.get("symlinks", {}).items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(_fill(target, env), tmp / name)
    for name in ("home", "xdg", CACHE_DIR):
        (tmp / name).mkdir(exist_ok=True)
    return env


def _snapshot(root: Path) -> set:
    """Every path under root (not following symlinks), but the cache directory."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        if rel.parts[:1] == (CACHE_DIR,):
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            found.add(str(rel / name))
    return found


# ---------------------------------------------------------------------------
# running the CLI


def _limits():  # in the child, before exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _child_env(case: dict, tmp: Path, cache) -> dict:
    env = {
        "HOME": str(tmp / "home"),
        "XDG_CACHE_HOME": str(tmp / "xdg"),
        "VRAM_EVAL_CACHE": str(cache),
        "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(_SHARED["mpl"]),  # matplotlib's font cache: not a file the case wrote
    }
    env.update(case.get("env", {}))
    return env


def _stdin_pipe(case: dict):
    """(read end, write end) of a pipe nobody writes to, for stdin = "open-pipe"; else (None, None)."""
    return os.pipe() if case.get("stdin") == "open-pipe" else (None, None)


def _run_subprocess(case: dict, argv: list, tmp: Path, cwd: Path, cache) -> tuple:
    """python -m engine: (status, stdout, stderr, seconds); status None past the time limit."""
    return _finish_subprocess(*_start_subprocess(case, argv, tmp, cwd, cache))


def _start_subprocess(case: dict, argv: list, tmp: Path, cwd: Path, cache) -> tuple:
    """python -m engine started: (the process, the stdin pipe's write end or None, its start time)."""
    read_end, keep_open = _stdin_pipe(case)
    env = dict(os.environ)
    env.update(_child_env(case, tmp, cache))
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "vram_eval", *argv], cwd=cwd, env=env,
                            stdin=subprocess.DEVNULL if read_end is None else read_end,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_limits,
                            start_new_session=True)
    if read_end is not None:
        os.close(read_end)
    return proc, keep_open, start


def _finish_subprocess(proc, keep_open, start) -> tuple:
    """(status, stdout, stderr, seconds) of a started process, given TIMEOUT_S from its start."""
    try:
        out, err = proc.communicate(timeout=max(0.0, start + TIMEOUT_S - time.monotonic()))
        status = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the child's own session: only what this test started
        out, err = proc.communicate()
        status = None
    finally:
        if keep_open is not None:
            os.close(keep_open)
    seconds = time.monotonic() - start
    return status, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), seconds


def _address_space() -> int:
    """This process's virtual size in bytes (a forked child starts with all of it)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0  # pragma: no cover


def _run_forked(case: dict, argv: list, tmp: Path, cwd: Path, cache, fresh: bool = False) -> tuple:
    """main(argv) in a forked child: its own process group, RLIMIT_AS, a time limit. ``fresh``:
    the child first forgets the formula files this process has parsed (the library's in-memory
    parse results and rule sets), so that it reads them through the parse cache on disk (or, with
    the cache off, parses them), as a new process does."""
    from vram_eval.cli import main  # imported here, so the child starts warm

    if "--plot" in argv:
        _warm_matplotlib()

    out_path, err_path = tmp.parent / "stdout.txt", tmp.parent / "stderr.txt"
    read_end, keep_open = _stdin_pipe(case)
    limit = _address_space() + MEMORY_BYTES
    env = _child_env(case, tmp, cache)
    parent = os.getpid()
    start = time.monotonic()
    gc.freeze()  # the child's collections skip the test process's objects: its heap is not copied page by page
    try:
        pid = os.fork()
    finally:
        if os.getpid() == parent:
            gc.unfreeze()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            os.setpgid(0, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            stdin = os.open(os.devnull, os.O_RDONLY) if read_end is None else read_end
            for fd, target in ((stdin, 0), (os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1),
                               (os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)):
                os.dup2(fd, target)
            sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
            sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", write_through=True)
            sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                          errors="backslashreplace", write_through=True)
            os.environ.update(env)
            os.chdir(cwd)
            if fresh:
                from vram_eval import library

                library._read.cache_clear()
                library._RULESETS.clear()
            status = main(argv)
        except BaseException:  # anything main() let escape is a bug too
            import traceback

            try:
                traceback.print_exc()
            except BaseException:
                pass
            status = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except BaseException:
                pass
            os._exit(status if isinstance(status, int) and 0 <= status < 256 else 1)
    if read_end is not None:
        os.close(read_end)
    deadline = start + TIMEOUT_S
    status = None
    try:
        while True:
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(wait_status)
                break
            if time.monotonic() > deadline:
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.005)
    finally:
        if keep_open is not None:
            os.close(keep_open)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)  # whatever the child left running in its group
    seconds = time.monotonic() - start
    out = out_path.read_bytes().decode("utf-8", "replace") if out_path.exists() else ""
    err = err_path.read_bytes().decode("utf-8", "replace") if err_path.exists() else ""
    return status, out, err, seconds


def _warm_matplotlib() -> None:
    """Import matplotlib (Agg) and load its font list once in this process, with the
    configuration directory the children use, so that each forked child drawing a plot starts
    with it imported (as it starts with the engine imported)."""
    if "matplotlib.pyplot" in sys.modules:
        return
    previous = {k: os.environ.get(k) for k in ("MPLBACKEND", "MPLCONFIGDIR")}
    os.environ.update(MPLBACKEND="Agg", MPLCONFIGDIR=str(_SHARED["mpl"]))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401  (and its font list)
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _run_inprocess(argv: list, cwd: Path, monkeypatch, capsys) -> tuple:
    from vram_eval.cli import main

    monkeypatch.chdir(cwd)

    def alarm(signum, frame):
        raise _Hang()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(TIMEOUT_S)
    start = time.monotonic()
    try:
        status = main(argv)
    except _Hang:
        status = None
    except BaseException as exc:  # anything main() let escape is a bug too
        import traceback

        capsys.readouterr()
        return 1, "", "Traceback (escaped main()):\n" + "".join(traceback.format_exception(exc)), 0.0
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    seconds = time.monotonic() - start
    out, err = capsys.readouterr()
    return status, out, err, seconds


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "(empty stderr)"


def _describe(status, err, seconds) -> str:
    if status is None:
        return f"ran past {TIMEOUT_S} s"
    return f"exit {status} after {seconds:.1f} s; stderr: {_first_line(err)[:300]}"


# ---------------------------------------------------------------------------
# the cache attacks: fill the cache, then replace each entry with a payload or a symlink

_FILLED: dict = {}  # (argv, files) -> (the answer without a cache, a cache directory it filled)


def _filled_cache(case: dict, argv: list, tmp: Path, cwd: Path, cache: Path) -> tuple:
    """The answer with VRAM_EVAL_CACHE=off, and ``cache`` filled (shared between the cases that
    ask the same question, so each attack costs one run). The answer is a forked run that first
    forgets what this process has parsed (``fresh``): it parses every file, as a new process
    does. The filled cache is the session's (every built-in file's entry, written by a fresh
    parse: conftest.py's parse_cache) with the entries of the case's own files added by a forked
    run of the case; the attacked run itself is a new process (run = "subprocess")."""
    key = (tuple(argv), repr(sorted(case.get("files", {}).items())))
    if key not in _FILLED:
        filled = _SHARED["base"] / f"filled-{len(_FILLED)}"
        shutil.copytree(_SHARED["builtin-entries"], filled, symlinks=True)
        baseline, first = [_run_forked(case, argv, tmp, cwd, cache, fresh=fresh)
                           for cache, fresh in (("off", True), (filled, False))]
        assert baseline[0] == 0, "without the cache: " + _describe(baseline[0], baseline[2], baseline[3])
        assert first[0] == 0, "filling the cache: " + _describe(first[0], first[2], first[3])
        assert first[1] == baseline[1], "the answer with the filled cache differs from the answer without a cache"
        _FILLED[key] = (baseline, filled)
    baseline, filled = _FILLED[key]
    shutil.rmtree(cache)
    shutil.copytree(filled, cache, symlinks=True)
    return baseline


# ---------------------------------------------------------------------------
# tampering


def _poison_cache(case: dict, cache: Path, tmp: Path, env: dict) -> None:
    mode = case["cache_attack"]
    entries = sorted(p for p in cache.rglob("*") if p.is_file() or p.is_symlink())
    assert entries, "the warm-up run left nothing in the cache directory to tamper with"
    if mode == "shuffle":  # well-formed entries, each under another entry's name
        contents = [p.read_bytes() for p in entries]
        assert len(contents) > 1, "one cache entry: nothing to shuffle"
        for p, data in zip(entries, contents[1:] + contents[:1]):
            p.write_bytes(data)
        return
    payloads = {suffix: _fill(text, env) for suffix, text in SETTINGS["cache_payloads"].items()}
    outside = {}
    for suffix, text in payloads.items():  # payload files outside the cache, for symlinks
        target = tmp / f"payload{suffix}"
        target.write_text(text, encoding="latin-1")
        outside[suffix] = target
    (tmp / "victim.txt").write_text("precious\n")
    stems = {(p.parent, p.name.split(".")[0]) for p in entries}
    for p in entries:
        p.unlink()
    for parent, stem in sorted(stems):
        for suffix, text in payloads.items():
            path = parent / f"{stem}{suffix}"
            if mode == "payload":
                path.write_text(text, encoding="latin-1")
            elif mode == "symlink-payload":
                os.symlink(outside[suffix], path)
            elif mode == "symlink-victim":
                os.symlink(tmp / "victim.txt", path)
            else:  # pragma: no cover - a typo in cases.toml
                raise AssertionError(f"unknown cache_attack {mode!r}")


# ---------------------------------------------------------------------------
# the table of cases


def test_the_case_table_is_well_formed():
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    for c in CASES:
        assert c["class"] in CLASSES, c["id"]
        assert c["source"] in ("issue 9", "added"), c["id"]
        run = c.get("run", "inprocess")
        assert run in ("inprocess", "fork", "subprocess"), c["id"]
        if "env" in c or "cache_attack" in c:
            assert run == "subprocess", f"{c['id']}: needs a fresh interpreter"
        if c["class"] in ("hang", "blowup") or "stdin" in c or "fifos" in c:
            assert run in ("fork", "subprocess"), f"{c['id']}: must run isolated"
    assert {c["class"] for c in CASES} == CLASSES, "every class has a case"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_hostile_input(case, tmp_path, monkeypatch, capsys, shared_dirs, request):
    tmp = tmp_path / "work"
    tmp.mkdir()
    env = _prepare(case, tmp)
    argv = [_content(a, env) for a in case["args"]]
    cwd = ROOT if case.get("cwd") == "root" else tmp
    run = case.get("run", "inprocess")
    root_before = set(os.listdir(ROOT))

    if run == "subprocess":
        cache = tmp / CACHE_DIR if "cache_attack" in case else _SHARED["cache"]
        _warm_shared_cache(request)
        if "cache_attack" in case:
            baseline = _filled_cache(case, argv, tmp, cwd, cache)
            _poison_cache(case, cache, tmp, env)
        before = _snapshot(tmp)
        status, out, err, seconds = _run_subprocess(case, argv, tmp, cwd, cache)
    elif run == "fork":
        before = _snapshot(tmp)
        status, out, err, seconds = _run_forked(case, argv, tmp, cwd, _SHARED["cache"])
    else:
        monkeypatch.setenv("HOME", str(tmp / "home"))
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp / "xdg"))
        monkeypatch.setenv("VRAM_EVAL_CACHE", str(_SHARED["cache"]))
        before = _snapshot(tmp)
        status, out, err, seconds = _run_inprocess(argv, cwd, monkeypatch, capsys)

    what = _describe(status, err, seconds)
    # no code ran
    assert not (tmp / "MARKER").exists(), f"code was executed (MARKER written); {what}"
    assert status is not None, what
    # never a traceback, always a bounded paragraph
    for word in FORBIDDEN:
        assert word not in err, f"{word!r} in stderr; {what}\n{err[-3000:]}"
    assert len(err) <= MAX_STDERR, f"stderr is {len(err):,} characters; {what}"
    expected = case["expect_status"]
    allowed = expected if isinstance(expected, list) else [expected]
    assert status in allowed, f"expected exit {expected}; {what}"
    if status == 2:
        assert err.strip(), "exit 2 with nothing on stderr"
        assert re.search(r": (error|warning): ", _first_line(err)), f"stderr does not start located: {what}"
        assert "\n\n" not in err.strip(), f"more than one paragraph on stderr:\n{err[:2000]}"
        if "expect_location" in case:
            assert err.startswith(_fill(case["expect_location"], env)), \
                f"expected the error at {case['expect_location']!r}; {what}"
    for fragment in case.get("expect_in_stderr", []):
        assert _fill(fragment, env) in err, f"{fragment!r} not in stderr; {what}\n{err[:2000]}"
    for fragment in case.get("expect_in_stdout", []) if status == 0 else []:  # what the answer must say
        assert _fill(fragment, env) in out, f"{fragment!r} not in stdout; {what}\nstdout: {out[:2000]}"
    # no file written but the ones asked for
    after = _snapshot(tmp)
    allowed_new = set(case.get("writes", []))
    assert after - before <= allowed_new, f"files written: {sorted(after - before - allowed_new)}; {what}"
    for name in allowed_new:
        assert (tmp / name).is_file() and (tmp / name).stat().st_size > 0, f"{name} was not written; {what}"
    assert set(os.listdir(ROOT)) == root_before, f"files written in the repository: {set(os.listdir(ROOT)) ^ root_before}"
    if "cache_attack" in case:
        assert out == baseline[1], "the answer with the tampered cache differs from the answer without a cache"
        if (tmp / "victim.txt").exists() or case["cache_attack"] == "symlink-victim":
            assert (tmp / "victim.txt").read_text() == "precious\n", "a symlink in the cache overwrote its target"
        for suffix in SETTINGS["cache_payloads"] if case["cache_attack"] != "shuffle" else ():
            target = tmp / f"payload{suffix}"
            assert target.read_text(encoding="latin-1") == _fill(SETTINGS["cache_payloads"][suffix], env), \
                "a symlink in the cache overwrote its target"


_SHARED: dict = {}


def _warm_shared_cache(request) -> None:
    """The shared parse cache holding every built-in file's entry (conftest.py's parse_cache,
    filled once per run by a fresh parse), copied: the subprocess cases that do not attack the
    cache then start as a user's second run does, and the attacks tamper with entries a first run
    wrote."""
    if _SHARED.get("warm"):
        return
    entries = request.getfixturevalue("parse_cache")
    _SHARED["builtin-entries"] = entries
    shutil.copytree(entries, _SHARED["cache"], symlinks=True, dirs_exist_ok=True)
    assert any(_SHARED["cache"].iterdir()), "the shared cache holds no entry"
    _SHARED["warm"] = True


@pytest.fixture(scope="session")
def shared_dirs(tmp_path_factory):
    """One parse cache for the cases that do not attack it (a cold parse costs ~0.4 s a run), and
    matplotlib's config directory, both outside the cases' directories."""
    base = tmp_path_factory.mktemp("hostile-shared")
    _SHARED.update(base=base, cache=base / "cache", mpl=base / "mpl")
    return _SHARED


# ---------------------------------------------------------------------------
# properties: random --set and sweep ranges, in-process


@pytest.fixture(scope="module")
def quiet_env(tmp_path_factory):
    home = tmp_path_factory.mktemp("hostile-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("XDG_CACHE_HOME", str(home / "xdg"))
        mp.setenv("VRAM_EVAL_CACHE", str(home / "cache"))
        mp.chdir(home)
        yield home


def _main_bounded(argv):
    """(status, stderr) of main(argv), stdout discarded; a time limit per call."""
    from vram_eval.cli import main

    out, err = io.StringIO(), io.StringIO()

    def alarm(signum, frame):
        raise _Hang()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(TIMEOUT_S)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(argv)
    except _Hang:
        status = None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return status, err.getvalue()


P = SETTINGS["property"]
SPEC = str(ROOT / P["spec"])
_names = st.one_of(st.sampled_from(P["names"]), st.text(alphabet=P["name_alphabet"], min_size=0, max_size=8))
_atoms = st.one_of(
    st.sampled_from(P["values"]),
    st.integers(-10**6, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=8),
)
_values = st.one_of(_atoms, st.tuples(_atoms, st.sampled_from(P["suffixes"])).map("".join))
_bounds = st.one_of(st.sampled_from(P["bounds"]), st.integers(-100, 5000).map(str),
                    st.floats(-10.0, 5000.0).map(lambda x: f"{x:g}"))


def _assert_clean(argv, status, err):
    assert status is not None, f"{argv}: ran past {TIMEOUT_S} s"
    assert status in (0, 2), f"{argv}: exit {status}: {_first_line(err)}"
    for word in FORBIDDEN:
        assert word not in err, f"{argv}: {word!r} in stderr:\n{err[-2000:]}"
    if status == 2:
        assert re.search(r": (error|warning): ", _first_line(err)), f"{argv}: not located: {err[:500]}"


@settings(max_examples=P["max_examples"], deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=_names, value=_values)
def test_random_set_values_exit_0_or_2(quiet_env, name, value):
    argv = [SPEC, "--set", f"{name}={value}", "--format", "json"]
    _assert_clean(argv, *_main_bounded(argv))


@settings(max_examples=P["max_examples"], deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=st.sampled_from(P["sweep_names"]), start=_bounds, stop=_bounds,
       step=st.one_of(st.none(), _bounds, st.sampled_from(P["factors"])))
def test_random_sweep_ranges_exit_0_or_2(quiet_env, name, start, stop, step):
    text = f"{name}={start}:{stop}" + ("" if step is None else f":{step}")
    argv = ["sweep", SPEC, text]
    _assert_clean(argv, *_main_bounded(argv))
