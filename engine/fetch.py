"""``--fetch``: a Hub id's config.json and safetensors headers read from the Hub over HTTP, when the
local cache does not hold it and the user asks for it. Nothing else is downloaded: a weight file's
first 8 bytes (its header's length), then its header, by HTTP range reads (as hf-mem does); its
size comes from the reply's Content-Range. The files are written into a folder the caller gives
(the header, then a sparse file of the weight file's size), which the model-folder reader reads.

The endpoint is ``$HF_ENDPOINT`` (default https://huggingface.co), the token ``$HF_TOKEN`` (or
``$HUGGING_FACE_HUB_TOKEN``), huggingface_hub's names; the URLs are its ``/ORG/NAME/resolve/
REVISION/FILE``. The token is sent to the endpoint's host only, never after a redirect to another.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import List, Optional, Tuple

from .errors import Location, SpecError, UnreadableFile
from .spec_file import _short  # the Hub's text in a message: bounded, control characters escaped

__all__ = ["fetch_snapshot", "endpoint"]

TIMEOUT = 30  # seconds a request may take
MAX_CONFIG = 4 * 2**20  # bytes of config.json
MAX_INDEX = 32 * 2**20  # bytes of model.safetensors.index.json
MAX_HEADER = 100 * 2**20  # the safetensors format's own bound on a header
MAX_SHARDS = 1000
INDEX, SINGLE = "model.safetensors.index.json", "model.safetensors"
_SHARD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}\.safetensors")


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follow the Hub's redirects to its file servers, without the token once the host changes."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


_OPENER = urllib.request.build_opener(_SameHostRedirects)


def fetch_snapshot(hub_id: str, org: str, name: str, revision: str, into: Path) -> Path:
    """``into`` holding the model's config.json, its index (if any) and its weight files' headers
    as sparse files of their sizes; a located SpecError at the Hub id for anything that fails."""
    base = f"{endpoint()}/{urllib.parse.quote(org)}/{urllib.parse.quote(name)}/resolve/" \
           f"{urllib.parse.quote(revision, safe='')}/"
    where = Location(hub_id)
    into.mkdir(parents=True, exist_ok=True)
    config = _get(base + "config.json", where, hub_id, limit=MAX_CONFIG)
    if config is None:
        raise _error(f"the Hub has no config.json for '{hub_id}' at {endpoint()}", where, hub_id,
                     "is the id (and the revision) right? `hf download` gets a model you may read")
    (into / "config.json").write_bytes(config[0])
    index = _get(base + INDEX, where, hub_id, limit=MAX_INDEX)
    if index is not None:
        (into / INDEX).write_bytes(index[0])
        files = _shards(index[0], where, hub_id)
    else:
        files = [SINGLE]
    for file in files:
        first = _get(base + file, where, hub_id, byte_range=(0, 7))
        if first is None:
            if index is None:
                return into  # a config without weights: the config alone is read
            raise _error(f"the index of '{hub_id}' names {file}, which the Hub does not have", where, hub_id,
                         "the repository is incomplete at this revision")
        head, total = first
        if len(head) != 8 or total is None:
            raise _error(f"the Hub answered {file}'s first 8 bytes with {len(head)} bytes and no size", where,
                         hub_id, "the server does not answer HTTP range requests: download the headers another way")
        length = int.from_bytes(head, "little")
        if length > MAX_HEADER or 8 + length > total:
            raise _error(f"{file} of '{hub_id}' says its header is {length:,} bytes, in a file of {total:,}", where,
                         hub_id, "it is not a safetensors file, or the upload is broken")
        header = _get(base + file, where, hub_id, byte_range=(8, 8 + length - 1))
        if header is None or len(header[0]) != length:
            raise _error(f"the Hub answered {file}'s header with fewer bytes than it says", where, hub_id,
                         "try again: the connection was cut")
        with open(into / file, "wb") as out:
            out.write(head + header[0])
            out.truncate(total)
    return into


def _shards(raw: bytes, where: Location, hub_id: str) -> List[str]:
    try:
        weight_map = json.loads(raw.decode("utf-8")).get("weight_map")
    except (ValueError, UnicodeDecodeError, AttributeError):
        weight_map = None
    if not isinstance(weight_map, dict):
        raise _error(f"the Hub's {INDEX} of '{hub_id}' is not an index (no weight_map)", where, hub_id,
                     "the repository's index is broken")
    files = sorted({f for f in weight_map.values() if isinstance(f, str)})
    bad = [f for f in files if not _SHARD_NAME.fullmatch(f)]
    if bad or not files or len(files) > MAX_SHARDS:
        raise _error(f"the index of '{hub_id}' names {_short(bad[0]) if bad else f'{len(files)} files'}: "
                     f"not 1 to {MAX_SHARDS} plain .safetensors names", where, hub_id, "the repository's index is broken")
    return files


def _get(url: str, where: Location, hub_id: str, limit: int = MAX_HEADER,
         byte_range: Optional[Tuple[int, int]] = None) -> Optional[Tuple[bytes, Optional[int]]]:
    """(the body, the file's total size from Content-Range) of a GET, None on 404."""
    request = urllib.request.Request(url, headers={"User-Agent": "vram-eval"})
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if byte_range is not None:
        request.add_header("Range", f"bytes={byte_range[0]}-{byte_range[1]}")
        limit = byte_range[1] - byte_range[0] + 1
    try:
        with _OPENER.open(request, timeout=TIMEOUT) as reply:
            body = reply.read(limit + 1)
            if len(body) > limit:
                raise _error(f"the Hub's {url.rsplit('/', 1)[-1]} of '{hub_id}' is larger than {limit:,} bytes",
                             where, hub_id, "a config or index that large is not one vram-eval reads"
                             if byte_range is None else "the server ignored the range: it sent the whole file")
            total = None
            match = re.fullmatch(r"bytes \d+-\d+/(\d+)", reply.headers.get("Content-Range", "") or "")
            if match:
                total = int(match.group(1))
            return body, total
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        if exc.code in (401, 403):
            raise _error(f"the Hub refuses '{hub_id}' (HTTP {exc.code}): gated or private", where, hub_id,
                         "accept its licence on the Hub and set HF_TOKEN to a token that may read it") from None
        raise _error(f"the Hub answered HTTP {exc.code} for {url.rsplit('/', 1)[-1]} of '{hub_id}'", where, hub_id,
                     "try again later") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _error(f"could not reach {endpoint()} for '{hub_id}': {_short(str(reason))}", where, hub_id,
                     "check the network (or HF_ENDPOINT); without --fetch only the local cache is read") from None


def _error(message: str, where: Location, hub_id: str, hint: str) -> SpecError:
    return UnreadableFile[SpecError](message, where, hint=hint, file=hub_id, reason="fetch")

