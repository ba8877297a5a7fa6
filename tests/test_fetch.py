"""`--fetch`: a Hub id the local cache does not hold, read from the Hub — its config.json and its
safetensors headers by HTTP range reads, never the weights (engine/fetch.py). The tests run
offline: a local server answers as the Hub's /ORG/NAME/resolve/REVISION/FILE does (a redirect to
a file server, 206 Partial Content with Content-Range), and counts what it sends."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from test_checkpoint import model_folder


class _Hub:
    """A Hub of one model folder: FILES at /org/name/resolve/main/FILE (a redirect to /files/FILE),
    a gated id, and a tally of the bytes sent and the Authorization headers seen per host path."""

    def __init__(self, folder: Path, gated=False, ignore_ranges=False):
        self.folder, self.gated, self.ignore_ranges = folder, gated, ignore_ranges
        self.sent, self.auth = 0, []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                hub.auth.append((self.path.split("/")[1], self.headers.get("Authorization")))
                match = re.fullmatch(r"/org/model/resolve/main/([^/]+)", self.path)
                if match:
                    if hub.gated:
                        return self._reply(401, b"gated")
                    self.send_response(302)  # to the file server: another host name for the same port
                    self.send_header("Location", f"http://localhost:{hub.port}/files/{match.group(1)}")
                    self.end_headers()
                    return
                match = re.fullmatch(r"/files/([^/]+)", self.path)
                path = hub.folder / match.group(1) if match else None
                if path is None or not path.is_file():
                    return self._reply(404, b"not found")
                size = path.stat().st_size
                wanted = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
                if wanted and not hub.ignore_ranges:
                    start, end = int(wanted.group(1)), min(int(wanted.group(2)), size - 1)
                    with open(path, "rb") as fh:
                        fh.seek(start)
                        body = fh.read(end - start + 1)
                    return self._reply(206, body, {"Content-Range": f"bytes {start}-{end}/{size}"})
                with open(path, "rb") as fh:
                    return self._reply(200, fh.read(min(size, 64 * 2**20)))

            def _reply(self, code, body, headers=None):
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client read what it wanted
                    pass
                hub.sent += len(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    made = []

    def make(shards=2, **kw):
        folder = model_folder(tmp_path / "repo", "llama-2-7b.json", shards=shards)
        h = _Hub(folder, **kw)
        made.append(h)
        monkeypatch.setenv("HF_ENDPOINT", h.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
        return h, folder

    yield make
    for h in made:
        h.close()


def _figures(out):
    data = json.loads(out)
    return {k: data[k] for k in ("inputs", "outputs")}


@pytest.mark.parametrize("shards", [1, 2], ids=["one-file", "sharded"])
def test_a_fetched_model_is_the_same_model_as_its_folder(cli, hub, shards):
    h, folder = hub(shards)
    code, out, err = cli("org/model", "--fetch", "--format", "json")
    assert code == 0, err
    local = cli(str(folder), "--format", "json")[1]
    fetched, here = _figures(out), _figures(local)
    assert fetched == here and fetched["outputs"]["checkpoint_bytes"] > 13 * 10**9


def test_only_the_headers_cross_the_network(cli, hub):
    """13 GB of weights, a few hundred KiB sent: the config, the index, 8 bytes and a header a file."""
    h, folder = hub(2)
    assert cli("org/model", "--fetch")[0] == 0
    assert h.sent < 2**20


def test_without_fetch_a_model_not_in_the_cache_is_the_caches_error(cli, hub):
    h, _ = hub(1)
    code, _, err = cli("org/model")
    assert code == 2 and "not in the local Hugging Face cache" in err and h.sent == 0


def test_the_token_goes_to_the_hub_and_not_past_its_redirect(cli, hub, monkeypatch):
    h, _ = hub(1)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    assert cli("org/model", "--fetch")[0] == 0
    assert {auth for where, auth in h.auth if where == "org"} == {"Bearer hf_secret"}
    assert {auth for where, auth in h.auth if where == "files"} == {None}  # localhost: another host


@pytest.mark.parametrize("setup,words", [
    (dict(gated=True), "gated or private"),
    (dict(ignore_ranges=True), "the server ignored the range"),
], ids=["gated", "no-ranges"])
def test_what_the_hub_refuses_is_a_located_error(cli, hub, setup, words):
    hub(1, **setup)
    code, out, err = cli("org/model", "--fetch")
    assert code == 2 and out == "" and err.startswith("org/model") and words in err and "Traceback" not in err


def test_an_unknown_model_and_an_unreachable_hub_are_located_errors(cli, hub, monkeypatch):
    hub(1)
    code, _, err = cli("org/nothing", "--fetch")
    assert code == 2 and "has no config.json" in err
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard: nothing listens
    code, _, err = cli("org/model", "--fetch")
    assert code == 2 and "could not reach" in err


def test_a_header_that_lies_about_its_length_is_refused_before_it_is_read(cli, hub):
    h, folder = hub(1)
    path = folder / "model.safetensors"
    with open(path, "r+b") as fh:
        fh.write((path.stat().st_size * 2).to_bytes(8, "little"))
    code, _, err = cli("org/model", "--fetch")
    assert code == 2 and "says its header is" in err and h.sent < 2**20
