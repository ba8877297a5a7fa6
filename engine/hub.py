"""A Hugging Face Hub id (``meta-llama/Llama-3.1-8B``, ``org/name@revision``) → the snapshot
folder the local Hugging Face cache holds for it. Nothing is downloaded.

The cache's layout is huggingface_hub's (docs: "Understand caching"): under the cache folder,
``models--ORG--NAME/refs/REVISION`` holds the commit a branch or tag points at and
``models--ORG--NAME/snapshots/COMMIT/`` the files of that commit (links into ``blobs/``). The
cache folder is ``$HF_HUB_CACHE``, else ``$HUGGINGFACE_HUB_CACHE`` (its older name), else
``$HF_HOME/hub``, else ``$XDG_CACHE_HOME/huggingface/hub``, else ``~/.cache/huggingface/hub`` —
huggingface_hub's own order (huggingface_hub/constants.py), so a model it downloaded is found
without importing it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional, Tuple

from .errors import InvalidValue, Location, SpecError, UnreadableFile

__all__ = ["looks_like_hub_id", "hub_cache", "snapshot_folder"]

# huggingface_hub's rule for a repo id (validate_repo_id): ORG/NAME of letters, digits, "-", "_", ".";
# no "--" or ".." and not starting or ending with "-" or ".".
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_ID = re.compile(rf"({_PART})/({_PART})(?:@([A-Za-z0-9._/-]{{1,200}}))?")
_COMMIT = re.compile(r"[0-9a-f]{40}")


# A name ending so is a file that is not there, not a model of the Hub.
_FILE_SUFFIXES = (".toml", ".yaml", ".yml", ".json", ".gguf", ".safetensors", ".formula", ".bin")


def looks_like_hub_id(text: str) -> bool:
    """``ORG/NAME`` or ``ORG/NAME@REVISION``, for a path that does not exist: not a spec file's
    name (``specs/nope.toml``), and not in a folder that exists here (``specs/nope``)."""
    match = _ID.fullmatch(text)
    if not match or "--" in text.split("@")[0] or ".." in text:
        return False
    if match.group(2).lower().endswith(_FILE_SUFFIXES):
        return False
    try:
        return not Path(match.group(1)).is_dir()
    except OSError:
        return True


def parse_hub_id(text: str) -> Tuple[str, str, str]:
    """(org, name, revision); the revision is "main" where none is given."""
    match = _ID.fullmatch(text)
    assert match is not None
    return match.group(1), match.group(2), match.group(3) or "main"


def hub_cache() -> Path:
    """The cache folder huggingface_hub would use, from the environment."""
    env = os.environ
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(var):
            return Path(env[var]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    base = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def snapshot_folder(text: str) -> Path:
    """The snapshot folder of a Hub id in the local cache; a located SpecError where the cache
    does not hold it (and what to run to get it)."""
    org, name, revision = parse_hub_id(text)
    where = Location(text)
    cache = hub_cache()
    repo = cache / f"models--{org}--{name}"
    get = (f"download its config and weights with `hf download {org}/{name}"
           + (f" --revision {revision}" if revision != "main" else "") + "` (huggingface_hub), or give the "
           "model's folder; vram-eval itself never downloads")
    if not repo.is_dir():
        raise UnreadableFile[SpecError](f"'{org}/{name}' is not in the local Hugging Face cache ({cache})", where,
                                        hint=get, file=text, reason="missing")
    commit = _commit(repo, revision)
    if commit is None:
        raise UnreadableFile[SpecError](f"the cache holds '{org}/{name}' but not its revision '{revision}'", where,
                                        hint=get, file=text, reason="missing")
    folder = repo / "snapshots" / commit
    if not folder.is_dir() and commit == revision:
        raise UnreadableFile[SpecError](f"the cache holds '{org}/{name}' but not its revision '{revision}'", where,
                                        hint=get, file=text, reason="missing")
    if not folder.is_dir():
        raise UnreadableFile[SpecError](
            f"the cache's ref '{revision}' of '{org}/{name}' points at {commit[:12]}, which it does not hold", where,
            hint=get, file=text, reason="missing")
    if not (folder / "config.json").is_file():
        raise UnreadableFile[SpecError](f"the cached snapshot of '{text}' has no config.json", where,
                                        hint=f"download it with `hf download {org}/{name} config.json`",
                                        file=text, reason="missing")
    return folder


def _commit(repo: Path, revision: str) -> Optional[str]:
    if _COMMIT.fullmatch(revision):
        return revision
    if ".." in revision.split("/"):
        raise InvalidValue[SpecError](f"'{revision}' is not a revision", Location(revision), name="revision",
                                      value=revision, expected="a branch, a tag or a commit")
    ref = repo / "refs" / revision
    try:
        text = ref.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return text if _COMMIT.fullmatch(text) else None
