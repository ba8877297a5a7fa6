"""``vram-eval web``: one local page and a small JSON API over the library the CLI uses.

The standard library's :class:`http.server.ThreadingHTTPServer` serves the page (static files
of ``web_static/``, in the package) and six endpoints; each takes the settings the CLI takes —
a built-in spec's name or an uploaded spec text, ``--set`` assignments, a catalog GPU — and
answers with what the CLI prints for them (``--format json`` and the table text), from the same
functions: :func:`engine.problem.load`, :func:`engine.forward.evaluate`,
:func:`engine.report.render`, :func:`engine.inverse.solve`, :func:`engine.explanation.explain`,
:func:`engine.grid.sweep`. No number is worked out here.

    GET  /api/specs    the built-in specs, the regimes (jobs), the form's inputs and their values
    GET  /api/gpus     the GPU catalog (``vram-eval gpus --format json``)
    POST /api/eval     {settings} → the report's JSON and table, and the jobs' rows, peaks, phases
    POST /api/explain  {settings, name} → ``vram-eval explain NAME`` at these settings
    POST /api/solve    {settings, for, budgets, gpus, target, total} → ``vram-eval solve``
    POST /api/sweep    {settings, range, targets, total, gpus} → ``vram-eval sweep`` and the
                       GPUs' lines and crossings (found by solve, as ``--plot`` marks them)

Settings: ``{"spec": NAME, "config": {"text": TEXT, "format": "json"|"toml"|"yaml"}, "model":
{"files": [{"name", "text"} | {"name", "head": BASE64, "size": BYTES}]} (a model folder's
config.json, index and safetensors headers, or a GGUF's first bytes: MODEL_FILE), "train_config":
{"text": TEXT, "format": "json"|"yaml"} (a DeepSpeed, TrainingArguments/TRL, axolotl or
LLaMA-Factory config, applied before "set"; the files it names must be inline), "set":
["NAME=VALUE", ...], "regime": NAME, "gpu": ID, "units": "GiB"}``. A spec is a built-in name
only: nothing a client sends is used as a path. An uploaded text is written into a fresh
temporary directory of its own request, under a fixed name (config.json, spec.toml or
spec.yaml), and read by the same safe readers as any spec; the directory's path is taken out of
every answer.

A bad input (an :class:`~engine.errors.EngineError`) answers 400 with ``{"error": {"kind",
"family", "message", "location"}}``: ``message`` is the located paragraph the CLI prints;
a malformed request answers 400 with kind "request"; a body over :data:`MAX_BODY` 413; a bug
500 with one plain line (its traceback goes to the server's stderr, never to the page).

The library keeps process-wide caches (the composed rule sets and listings of
engine/library.py, memoised spec readings, rule sets' lazily filled expansions) that were
written for one thread; every question is answered under one lock, so concurrent requests are
answered one at a time in the library (each in milliseconds) while their I/O overlaps.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import sys
import tempfile
import threading
import traceback
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from .errors import EngineError, InvalidValue, LimitExceeded, Location, RangeError, SpecError, UnknownName
from .errors import closest, did_you_mean

__all__ = ["MAX_BODY", "MAX_SWEEP_POINTS", "static_dir", "make_server", "serve", "answer"]

MAX_BODY = 32 * 2**20  # a request body larger than this answers 413 (a model's headers, base64, fit)
# A model uploaded as its headers: the files a folder's reader opens, or one GGUF; each weight
# file comes as its first bytes (a safetensors header; a GGUF's first MAX_GGUF_HEAD bytes) and its
# size, and is written as a sparse file of that size (the readers check the offsets against it).
MODEL_FILE = re.compile(r"config\.json|model\.safetensors\.index\.json|[A-Za-z0-9][A-Za-z0-9._-]{0,199}\.(safetensors|gguf)")
MAX_MODEL_FILES = 512
MAX_WEIGHT_FILE = 2**44  # 16 TiB: a weight file declared larger is refused
MAX_GGUF_HEAD = 16 * 2**20  # the page sends this much of a GGUF: its metadata and tensor table
MAX_SWEEP_POINTS = 4096  # the page draws a sweep; the CLI takes up to 10^7 points
MAX_SETS = 200  # --set assignments in one request
MAX_TEXT = 4096  # characters of one --set, name, range or budget
UPLOAD_NAMES = {"json": "config.json", "toml": "spec.toml", "yaml": "spec.yaml"}
TRAIN_CONFIG_NAMES = {"json": "train_config.json", "yaml": "train_config.yaml"}
UNITS = ("GiB", "GB", "MiB", "MB", "TiB", "TB")
# The inputs the page's form offers (each is also a --set); the rest go in its free --set box.
FORM_INPUTS = ("b", "s", "weight_dtype", "act_dtype", "kv_dtype", "optimizer", "lora_rank", "lora_targets",
               "qlora_dtype", "double_quant", "dp", "tp", "pp", "zero_stage", "distributed", "recompute",
               "flash_attention", "offload_optimizer", "engine", "max_model_len")
SOLVE_FOR = ("s", "b", "dp", "tp", "pp", "lora_rank", "max_model_len", "serve_requests", "n_gpu_layers")

_LOCK = threading.Lock()  # one question at a time in the library (see the module's doc)
_STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; " \
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


def static_dir() -> Path:
    """The page's files: ``web_static/`` inside the package, in a checkout and in a wheel alike."""
    return Path(__file__).resolve().parent / "web_static"


class BadRequest(Exception):
    """A request that is not the API's shape (not JSON, a field of the wrong type)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# --- settings --------------------------------------------------------------------------------


def builtin_specs() -> Dict[str, Path]:
    """The built-in specs by name (``llama13b`` → specs/llama13b.toml)."""
    from .resources import specs_dir

    return {p.stem: p for p in sorted(specs_dir().glob("*.toml")) if p.is_file()}


def _text(body: dict, key: str, default: Optional[str] = None) -> Optional[str]:
    value = body.get(key, default)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise BadRequest(f"'{key}' must be a string")
    if len(value) > MAX_TEXT:
        raise BadRequest(f"'{key}' is longer than {MAX_TEXT} characters")
    return value


def _texts(body: dict, key: str) -> List[str]:
    value = body.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"'{key}' must be a list of strings")
    if len(value) > MAX_SETS or any(len(v) > MAX_TEXT for v in value):
        raise BadRequest(f"'{key}': at most {MAX_SETS} strings of at most {MAX_TEXT} characters")
    return [v for v in value if v.strip()]


def _upload(body: dict, key: str, names: Dict[str, str]) -> Optional[Tuple[str, str]]:
    """(text, the fixed file name it is written under) of an uploaded file, or None."""
    upload = body.get(key)
    if upload is None:
        return None
    formats = list(names)
    if not isinstance(upload, dict) or not isinstance(upload.get("text"), str):
        raise BadRequest(f"'{key}' must be {{\"text\": TEXT, \"format\": " + " | ".join(f'"{f}"' for f in formats) + "}")
    fmt = upload.get("format") or "json"
    if fmt not in names:
        raise BadRequest(f"'{key}.format' must be " + ", ".join(formats[:-1]) + " or " + formats[-1])
    return upload["text"], names[fmt]


def _model_files(body: dict) -> Optional[List[Tuple[str, object, int]]]:
    """A model sent as its files' headers: (name, text or the first bytes, size) each, checked."""
    model = body.get("model")
    if model is None:
        return None
    files = model.get("files") if isinstance(model, dict) else None
    if not isinstance(files, list) or not files or len(files) > MAX_MODEL_FILES:
        raise BadRequest(f"'model' must be {{\"files\": [...]}} with 1 to {MAX_MODEL_FILES} files")
    out, names = [], set()
    for f in files:
        name = f.get("name") if isinstance(f, dict) else None
        if not isinstance(name, str) or not MODEL_FILE.fullmatch(name) or name in names:
            raise BadRequest("a model's file is {\"name\", \"text\"} (config.json, model.safetensors.index.json) or "
                             "{\"name\", \"head\", \"size\"} (*.safetensors, *.gguf): a plain file name, once each")
        names.add(name)
        if name.endswith((".safetensors", ".gguf")):
            size = f.get("size")
            try:
                head = base64.b64decode(f.get("head", ""), validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise BadRequest(f"'{name}': 'head' must be base64") from None
            if not isinstance(size, int) or isinstance(size, bool) or not len(head) <= size <= MAX_WEIGHT_FILE:
                raise BadRequest(f"'{name}': 'size' must be the file's size in bytes, at least its head's, "
                                 f"at most {MAX_WEIGHT_FILE:,}")
            out.append((name, head, size))
        elif isinstance(f.get("text"), str):
            out.append((name, f["text"], 0))
        else:
            raise BadRequest(f"'{name}': 'text' must be the file's text")
    ggufs = [n for n, _, _ in out if n.endswith(".gguf")]
    if ggufs and len(out) > 1:
        raise BadRequest("a GGUF model is one file: send it alone")
    return out


def _write_model(files, folder: Path) -> str:
    """The model's files written into ``folder`` (weight files sparse, of their size): the path
    the spec readers load (the folder, or the GGUF)."""
    folder.mkdir()
    for name, content, size in files:
        path = folder / name
        if isinstance(content, bytes):
            with open(path, "wb") as out:
                out.write(content)
                out.truncate(size)
        else:
            path.write_text(content, encoding="utf-8", errors="surrogatepass")
    gguf = [name for name, _, _ in files if name.endswith(".gguf")]
    return str(folder / gguf[0]) if gguf else str(folder)


class _Settings:
    """A request's settings, read and checked: what the CLI's SPEC, --set and --gpu say."""

    def __init__(self, body: dict) -> None:
        self.spec = _text(body, "spec")
        self.config = _upload(body, "config", UPLOAD_NAMES)
        self.model = _model_files(body)
        if self.model is not None and self.config is not None:
            raise BadRequest("give one model: an uploaded config.json or a model's files, not both")
        self.train_config = _upload(body, "train_config", TRAIN_CONFIG_NAMES)
        if self.train_config is not None and self.config is None and self.model is None and self.spec is None:
            raise BadRequest("a training config needs a model beside it: a built-in spec or an uploaded config.json "
                             "(the page does not open the base model a training config names)")
        self.sets = _texts(body, "set")
        regime = _text(body, "regime")
        if regime is not None:
            self.sets.append(f"regime={regime}")
        self.gpu = _text(body, "gpu")
        self.units = _text(body, "units", "GiB")
        if self.units not in UNITS:
            raise BadRequest(f"'units' must be one of {', '.join(UNITS)}")

    def spec_path(self, folder: str) -> Optional[str]:
        """The spec to load: the uploaded text written into ``folder``, or a built-in spec."""
        if self.config is not None:
            text, name = self.config
            path = Path(folder) / name
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
            return str(path)
        if self.model is not None:
            return _write_model(self.model, Path(folder) / "model")
        if self.spec is None:
            return None
        specs = builtin_specs()
        name = self.spec[:-5] if self.spec.endswith(".toml") else self.spec
        name = name[6:] if name.startswith("specs/") else name
        if name not in specs:
            guess = closest(name, list(specs))
            raise UnknownName[SpecError](f"no built-in spec is called '{self.spec[:60]}'", Location("spec"),
                                         hint=(did_you_mean(guess) or "") + " known: " + ", ".join(specs),
                                         name=self.spec, known=tuple(specs), suggestion=guess)
        return str(specs[name])


def _load(settings: _Settings, folder: str):
    from .problem import load

    train = []
    if settings.train_config is not None:
        text, name = settings.train_config
        path = Path(folder) / name
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        train = [str(path)]
    return load(settings.spec_path(folder), settings.sets, (), gpu=settings.gpu, train_configs=train, confine=folder)


# --- the questions -------------------------------------------------------------------------------


def _eval(body: dict, settings: _Settings, problem) -> dict:
    from .forward import evaluate
    from .regimes import ENGINE, ROWS, phase_reached, shown
    from .report import render

    result = evaluate(problem.ruleset, problem.bindings, spec=problem.spec_path, title=problem.title)
    extra = dict(gpu=problem.gpu, checkpoint=problem.spec.checkpoint if problem.spec else None,
                 train_configs=problem.train_configs)
    values = result.plain
    jobs = []
    engine = values.get(ENGINE)
    for job in shown(engine if isinstance(engine, str) else None):  # the report's columns at this engine
        reached = phase_reached(job.peak, {out: values.get(out) for _, out in job.phases})
        jobs.append({"regime": job.name, "heading": job.heading, "total": job.total, "headroom": job.headroom,
                     "peak": job.peak, "peak_headroom": job.peak_headroom,
                     "rows": [[row, job.rows[row]] for row in ROWS if row in job.rows],
                     "phases": [list(p) for p in job.phases],
                     "reached": list(reached) if reached else None})
    return {"report": json.loads(render(result, "json", **extra)),
            "text": render(result, "table", settings.units, **extra),
            "jobs": jobs, "problem_warnings": list(problem.warnings)}


def _explain(body: dict, settings: _Settings, problem) -> dict:
    from .explanation import explain
    from .report import render_explanation

    name = _text(body, "name")
    if name is None:
        raise BadRequest("'name' is required: the input or output to explain")
    ex = explain(problem.ruleset, name, problem.bindings)
    return {"explanation": asdict(ex), "text": render_explanation(ex, "table")}


def _solve(body: dict, settings: _Settings, problem) -> dict:
    from .focus import chosen_target
    from .inverse import budgets, solve
    from .report import render_solutions

    name = _text(body, "for")
    if name is None:
        raise BadRequest("'for' is required: the input to solve for (s, b, dp, ...)")
    target = chosen_target(problem, _text(body, "target"), bool(body.get("total")))
    solutions = [solve(problem, name, value, target, budget_text=label)
                 for label, value in budgets(problem, _texts(body, "budgets"), _texts(body, "gpus"))]
    data = json.loads(render_solutions(solutions, "json"))
    return {"solutions": data if isinstance(data, list) else [data], "text": render_solutions(solutions, "table")}


def _sweep(body: dict, settings: _Settings, problem) -> dict:
    from .focus import chosen_target
    from .grid import parse_range, sweep
    from .hardware import GPU_MEMORY, find_gpu
    from .report import render_sweep

    text = _text(body, "range")
    if text is None:
        raise BadRequest("'range' is required: NAME=START:STOP[:STEP]")
    rng = parse_range(text)
    if rng.count() > MAX_SWEEP_POINTS:
        raise LimitExceeded[RangeError](
            f"the page draws at most {MAX_SWEEP_POINTS:,} points; this range has {rng.count():,}",
            rng.location("range"), hint="take a larger step, or `vram-eval sweep` for a table of up to 10^7 points",
            text=text, part="range", what="points", limit=MAX_SWEEP_POINTS, amount=rng.count())
    targets = _texts(body, "targets") or [chosen_target(problem, None, bool(body.get("total")))]
    result = sweep(problem, rng, targets)
    gpus = [find_gpu(g) for g in _texts(body, "gpus")] or ([problem.gpu] if problem.gpu else [])
    lines = [{"label": g.name, "id": g.id, "bytes": g.usable_bytes} for g in gpus]
    if not lines and GPU_MEMORY in problem.bindings:
        lines.append({"label": GPU_MEMORY, "id": None, "bytes": int(problem.bindings[GPU_MEMORY].value)})
    return {"sweep": json.loads(render_sweep(result, "json")), "geometric": rng.factor is not None,
            "unit": result.unit, "doc": _doc(problem, result.name), "lines": lines, "crossings": _crossings(problem, result, lines),
            "title": problem.title or (problem.spec_path or "")}


def _doc(problem, name: str) -> str:
    rule = problem.ruleset.rules.get(name)
    return rule.doc if rule is not None and rule.doc else ""


def _crossings(problem, result, lines) -> List[dict]:
    """Where each memory curve of the sweep meets each GPU's line: the largest (or smallest)
    value that fits, by solve, where it lies within the range (what ``sweep --plot`` marks)."""
    from .inverse import solve

    low, high = float(result.xs[0]), float(result.xs[-1])
    found = []
    for target in (t for t in result.columns if result.units.get(t) == "bytes"):
        for line in lines:
            try:
                sol = solve(problem, result.name, line["bytes"], target, remedies=False)
            except EngineError:
                continue
            if sol.value is not None and low <= float(sol.value) <= high:
                found.append({"target": target, "label": line["label"], "value": _number(sol.value),
                              "memory": _number(sol.target_at_value), "direction": sol.direction})
    return found


def _number(value):
    from .values import to_python

    value = to_python(value)
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _specs(body: dict) -> dict:
    return _specs_listing()


@functools.lru_cache(maxsize=1)
def _specs_listing() -> dict:
    """The built-in specs' names and titles and the form's inputs: read once per server."""
    from .explanation import explain
    from .problem import load
    from .regimes import JOBS
    from .spec import load_spec

    problem = load(None)
    fields = []
    for name in FORM_INPUTS:
        ex = explain(problem.ruleset, name)
        fields.append({"name": ex.name, "unit": ex.unit, "doc": ex.doc, "allowed": ex.allowed})
    return {"specs": [{"name": name, "title": load_spec(str(path)).name} for name, path in builtin_specs().items()],
            "regimes": [{"name": j.name, "heading": j.heading} for j in JOBS.values()],
            "fields": fields, "solve_for": list(SOLVE_FOR), "units": list(UNITS), "gguf_head": MAX_GGUF_HEAD}


def _gpus(body: dict) -> dict:
    from .hardware import gpu_catalog
    from .report import render_gpus

    unique = list({id(g): g for g in gpu_catalog().values()}.values())
    listed = json.loads(render_gpus(unique, "json"))
    aliases = {g.id: list(g.aliases) for g in unique}
    return {"gpus": [dict(entry, aliases=aliases.get(entry["id"], [])) for entry in listed]}


_QUESTIONS = {"/api/eval": _eval, "/api/explain": _explain, "/api/solve": _solve, "/api/sweep": _sweep}
_LISTINGS = {"/api/specs": _specs, "/api/gpus": _gpus}


def _error_json(exc: EngineError) -> dict:
    loc = exc.location
    family = next((k.__name__ for k in type(exc).__mro__ if k.__dict__.get("_family")), "EngineError")
    kind = type(exc).__dict__.get("_made_of", (type(exc),))[0].__name__
    return {"error": {"kind": kind, "family": family, "message": exc.render(),
                      "location": None if loc is None else {"path": loc.path, "line": loc.line, "column": loc.column}}}


def answer(path: str, body: Optional[dict]) -> Tuple[int, str]:
    """(status, JSON text) for an API request: what the server sends (used by the tests too)."""
    if path in _LISTINGS:
        with _LOCK:
            return 200, json.dumps(_LISTINGS[path](body or {}))
    question = _QUESTIONS.get(path)
    if question is None:
        return 404, json.dumps({"error": {"kind": "request", "family": None, "message": f"no such endpoint: {path}\n",
                                          "location": None}})
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    settings = _Settings(body)
    with tempfile.TemporaryDirectory(prefix="vram-eval-web-") as folder:
        try:
            with _LOCK:
                problem = _load(settings, folder)
                status, data = 200, question(body, settings, problem)
        except EngineError as exc:
            status, data = 400, _error_json(exc)
        text = json.dumps(data)
        # the temporary folder's path is nobody's business: an uploaded file is "config.json"
        for prefix in (str(Path(folder).resolve()) + "/", folder + "/"):
            text = text.replace(json.dumps(prefix)[1:-1], "")
        from .resources import specs_dir

        text = text.replace(json.dumps(str(specs_dir()) + "/")[1:-1], "specs/")
    return status, text


# --- the server ----------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    server_version = "vram-eval"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _plain(self, status: int, line: str) -> None:
        self.close_connection = True
        self._send(status, (line + "\n").encode(), "text/plain; charset=utf-8")

    def _host_ok(self) -> bool:
        """A page of another site may make the browser send requests here (DNS rebinding): only
        a Host that names this server is answered."""
        allowed = getattr(self.server, "allowed_hosts", None)
        if not allowed:
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name.strip("[]") in allowed

    def do_HEAD(self) -> None:
        self._handle(self._get)

    def do_GET(self) -> None:
        self._handle(self._get)

    def do_POST(self) -> None:
        self._handle(self._post)

    def _handle(self, method) -> None:
        try:
            if not self._host_ok():
                return self._plain(403, "vram-eval: this server answers only for its own host name")
            method(urlsplit(self.path).path)
        except Exception:  # a bug: one plain line for the client, the traceback for the server's log
            self._internal()

    def _get(self, path: str) -> None:
        if path in _LISTINGS:
            status, text = answer(path, {})
            return self._send(status, text.encode(), "application/json; charset=utf-8")
        files = {"/": "index.html", "/index.html": "index.html", "/app.js": "app.js", "/app.css": "app.css"}
        name = files.get(path)
        if name is None:
            return self._plain(404, f"vram-eval: not found: {path[:200]}")
        data = (static_dir() / name).read_bytes()
        return self._send(200, data, _STATIC_TYPES[Path(name).suffix])

    def _post(self, path: str) -> None:
        if self.headers.get("Transfer-Encoding"):
            return self._plain(411, "vram-eval: send the body with a Content-Length")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return self._plain(411, "vram-eval: a request needs a Content-Length")
        if length < 0:
            return self._plain(400, "vram-eval: a negative Content-Length")
        if length > MAX_BODY:
            return self._plain(413, f"vram-eval: the request body is over {MAX_BODY // 2**20} MiB")
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return self._plain(415, "vram-eval: the API takes application/json")
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw.decode("utf-8"))
            status, text = answer(path, body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            status, text = 400, json.dumps(_request_error("the request body is not JSON (UTF-8)"))
        except RecursionError:
            status, text = 400, json.dumps(_request_error("the request body is nested too deeply"))
        except BadRequest as exc:
            status, text = exc.status, json.dumps(_request_error(exc.message))
        return self._send(status, text.encode(), "application/json; charset=utf-8")

    def _internal(self) -> None:
        sys.stderr.write("vram-eval web: internal error (this is a bug in vram-eval, please report it):\n")
        traceback.print_exc()
        try:
            self._plain(500, "vram-eval: internal error (a bug in vram-eval; the server's log has the details)")
        except Exception:  # pragma: no cover - the connection is gone
            pass


def _request_error(message: str) -> dict:
    return {"error": {"kind": "request", "family": None, "message": f"request: error: {message}\n", "location": None}}


class Server(ThreadingHTTPServer):
    daemon_threads = True  # Ctrl-C does not wait for a slow client
    request_queue_size = 128  # connections waiting to be accepted (the default, 5, drops bursts)
    allow_reuse_address = True
    verbose = False
    allowed_hosts: Tuple[str, ...] = ()


def make_server(host: str = "127.0.0.1", port: int = 8765) -> Server:
    """A server bound to ``host:port`` (port 0: any free port), not yet serving; a port that
    cannot be had is a located error of --port / --host."""
    try:
        server = Server((host, port), Handler)
    except OSError as exc:
        raise InvalidValue[SpecError](f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                                      Location("--port" if exc.errno == 98 else "--host"),
                                      hint="choose another --port (0 picks a free one)" if exc.errno == 98 else None,
                                      name="port", value=port, expected="a free port on this machine") from None
    if host in ("127.0.0.1", "localhost", "::1"):
        server.allowed_hosts = ("127.0.0.1", "localhost", "::1")
    elif host not in ("", "0.0.0.0", "::"):
        server.allowed_hosts = (host.lower(), "127.0.0.1", "localhost")
    return server


def serve(host: str = "127.0.0.1", port: int = 8765, open_browser: bool = False, verbose: bool = False) -> int:
    """Serve until Ctrl-C; 0 when stopped."""
    server = make_server(host, port)
    server.verbose = verbose
    shown = host if ":" not in host else f"[{host}]"
    url = f"http://{shown}:{server.server_address[1]}/"
    sys.stdout.write(f"vram-eval web: serving {url}  (Ctrl-C stops)\n")
    sys.stdout.flush()
    if open_browser:
        import webbrowser

        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.stdout.write("vram-eval web: stopped\n")
    finally:
        server.server_close()
    return 0
