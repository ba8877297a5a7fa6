"""The on-disk cache of parsed formula files: data only, checked on read, written safely.

An entry is one JSON document (``<key>.json``) holding a :class:`FormulaFile`:

* its metadata — a format name and version, the entry's key, the SHA-256 of the
  source bytes and the engine's fingerprint — all of which must match what the
  caller computed, or the entry is not used;
* the file's rules and requirements, field by field;
* every expression as a *node table* (engine/nodes.py: a flat list of ``[tag, ...]`` nodes
  whose arguments are the indices of earlier nodes, leaves holding their own data).

A tag picks an entry of the fixed tables in engine/nodes.py; nothing in an entry names
Python code, and no tag is looked up anywhere else. The table is checked in one forward loop
(no recursion), each node's kind, depth and tree size bounded, without SymPy: a cached run
evaluates the tables directly, and builds SymPy expressions (engine/nodes_sympy.py) only for
the questions that need them. Anything unexpected — bad JSON, a wrong shape, an unknown tag, a
bound exceeded, a key that does not match — makes :func:`load` return None (a cache miss); it
never raises.

Files: the directory must be a real directory (not a link) owned by the current
user and not writable by group or others, or the cache is not used. Everything
inside it is reached through the directory's file descriptor with ``O_NOFOLLOW``:
an entry is read only if it is a regular file owned by the user, and is written
to a fresh randomly named file (``O_CREAT | O_EXCL``, mode 0600) renamed over the
entry's name, so a link planted at any name is never followed. Any OS error
turns caching off for that file.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Optional

from .errors import Location
from .nodes import MAX_DEPTH, MAX_TREE, Expression, Malformed, checked
from .rules import FormulaFile, Rule

__all__ = ["FORMAT", "VERSION", "SUFFIX", "MAX_ENTRY_BYTES", "MAX_DEPTH", "MAX_TREE", "Meta", "load", "store", "encode", "decode"]

FORMAT = "vram-eval parsed formula file"
VERSION = 1
SUFFIX = ".json"
MAX_ENTRY_BYTES = 64 * 2**20  # a larger entry is not read (nor written)

_KINDS = frozenset({"definition", "input", "table", "requirement", "expectation"})
_RULE_KEYS = frozenset({"name", "kind", "expr", "unit", "doc", "aliases", "location", "text", "comment", "builtin"})
_FILE_KEYS = frozenset({"path", "builtin", "nodes", "rules", "requirements"})
_ENTRY_KEYS = frozenset({"format", "version", "key", "source", "engine", "file"})


class _Bad(Exception):
    """The entry is not what this engine writes."""


# --- files ---------------------------------------------------------------------


class Meta:
    """What an entry must record to be used: its key, its source's hash, the engine's
    fingerprint, and the path and builtin flag the file was read with."""

    __slots__ = ("key", "source", "engine", "shown", "builtin")

    def __init__(self, key: str, source: str, engine: str, shown: str, builtin: bool) -> None:
        self.key, self.source, self.engine, self.shown, self.builtin = key, source, engine, shown, builtin


def encode(file: FormulaFile, meta: Meta) -> bytes:
    """An entry for ``file`` (raises Unencodable, a ValueError, if an expression has no tag)."""
    from .nodes_sympy import encode_exprs  # writing follows parsing: SymPy is loaded

    every = list(file.rules) + list(file.requirements)
    nodes, where = encode_exprs([r.expr for r in every])
    rules = []
    for rule, expr in zip(every, where):
        loc = rule.location
        rules.append({
            "name": rule.name, "kind": rule.kind, "expr": expr, "unit": rule.unit, "doc": rule.doc,
            "aliases": list(rule.aliases),
            "location": [loc.path, loc.line, loc.column, loc.source_line, loc.width],
            "text": rule.text, "comment": rule.comment, "builtin": rule.builtin,
        })
    entry = {
        "format": FORMAT, "version": VERSION, "key": meta.key, "source": meta.source, "engine": meta.engine,
        "file": {"path": file.path, "builtin": file.builtin, "nodes": nodes,
                 "rules": rules[: len(file.rules)], "requirements": rules[len(file.rules):]},
    }
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _no_constant(name):
    raise _Bad(name)  # NaN, Infinity: never written


def decode(blob: bytes, meta: Meta) -> Optional[FormulaFile]:
    """The FormulaFile in an entry, or None if the entry is not valid for ``meta``."""
    try:
        return _decode(blob, meta)
    except Exception:  # any flaw at all is a cache miss
        return None


def _decode(blob: bytes, meta: Meta) -> FormulaFile:
    if len(blob) > MAX_ENTRY_BYTES:
        raise _Bad
    entry = json.loads(blob.decode("utf-8"), parse_constant=_no_constant)
    if type(entry) is not dict or entry.keys() != _ENTRY_KEYS:
        raise _Bad
    if (entry["format"] != FORMAT or type(entry["version"]) is not int or entry["version"] != VERSION
            or entry["key"] != meta.key or entry["source"] != meta.source or entry["engine"] != meta.engine):
        raise _Bad
    body = entry["file"]
    if type(body) is not dict or body.keys() != _FILE_KEYS:
        raise _Bad
    if body["path"] != meta.shown or type(body["path"]) is not str or body["builtin"] is not meta.builtin:
        raise _Bad
    try:
        table = checked(body["nodes"])
    except Malformed:
        raise _Bad from None
    rules = _rules(body["rules"], table, meta, requirements=False)
    requirements = _rules(body["requirements"], table, meta, requirements=True)
    return FormulaFile(path=meta.shown, rules=rules, requirements=requirements, builtin=meta.builtin)


def _opt(value, cls):
    if value is not None and type(value) is not cls:
        raise _Bad
    return value


def _str(value) -> str:
    if type(value) is not str:
        raise _Bad
    return value


def _rules(raw, table, meta: Meta, requirements: bool) -> tuple:
    if type(raw) is not list:
        raise _Bad
    out = []
    for d in raw:
        if type(d) is not dict or d.keys() != _RULE_KEYS:
            raise _Bad
        kind = _str(d["kind"])
        if kind not in _KINDS or (kind in ("requirement", "expectation")) is not requirements or d["builtin"] is not meta.builtin:
            raise _Bad
        name = _opt(d["name"], str)
        if (name is None) is not requirements:
            raise _Bad
        expr = d["expr"]
        if expr is not None:
            if type(expr) is not int or not 0 <= expr < len(table):
                raise _Bad
            expr = Expression(table, expr)
        aliases = d["aliases"]
        if type(aliases) is not list or any(type(a) is not str for a in aliases):
            raise _Bad
        loc = d["location"]
        if type(loc) is not list or len(loc) != 5:
            raise _Bad
        path, line, column, source_line, width = loc
        if type(width) is not int:
            raise _Bad
        location = Location(_opt(path, str), _opt(line, int), _opt(column, int), _opt(source_line, str), width)
        out.append(Rule(name=name, kind=kind, expression=expr, unit=_opt(d["unit"], str), doc=_str(d["doc"]),
                        aliases=tuple(aliases), location=location, text=_str(d["text"]),
                        comment=_str(d["comment"]), builtin=meta.builtin))
    return tuple(out)


# --- the directory -------------------------------------------------------------

_POSIX = os.name == "posix" and hasattr(os, "O_NOFOLLOW") and hasattr(os, "O_DIRECTORY") \
    and {os.open, os.rename, os.unlink} <= os.supports_dir_fd
if _POSIX:
    _DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    # O_NONBLOCK: a FIFO planted at the name must not hang the open; fstat then refuses it
    _READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    _WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_dir(directory: Path, create: bool) -> Optional[int]:
    """A descriptor of the cache directory if it is safe to use, else None."""
    if not _POSIX:
        return None
    try:
        try:
            fd = os.open(directory, _DIR_FLAGS)
        except FileNotFoundError:
            if not create:
                return None
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd = os.open(directory, _DIR_FLAGS)
    except OSError:  # a link (ELOOP), not a directory, no permission, ...
        return None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022:
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def _entry_name(key: str) -> str:
    return key + SUFFIX


def _temp_name(key: str) -> str:
    import secrets  # only on a miss

    return f".{key[:16]}.{secrets.token_hex(8)}.tmp"


def load(directory: Path, meta: Meta) -> Optional[FormulaFile]:
    """The cached FormulaFile for ``meta``, or None (missing, unsafe, invalid, stale)."""
    dir_fd = _open_dir(directory, create=False)
    if dir_fd is None:
        return None
    try:
        fd = os.open(_entry_name(meta.key), _READ_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    finally:
        os.close(dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022 \
                or st.st_size > MAX_ENTRY_BYTES:
            return None
        chunks = []
        left = MAX_ENTRY_BYTES + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        blob = b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)
    return decode(blob, meta)


def store(directory: Path, meta: Meta, file: FormulaFile) -> bool:
    """Write ``file``'s entry if it can be written safely and reads back equal; True if written."""
    try:
        blob = encode(file, meta)
    except (ValueError, TypeError, RecursionError):  # no tag for it (Unencodable), a number too long
        return False
    if len(blob) > MAX_ENTRY_BYTES:
        return False
    back = decode(blob, meta)  # the entry must give back exactly what parsing gave
    if back is None or back.rules != file.rules or back.requirements != file.requirements:
        return False
    dir_fd = _open_dir(directory, create=True)
    if dir_fd is None:
        return False
    try:
        tmp = _temp_name(meta.key)
        try:
            fd = os.open(tmp, _WRITE_FLAGS, 0o600, dir_fd=dir_fd)
        except OSError:
            return False
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
            os.replace(tmp, _entry_name(meta.key), src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            return True
        except OSError:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except OSError:
                pass
            return False
    finally:
        os.close(dir_fd)
