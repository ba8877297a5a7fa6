"""Which formula files make up a RuleSet.

* Every ``*.formula`` under ``formulas/`` (recursively, sorted by path) is
  loaded, except inside a *variant directory*: a subdirectory named after a
  declared input, such as ``formulas/arch/``. There only the file named after
  that input's value is loaded: ``arch = "llama"`` loads
  ``formulas/arch/llama.formula``. Adding an architecture is adding a file.
* Then each ``--formulas PATH`` (a file, or a directory searched the same
  way), in the order given. These are the user's files: they may override a
  built-in definition, and the report says so.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple


from . import cache, resources
from .errors import (FormulaError, InvalidValue, Location, MissingDependency, SpecError, UnreadableFile, closest,
                     did_you_mean, printable)
from .rules import FormulaFile, RuleSet

__all__ = ["Library", "formula_files"]


def formula_files(root: Path) -> List[Path]:
    """``*.formula`` under ``root`` (recursively, in a stable order)."""
    if root.is_file():
        return [root]
    if root.exists() and not root.is_dir():
        raise UnreadableFile[FormulaError]("this is not a regular file (a pipe, a device or a socket)",
                                           Location(str(root)), hint="give a .formula text file or a directory of them",
                                           file=str(root), reason="not regular")
    return sorted(p for p in root.rglob("*.formula") if p.is_file())


@functools.lru_cache(maxsize=256)
def _read(path: str, shown: str, mtime: float, builtin: bool) -> FormulaFile:
    return _cached(Path(path), shown, builtin)


def read_file(path: Path, shown: str, builtin: bool) -> FormulaFile:
    """One formula file, parsed (or from the parse cache: the same result); a file that does not
    parse raises its located FormulaError (errors are never cached)."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = 0.0
    return _read(str(path), shown, mtime, builtin)


def _cache_dir() -> Optional[Path]:
    """Where parsed formula files are kept between runs (VRAM_EVAL_CACHE=off disables)."""
    setting = os.environ.get("VRAM_EVAL_CACHE")
    if setting is not None:
        return None if setting.lower() in ("", "0", "off", "no") else Path(setting)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vram-eval"


def _cached(path: Path, shown: str, builtin: bool) -> FormulaFile:
    """Parse a file, or load the result of parsing the same bytes before.

    Turning text into SymPy is most of a cold run's own work; the cache is keyed by
    the file's bytes, the grammar and the engine's source, so any change misses.
    Entries are data (JSON, see engine/cache.py), checked on read: an entry that is
    missing, invalid, stale or unsafe to open is a miss. Errors are never cached, and
    a cache that cannot be read or written is skipped."""
    directory = _cache_dir()
    try:
        data = path.read_bytes()
    except OSError:
        data = None
    if directory is None or data is None:
        return _parse_file(path, shown, builtin)
    builtin = bool(builtin)
    fingerprint = _engine_fingerprint()
    key = hashlib.sha256(b"\0".join([fingerprint, shown.encode(), bytes([builtin]), data])).hexdigest()
    meta = cache.Meta(key, hashlib.sha256(data).hexdigest(), fingerprint.hex(), shown, builtin)
    file = cache.load(directory, meta)
    if file is not None:
        return file
    file = _parse_file(path, shown, builtin)
    cache.store(directory, meta, file)
    return file


def _parse_file(path: Path, shown: str, builtin: bool) -> FormulaFile:
    try:
        from .transform import read_formula_file  # the parser (and Lark) only on a cache miss
    except ImportError as exc:  # a broken install: a cached run needs neither, a parse both
        raise MissingDependency(f"parsing formula files needs Lark and SymPy ({exc.name} is not installed)",
                                Location(shown), hint="install vram-eval with its dependencies:  pip install vram-eval",
                                package=exc.name or "", extra="") from None

    return read_formula_file(path, builtin=builtin, shown=shown)


def _sympy_version() -> str:
    """SymPy's version, read from its release file without importing it (a cached run never
    imports SymPy); imported only where that file is not found."""
    import importlib.util

    spec = importlib.util.find_spec("sympy")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        try:
            text = (Path(folder) / "release.py").read_text(encoding="utf-8")
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("__version__"):
                return line.split("=", 1)[1].strip().strip("\"'")
    import sympy

    return sympy.__version__


@functools.lru_cache(maxsize=1)
def _engine_fingerprint() -> bytes:
    """Hash of the grammar, of the modules that build rules and of the cache format (and
    SymPy's version, which decides canonical forms): a new version invalidates the cache."""
    digest = hashlib.sha256(f"sympy {_sympy_version()}\0cache v{cache.VERSION}\0".encode())
    here = Path(__file__).resolve().parent
    for part in (resources.grammar_path(), here / "transform.py", here / "symbols.py", here / "rules.py",
                 here / "parse.py", here / "units.py", here / "errors.py", here / "cache.py", here / "nodes.py",
                 here / "nodes_sympy.py"):
        try:
            digest.update(part.read_bytes())
        except OSError:
            digest.update(str(part).encode())
    return digest.digest()


# RuleSets built in this process, by the files they were built from (the parsed files are kept
# by _read, so the same bytes give the same objects): a second problem over the same formulas
# (a remedy, a test's next case) shares the checked, ordered rule set instead of rebuilding it.
_RULESETS: Dict[tuple, Tuple[tuple, RuleSet]] = {}


def _built(files: tuple, choices: Dict[str, Tuple[str, ...]]) -> RuleSet:
    key = (tuple(id(f) for f in files), tuple(sorted(choices.items())))
    hit = _RULESETS.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], files)):
        return hit[1]
    ruleset = RuleSet.build(files, choices=choices)
    if len(_RULESETS) >= 64:
        _RULESETS.clear()
    _RULESETS[key] = (files, ruleset)  # the files kept alive with it: their ids are not reused
    return ruleset


class _Listing:
    """What a built-in directory holds, as Library._layout lists it: the top-level ``*.formula``
    files and every ``*.formula`` below (each with the name it is shown by), the subdirectories,
    and each subdirectory's ``*.formula`` files; all sorted."""

    __slots__ = ("top", "subdirs", "every", "below")

    def __init__(self, builtin_dir: Path) -> None:
        def shown(p: Path) -> str:
            return str(Path(builtin_dir.name) / p.relative_to(builtin_dir))

        self.top = [(p, shown(p)) for p in sorted(builtin_dir.glob("*.formula")) if p.is_file()]
        self.subdirs = [d for d in sorted(builtin_dir.iterdir()) if d.is_dir()]
        self.every = [(p, shown(p)) for p in formula_files(builtin_dir)]
        self.below = {d: formula_files(d) for d in self.subdirs}


# Each built-in directory's listing, kept while none of its directories has changed (each load
# of a problem would list it again: globs and a recursive walk, most of a warm load's own time).
# A file's content is checked as before, by its mtime (read_file). A directory that changed less
# than _SETTLED_NS before it was listed is listed again at every load: a change within the same
# tick of the file system's clock would leave its mtime as it was.
_LISTINGS: Dict[str, Tuple[tuple, "_Listing"]] = {}
_SETTLED_NS = 2_000_000_000


def _stamps(root: Path) -> Optional[tuple]:
    """(path, mtime in ns) of ``root`` and every directory below it; None where one is a symbolic
    link (such a tree is listed each time) or cannot be read."""
    stamps = []
    try:
        for dirpath, dirnames, _ in os.walk(root, onerror=_raise):
            stamps.append((dirpath, os.stat(dirpath).st_mtime_ns))
            if any(os.path.islink(os.path.join(dirpath, d)) for d in dirnames):
                return None
    except OSError:
        return None
    return tuple(stamps) if stamps else None


def _raise(error: OSError) -> None:
    raise error


def _listing(builtin_dir: Path) -> "_Listing":
    key = str(builtin_dir)
    hit = _LISTINGS.get(key)
    if hit is not None:
        stamps, listing = hit
        try:
            if all(os.stat(path).st_mtime_ns == ns for path, ns in stamps):
                return listing
        except OSError:
            pass
        del _LISTINGS[key]
    now = time.time_ns()
    # the stamps before the listing: a change while it is listed moves one; a relative directory
    # (read against the working directory of the moment) is listed each time
    stamps = _stamps(builtin_dir) if builtin_dir.is_absolute() else None
    listing = _Listing(builtin_dir)
    if stamps is not None and all(ns < now - _SETTLED_NS for _, ns in stamps):
        if len(_LISTINGS) >= 64:
            _LISTINGS.clear()
        _LISTINGS[key] = (stamps, listing)
    return listing


class Library:
    """The built-in formulas plus the user's, composed for a choice of variants.

    A variant directory's selector must be declared in a file directly in
    ``formulas/`` (for ``arch``: ``input arch = "gpt"`` in model.formula)."""

    def __init__(self, user_paths: Sequence[str] = (), builtin_dir: Optional[Path] = None) -> None:
        self.builtin_dir = Path(builtin_dir) if builtin_dir else resources.formulas_dir()
        self.user_paths = [Path(p) for p in user_paths]
        for p in self.user_paths:
            if not p.exists():
                raise UnreadableFile[FormulaError]("no such file or directory", Location(str(p)),
                                                   hint="--formulas takes a .formula file or a directory of them",
                                                   file=str(p), reason="missing")

    def _parse(self, path: Path, builtin: bool) -> FormulaFile:
        shown = str(path)
        if builtin:
            shown = str(Path(self.builtin_dir.name) / path.relative_to(self.builtin_dir))
        return read_file(path, shown, builtin)

    def variants(self) -> Dict[str, Dict[str, Path]]:
        """selector input → {value: file} for every variant directory."""
        return self._layout()[1]

    def _layout(self):
        listing = _listing(self.builtin_dir)
        top = [read_file(p, shown, True) for p, shown in listing.top]
        declared = {r.name for f in top for r in f.rules if r.kind == "input"}
        variant_dirs = {d.name: d for d in listing.subdirs if d.name in declared}
        nested = [
            read_file(p, shown, True)
            for p, shown in listing.every
            if p.parent != self.builtin_dir and not any(d in p.parents for d in variant_dirs.values())
        ]
        variants = {name: {p.stem: p for p in listing.below[d]} for name, d in variant_dirs.items()}
        return top + nested, variants

    def shared_files(self) -> List[FormulaFile]:
        """The built-in files outside every variant directory, parsed."""
        return self._layout()[0]

    def variant_files(self) -> Dict[str, Dict[str, FormulaFile]]:
        """selector input → {value: its parsed file} for every variant directory."""
        return {selector: {value: self._parse(path, True) for value, path in options.items()}
                for selector, options in self._layout()[1].items()}

    def variants_defining(self, name: str) -> List[str]:
        """'arch=llama' for each variant file that defines or declares ``name``."""
        found = []
        for selector, options in self._layout()[1].items():
            for value, path in options.items():
                if any(r.name == name for r in self._parse(path, True).rules):
                    found.append(f"{selector}={value}")
        return found

    def user_files(self) -> List[FormulaFile]:
        files = []
        for root in self.user_paths:
            found = formula_files(root)
            if root.is_dir() and not found:
                raise UnreadableFile[FormulaError]("no *.formula files in this directory", Location(str(root)),
                                                   file=str(root), reason="empty")
            files.extend(self._parse(p, False) for p in found)
        return files

    def ruleset(self, chosen: Optional[Mapping[str, object]] = None) -> RuleSet:
        """The RuleSet for ``chosen`` values of the variant selectors (defaults otherwise).

        ``chosen`` maps a selector (or its alias) to a value, or to a
        ``(value, Location)`` pair used to locate an error about it."""
        base, variants = self._layout()
        inputs = {r.name: r for f in base for r in f.rules if r.kind == "input"}
        alias_to = {a: r.name for r in inputs.values() for a in r.aliases}
        picked: Dict[str, Tuple[object, Optional[Location]]] = {}
        for key, value in (chosen or {}).items():
            name = key if key in inputs else alias_to.get(key)
            if name in variants:
                picked[name] = value if isinstance(value, tuple) else (value, None)
        files = list(base)
        for name, options in variants.items():
            value, where = picked.get(name, (None, None))
            if value is None:
                default = inputs[name].expression
                value = default.constant() if default is not None else None
            if value is None:
                continue
            value = str(value)
            if value not in options:
                hint = did_you_mean(closest(value, options))
                folder = Path(self.builtin_dir.name) / name
                raise InvalidValue[SpecError](
                    f'{name} = "{printable(value, 60)}" is not one of: ' + ", ".join(options),
                    where,
                    hint=(hint + " " if hint else "") + f"(each is a file in {folder}/)",
                    name=name, value=value, allowed=tuple(options), expected="one of: " + ", ".join(options),
                )
            files.append(self._parse(options[value], True))
        choices = {name: tuple(options) for name, options in variants.items()}
        return _built(tuple(files + self.user_files()), choices)
