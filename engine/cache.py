"""The on-disk cache of parsed formula files: data only, checked on read, written safely.

An entry is one JSON document (``<key>.json``) holding a :class:`FormulaFile`:

* its metadata — a format name and version, the entry's key, the SHA-256 of the
  source bytes and the engine's fingerprint — all of which must match what the
  caller computed, or the entry is not used;
* the file's rules and requirements, field by field;
* every expression as a *node table*: a flat list of ``[tag, ...]`` nodes in which
  a node's arguments are the indices of earlier nodes. Leaves hold their own
  data: ``["Sym", name]``, ``["Text", value]``, ``["Str", name]``, ``["Int", n]``,
  ``["Q", p, q]`` (numbers exact: a JSON integer, or a string of decimal digits
  when large) and the constants ``["true"]``, ``["pi"]``, ...

A tag picks a constructor from the fixed tables below; nothing in an entry names
Python code, and no tag is looked up anywhere else. Because arguments point
backwards, the expressions are rebuilt in one forward loop (no recursion), with
each node's depth and tree size bounded. Anything unexpected — bad JSON, a wrong
shape, an unknown tag, a bound exceeded, a key that does not match — makes
:func:`load` return None (a cache miss); it never raises.

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
from typing import Dict, List, Optional, Tuple

from sympy import (
    Abs,
    Add,
    And,
    Basic,
    Eq,
    Expr,
    Ge,
    Gt,
    Integer,
    Le,
    Lt,
    Max,
    Min,
    Mod,
    Mul,
    Ne,
    Not,
    Or,
    Piecewise,
    Pow,
    Rational,
    S,
    Symbol,
    Tuple as STuple,
    ceiling,
    floor,
    log,
)
from sympy.core.symbol import Str
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.logic.boolalg import Boolean, false, true

from .errors import Location
from .rules import FormulaFile, Rule
from .symbols import Lookup, Member, Table, Text, TextEq, TextSet

__all__ = ["FORMAT", "VERSION", "SUFFIX", "MAX_ENTRY_BYTES", "MAX_DEPTH", "Meta", "load", "store", "encode", "decode"]

FORMAT = "vram-eval parsed formula file"
VERSION = 1
SUFFIX = ".json"
MAX_ENTRY_BYTES = 64 * 2**20  # a larger entry is not read (nor written)
MAX_DEPTH = 400  # deepest expression rebuilt; the parser itself stops near 800
MAX_TREE = 2_000_000  # most nodes in one expression counted as a tree (shared nodes once per use)
_SAFE_INT = 2**53  # larger integers are written as strings of digits
_MAX_DIGITS = 4000  # within int()'s own limit for decimal text

_KINDS = frozenset({"definition", "input", "table", "requirement", "expectation"})
_RULE_KEYS = frozenset({"name", "kind", "expr", "unit", "doc", "aliases", "location", "text", "comment", "builtin"})
_FILE_KEYS = frozenset({"path", "builtin", "nodes", "rules", "requirements"})
_ENTRY_KEYS = frozenset({"format", "version", "key", "source", "engine", "file"})


class _Bad(Exception):
    """The entry is not what this engine writes."""


class _Unsupported(Exception):
    """An expression holds something the format has no tag for: it is not cached."""


# --- the whitelist -------------------------------------------------------------
# Leaves: tag → builder of the node's own data.


def _name(node) -> str:
    if len(node) != 2 or type(node[1]) is not str:
        raise _Bad
    return node[1]


def _integer(value) -> int:
    if type(value) is int:
        return value
    if type(value) is str and len(value) <= _MAX_DIGITS:
        digits = value[1:] if value[:1] == "-" else value
        if digits.isascii() and digits.isdigit():  # 0-9 only: no sign, space, "_" or other scripts' digits
            return int(value)
    raise _Bad


def _int_leaf(node):
    if len(node) != 2:
        raise _Bad
    return Integer(_integer(node[1]))


def _rational_leaf(node):
    if len(node) != 3:
        raise _Bad
    p, q = _integer(node[1]), _integer(node[2])
    if q < 2:
        raise _Bad
    return Rational(p, q)


def _constant(value):
    def build(node):
        if len(node) != 1:
            raise _Bad
        return value

    return build


_CONSTANTS = {
    "true": true,
    "false": false,
    "I": S.ImaginaryUnit,
    "pi": S.Pi,
    "E": S.Exp1,
    "oo": S.Infinity,
    "-oo": S.NegativeInfinity,
    "zoo": S.ComplexInfinity,
    "nan": S.NaN,
}

_ATOMS: Dict[Tuple[type, str], Basic] = {}  # names seen in this process (each file repeats many)


def _atom(cls):
    def build(node):
        name = _name(node)
        atom = _ATOMS.get((cls, name))
        if atom is None:
            atom = cls(name)
            if len(_ATOMS) < 100_000:
                _ATOMS[cls, name] = atom
        return atom

    return build


_LEAVES = {
    "Sym": _atom(Symbol),
    "Text": _atom(Text),
    "Str": lambda node: Str(_name(node)),
    "Int": _int_leaf,
    "Q": _rational_leaf,
    **{tag: _constant(value) for tag, value in _CONSTANTS.items()},
}

# Inner nodes: tag → (class, fewest arguments, most or None, type every argument must have,
# builder). Sums, products and piecewise nodes were canonical when they were written: they
# are built from their arguments directly (SymPy's own fast path, skipping the
# constructors' checks, which would cost what parsing costs); the rest unevaluated.


def _from_args(cls):
    return lambda args: cls._from_args(args)


def _direct(cls):
    return lambda args: Basic.__new__(cls, *args)


def _unevaluated(cls):
    return lambda args: cls(*args, evaluate=False)


def _applied(cls, argset: bool):
    """A function application (floor, And, Max, TextEq, ...) built directly. SymPy's own
    constructor gives such an object two attributes beyond its arguments: ``nargs`` (the
    same for every instance of the class) and, for And/Or/Min/Max, ``_argset``. The first
    node of each class in a process is built by the constructor, unevaluated, and its
    ``nargs`` is reused; tests check the rebuilt objects against parsed ones."""
    learned = []

    def build(args):
        if not learned:
            obj = cls(*args, evaluate=False)
            if type(obj) is not cls or obj.args != args:
                raise _Bad
            learned.append(vars(obj).get("nargs"))
            return obj
        obj = Basic.__new__(cls, *args)
        if learned[0] is not None:
            obj.nargs = learned[0]
        if argset:
            obj._argset = frozenset(args)
        return obj

    return build


def _table(args):
    name, entries = args
    if type(name) is not Str or type(entries) is not STuple:
        raise _Bad
    for pair in entries.args:
        if type(pair) is not STuple or len(pair.args) != 2 or type(pair.args[0]) is not Text:
            raise _Bad
    return Basic.__new__(Table, name, entries)


def _text_set(args):
    if any(type(a) is not Text for a in args):
        raise _Bad
    return TextSet(*args)


def _pair(args):
    if not isinstance(args[1], Boolean):
        raise _Bad
    return Basic.__new__(ExprCondPair, *args)


_INNER = {
    "Add": (Add, 2, None, Expr, _from_args(Add)),
    "Mul": (Mul, 2, None, Expr, _from_args(Mul)),
    "Pow": (Pow, 2, 2, Expr, _unevaluated(Pow)),
    "Mod": (Mod, 2, 2, Expr, _applied(Mod, False)),
    "Piecewise": (Piecewise, 1, None, ExprCondPair, _direct(Piecewise)),
    "Pair": (ExprCondPair, 2, 2, Basic, _pair),
    "Min": (Min, 2, None, Expr, _applied(Min, True)),
    "Max": (Max, 2, None, Expr, _applied(Max, True)),
    "ceiling": (ceiling, 1, 1, Expr, _applied(ceiling, False)),
    "floor": (floor, 1, 1, Expr, _applied(floor, False)),
    "Abs": (Abs, 1, 1, Expr, _applied(Abs, False)),
    "log": (log, 1, 1, Expr, _applied(log, False)),
    "Lt": (Lt, 2, 2, Expr, _unevaluated(Lt)),
    "Le": (Le, 2, 2, Expr, _unevaluated(Le)),
    "Gt": (Gt, 2, 2, Expr, _unevaluated(Gt)),
    "Ge": (Ge, 2, 2, Expr, _unevaluated(Ge)),
    "Eq": (Eq, 2, 2, Basic, _unevaluated(Eq)),
    "Ne": (Ne, 2, 2, Basic, _unevaluated(Ne)),
    "And": (And, 2, None, Boolean, _applied(And, True)),
    "Or": (Or, 2, None, Boolean, _applied(Or, True)),
    "Not": (Not, 1, 1, Boolean, _applied(Not, False)),
    "TextEq": (TextEq, 2, 2, Basic, _applied(TextEq, False)),
    "Member": (Member, 2, 2, Basic, _applied(Member, False)),
    "Lookup": (Lookup, 2, 2, Basic, _applied(Lookup, False)),
    "Tuple": (STuple, 0, None, Basic, _direct(STuple)),
    "TextSet": (TextSet, 0, None, Basic, _text_set),
    "Table": (Table, 2, 2, Basic, _table),
}

_TAG_OF = {spec[0]: tag for tag, spec in _INNER.items()}
_CONSTANT_TAG = {id(value): tag for tag, value in _CONSTANTS.items()}


# --- expressions ---------------------------------------------------------------


def _leaf(obj) -> Optional[list]:
    """The node for an atom (None if ``obj`` is not one the format knows)."""
    cls = type(obj)
    if cls is Symbol:
        if obj != Symbol(obj.name):  # assumptions (the parser makes none)
            raise _Unsupported(obj)
        return ["Sym", obj.name]
    if cls is Text:
        return ["Text", obj.value]
    if cls is Str:
        return ["Str", obj.name]
    tag = _CONSTANT_TAG.get(id(obj))
    if tag is not None:
        return [tag]
    if isinstance(obj, Integer):  # Integer and its singletons 0, 1, -1
        return ["Int", _number(int(obj))]
    if isinstance(obj, Rational):  # Rational and 1/2
        return ["Q", _number(int(obj.p)), _number(int(obj.q))]
    return None


def _number(n: int):
    return n if -_SAFE_INT < n < _SAFE_INT else str(n)


def _encode_exprs(exprs) -> Tuple[list, list]:
    """(node table, index of each expression or None) — post-order, each distinct node once."""
    table: List[list] = []
    index: Dict[Basic, int] = {}
    out = []
    for expr in exprs:
        if expr is None:
            out.append(None)
            continue
        stack = [(expr, False)]
        while stack:
            obj, ready = stack.pop()
            if obj in index:
                continue
            leaf = _leaf(obj)
            if leaf is not None:
                index[obj] = len(table)
                table.append(leaf)
                continue
            tag = _TAG_OF.get(type(obj))
            if tag is None:
                raise _Unsupported(obj)
            if ready:
                index[obj] = len(table)
                table.append([tag, *(index[a] for a in obj.args)])
            else:
                stack.append((obj, True))
                stack.extend((a, False) for a in reversed(obj.args))
        out.append(index[expr])
    return table, out


def _decode_nodes(raw) -> list:
    """The node table → SymPy objects, in one forward loop with bounded depth and size."""
    if type(raw) is not list:
        raise _Bad
    built: list = []
    depth: List[int] = []
    size: List[int] = []
    leaves, inner = _LEAVES, _INNER
    for node in raw:
        if type(node) is not list or not node or type(node[0]) is not str:
            raise _Bad
        tag = node[0]
        leaf = leaves.get(tag)
        if leaf is not None:
            built.append(leaf(node))
            depth.append(1)
            size.append(1)
            continue
        spec = inner.get(tag)
        if spec is None:
            raise _Bad
        _, least, most, kind, build = spec
        count = len(built)
        n = len(node) - 1
        if n < least or (most is not None and n > most):
            raise _Bad
        args = []
        d = s = 1
        for i in node[1:]:
            if type(i) is not int or i < 0 or i >= count:
                raise _Bad
            arg = built[i]
            if not isinstance(arg, kind):
                raise _Bad
            args.append(arg)
            if depth[i] >= d:
                d = depth[i] + 1
            s += size[i]
        if d > MAX_DEPTH or s > MAX_TREE:
            raise _Bad
        built.append(build(tuple(args)))
        depth.append(d)
        size.append(s)
    return built


# --- files ---------------------------------------------------------------------


class Meta:
    """What an entry must record to be used: its key, its source's hash, the engine's
    fingerprint, and the path and builtin flag the file was read with."""

    __slots__ = ("key", "source", "engine", "shown", "builtin")

    def __init__(self, key: str, source: str, engine: str, shown: str, builtin: bool) -> None:
        self.key, self.source, self.engine, self.shown, self.builtin = key, source, engine, shown, builtin


def encode(file: FormulaFile, meta: Meta) -> bytes:
    """An entry for ``file`` (raises _Unsupported if an expression has no tag)."""
    every = list(file.rules) + list(file.requirements)
    nodes, where = _encode_exprs([r.expr for r in every])
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
    built = _decode_nodes(body["nodes"])
    rules = _rules(body["rules"], built, meta, requirements=False)
    requirements = _rules(body["requirements"], built, meta, requirements=True)
    return FormulaFile(path=meta.shown, rules=rules, requirements=requirements, builtin=meta.builtin)


def _opt(value, cls):
    if value is not None and type(value) is not cls:
        raise _Bad
    return value


def _str(value) -> str:
    if type(value) is not str:
        raise _Bad
    return value


def _rules(raw, built, meta: Meta, requirements: bool) -> tuple:
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
            if type(expr) is not int or not 0 <= expr < len(built):
                raise _Bad
            expr = built[expr]
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
        out.append(Rule(name=name, kind=kind, expr=expr, unit=_opt(d["unit"], str), doc=_str(d["doc"]),
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
    except (_Unsupported, ValueError, TypeError, RecursionError):  # no tag for it, or a number too long
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
