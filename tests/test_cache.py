"""The on-disk cache of parsed formula files gives back exactly what parsing gives,
and nothing else: entries are data, checked on read, and written without following links."""

import json
import os
import re
import stat
import threading
import time
import tokenize
from pathlib import Path

import pytest
from sympy import S, Symbol, srepr

from vram_eval import cache as cache_format
from vram_eval import library
from vram_eval.nodes import INNER, Expression
from vram_eval.rules import FormulaFile
from vram_eval.transform import parse_formulas, read_formula_file

from conftest import ROOT

ONE = "w = 1\n"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VRAM_EVAL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def parses(monkeypatch):
    """How many times a file was really parsed (a cache miss)."""
    calls = []
    real = library._parse_file

    def counting(path, shown, builtin):
        calls.append(shown)
        return real(path, shown, builtin)

    monkeypatch.setattr(library, "_parse_file", counting)
    return calls


def write(tmp_path, text=ONE, name="mine.formula"):
    path = tmp_path / name
    path.write_text(text)
    return path


def value(path, shown="mine.formula"):
    return str(library._cached(path, shown, False).rules[0].expr)


def only_entry(cache) -> Path:
    entries = list(cache.glob("*.json"))
    assert len(entries) == 1, entries
    return entries[0]


def cached_once(cache, tmp_path, text=ONE):
    """A file, its valid entry written by the engine, and that entry's JSON."""
    path = write(tmp_path, text)
    library._cached(path, "mine.formula", False)
    entry = only_entry(cache)
    return path, entry, json.loads(entry.read_text())


def put(entry: Path, doc) -> None:
    entry.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)


# --- the cache gives back what parsing gives ------------------------------------------


def _same_objects(a, b):
    """Walk two expressions side by side: same types, arguments and instance state."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        assert type(x) is type(y)
        assert vars(x) == vars(y) if hasattr(x, "__dict__") else not hasattr(y, "__dict__")
        assert len(x.args) == len(y.args)
        stack.extend(zip(x.args, y.args))


def test_cached_rules_equal_freshly_parsed_ones(cache):
    for path in sorted((ROOT / "formulas").rglob("*.formula")):
        fresh = read_formula_file(path, builtin=True, shown=path.name)
        first = library._cached(path, path.name, True)  # parses and writes
        second = library._cached(path, path.name, True)  # loads
        assert second is not first
        assert fresh.rules == first.rules == second.rules
        assert fresh.requirements == second.requirements
        assert [r.expr.func for r in fresh.rules if r.expr is not None] == \
               [r.expr.func for r in second.rules if r.expr is not None]
        # rebuilt node by node (sums and products through SymPy's fast path): the same trees
        assert [srepr(r.expr) for r in fresh.rules + fresh.requirements] == \
               [srepr(r.expr) for r in second.rules + second.requirements]
        assert [r.expr.is_commutative for r in fresh.rules if r.expr is not None] == \
               [r.expr.is_commutative for r in second.rules if r.expr is not None]
        for a, b in zip(fresh.rules + fresh.requirements, second.rules + second.requirements):
            if a.expr is not None:
                _same_objects(a.expr, b.expr)
    # every built-in file is cached: the whitelist covers every class they use
    assert len(list(cache.glob("*.json"))) == len(list((ROOT / "formulas").rglob("*.formula")))
    assert not list(cache.glob("*.pickle"))


EVERY_TAG = """\
input x
input y
input flag = true
input targets [list] = ["a", "b"]
input mode = "fast"
tb = { a: 1, b: 0.5, c: 3 }
w1 = ceil(x) + floor(x / 3) + abs(x - 2) + log(x) + log(x, 2) + sqrt(x) + min(x, 3, 2 * x) + max(x, 1) + x % 7
w2 = 1 if (x < 2 and y <= 3) or (x != 4 and not flag) else 2
w3 = tb[mode] if "a" in targets and "c" not in targets and x == 2 and x > 1 and y >= 0 and mode == "fast" else 0
w4 = 2 ^ 200 * x + 12345678901234567890123 / 7 - 0.125 * y - 2 ^ 100
w5 = 2 ^ 0.5 * x + 3 ^ (1 / 3)
w6 = false
require x > 0 "x is positive"
"""


def test_every_kind_of_node_round_trips(cache, tmp_path, parses):
    path = write(tmp_path, EVERY_TAG)
    fresh = parse_formulas(EVERY_TAG, "mine.formula")
    library._cached(path, "mine.formula", False)
    again = library._cached(path, "mine.formula", False)
    assert parses == ["mine.formula"]  # the second was a hit
    assert again.rules == fresh.rules and again.requirements == fresh.requirements
    assert [srepr(r.expr) for r in again.rules] == [srepr(r.expr) for r in fresh.rules]
    nodes = json.loads(only_entry(cache).read_text())["file"]["nodes"]
    tags = {node[0] for node in nodes}
    assert {"Abs", "ceiling", "floor", "log", "Min", "Max", "Mod", "Lt", "Le", "Ne", "Eq", "Gt", "Ge", "And", "Or",
            "Not", "Member", "TextEq", "Lookup", "Table", "TextSet", "Q", "Pow", "false"} <= tags
    assert any(node[0] == "Int" and isinstance(node[1], str) for node in nodes)  # 2^200 as digits


@pytest.mark.parametrize("expr", [S.Infinity, S.NegativeInfinity, S.NaN, S.ComplexInfinity * Symbol("x"),
                                  S.Exp1 + Symbol("x"), S.ImaginaryUnit * S.Pi, S.Half, S.One, -Symbol("x") ** 2 / 3])
def test_constants_round_trip(expr):
    file = parse_formulas("w = 1\n", "f")
    import dataclasses

    file = FormulaFile(file.path, (dataclasses.replace(file.rules[0], expression=Expression.of(expr)),), (), False)
    meta = cache_format.Meta("k", "s", "e", "f", False)
    back = cache_format.decode(cache_format.encode(file, meta), meta)
    assert back is not None and srepr(back.rules[0].expr) == srepr(expr)


def test_an_expression_outside_the_whitelist_is_not_cached(tmp_path):
    from sympy import sin

    file = parse_formulas("w = 1\n", "f")
    import dataclasses

    file = FormulaFile(file.path, (dataclasses.replace(file.rules[0], expression=Expression.of(sin(Symbol("x")))),), (), False)
    meta = cache_format.Meta("k", "s", "e", "f", False)
    assert cache_format.store(tmp_path, meta, file) is False
    assert not list(tmp_path.iterdir())


def test_a_changed_file_misses_the_cache(cache, tmp_path):
    path = write(tmp_path)
    assert value(path) == "1"
    path.write_text("w = 2\n")
    assert value(path) == "2"


def test_errors_are_not_cached_and_a_broken_cache_is_ignored(cache, tmp_path, parses):
    path, entry, _ = cached_once(cache, tmp_path)
    entry.write_bytes(b"not json")
    assert value(path) == "1"
    assert len(parses) == 2
    assert json.loads(entry.read_text())["format"] == cache_format.FORMAT  # overwritten with a good one
    bad = write(tmp_path, "w = (\n", "bad.formula")
    with pytest.raises(Exception):
        library._cached(bad, "bad.formula", False)
    assert len(list(cache.glob("*.json"))) == 1


@pytest.mark.parametrize("setting", ["off", "OFF", "", "0", "no"])
def test_the_cache_can_be_turned_off(monkeypatch, tmp_path, setting):
    monkeypatch.setenv("VRAM_EVAL_CACHE", setting)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert library._cache_dir() is None
    assert value(write(tmp_path)) == "1"
    assert not (tmp_path / "xdg").exists() and not (tmp_path / "home").exists()


def test_where_the_cache_lives(monkeypatch, tmp_path):
    monkeypatch.setenv("VRAM_EVAL_CACHE", str(tmp_path / "mine"))
    assert library._cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("VRAM_EVAL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert library._cache_dir() == tmp_path / "xdg" / "vram-eval"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert library._cache_dir() == tmp_path / "home" / ".cache" / "vram-eval"


def test_the_directory_and_entries_are_private(cache, tmp_path):
    value(write(tmp_path))
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(only_entry(cache).stat().st_mode) == 0o600
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]


# --- hostile entries are misses ---------------------------------------------------------


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_a_pickle_payload_is_never_loaded(cache, tmp_path, parses):
    import pickle  # the test builds one; the engine never reads one

    path, entry, _ = cached_once(cache, tmp_path)
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Payload(marker))
    entry.write_bytes(payload)
    entry.with_suffix(".pickle").write_bytes(payload)  # where the old engine looked
    assert value(path) == "1"
    assert not marker.exists()
    assert len(parses) == 2


@pytest.mark.parametrize("tag", ["os.system", "Function", "__import__", "sin", "Symbol", "", ["Add"], None, 3])
def test_an_unknown_tag_is_a_miss(cache, tmp_path, parses, tag):
    path, entry, doc = cached_once(cache, tmp_path, "w = x + 1\n")
    nodes = doc["file"]["nodes"]
    add = next(n for n in nodes if n[0] == "Add")
    add[0] = tag
    put(entry, doc)
    assert value(path) == "x + 1"
    assert len(parses) == 2


def _pop(obj, key):
    obj.pop(key)


def _mutations():
    def nodes(doc):
        return doc["file"]["nodes"]

    def rule(doc):
        return doc["file"]["rules"][0]

    def add(doc):
        return next(n for n in nodes(doc) if n[0] == "Add")

    return {
        "not an object": lambda d: [d],
        "extra key": lambda d: d.update(extra=1),
        "missing file": lambda d: _pop(d, "file"),
        "nodes not a list": lambda d: d["file"].update(nodes={"0": ["Sym", "x"]}),
        "node not a list": lambda d: nodes(d).__setitem__(0, "x"),
        "empty node": lambda d: nodes(d).__setitem__(0, []),
        "index out of range": lambda d: add(d).__setitem__(1, 99),
        "negative index": lambda d: add(d).__setitem__(1, -1),
        "forward index": lambda d: add(d).__setitem__(1, len(nodes(d)) - 1),
        "bool index": lambda d: add(d).__setitem__(1, True),
        "float index": lambda d: add(d).__setitem__(1, 0.0),
        "too few arguments": lambda d: add(d).__delitem__(slice(2, None)),
        "a condition in a sum": lambda d: nodes(d).insert(0, ["true"]) or _shift(d) or add(d).__setitem__(1, 0),
        "float number": lambda d: nodes(d).__setitem__(_int_node(d), ["Int", 1.0]),
        "number as text": lambda d: nodes(d).__setitem__(_int_node(d), ["Int", "1.0"]),
        "unicode digits": lambda d: nodes(d).__setitem__(_int_node(d), ["Int", "\u0661"]),
        "rational over zero": lambda d: nodes(d).__setitem__(_int_node(d), ["Q", 1, 0]),
        "symbol without a name": lambda d: nodes(d).__setitem__(_sym_node(d), ["Sym"]),
        "symbol named by a number": lambda d: nodes(d).__setitem__(_sym_node(d), ["Sym", 3]),
        "rule missing a field": lambda d: _pop(rule(d), "doc"),
        "rule with an unknown kind": lambda d: rule(d).update(kind="code"),
        "expr out of range": lambda d: rule(d).update(expr=1000),
        "expr as text": lambda d: rule(d).update(expr="x + 1"),
        "location too short": lambda d: rule(d).update(location=[None]),
        "line as text": lambda d: rule(d)["location"].__setitem__(1, "1"),
        "aliases not strings": lambda d: rule(d).update(aliases=[1]),
        "other builtin flag": lambda d: rule(d).update(builtin=True),
        "a rule among requirements": lambda d: d["file"]["requirements"].append(rule(d)),
        "other path": lambda d: d["file"].update(path="other.formula"),
        "wrong version": lambda d: d.update(version=cache_format.VERSION + 1),
        "version as text": lambda d: d.update(version=str(cache_format.VERSION)),
        "wrong format": lambda d: d.update(format="pickle"),
        "other key": lambda d: d.update(key="0" * 64),
        "other source hash": lambda d: d.update(source="0" * 64),
        "other engine": lambda d: d.update(engine="0" * 64),
    }


def _int_node(doc):
    return next(i for i, n in enumerate(doc["file"]["nodes"]) if n[0] == "Int")


def _sym_node(doc):
    return next(i for i, n in enumerate(doc["file"]["nodes"]) if n[0] == "Sym")


def _shift(doc):
    """Every reference +1 after a node was put in front."""
    for node in doc["file"]["nodes"][1:]:
        if node[0] in INNER:
            node[1:] = [i + 1 for i in node[1:]]
    for rule in doc["file"]["rules"]:
        if rule["expr"] is not None:
            rule["expr"] += 1


@pytest.mark.parametrize("name", sorted(_mutations()))
def test_a_wrong_shape_is_a_miss(cache, tmp_path, parses, name):
    path, entry, doc = cached_once(cache, tmp_path, "w = x + 1\n")
    changed = _mutations()[name](doc)
    put(entry, changed if changed is not None else doc)
    assert value(path) == "x + 1"
    assert len(parses) == 2
    assert value(path) == "x + 1" and len(parses) == 2  # and the entry was written again


def test_nan_and_infinity_literals_are_a_miss(cache, tmp_path, parses):
    path, entry, doc = cached_once(cache, tmp_path)
    text = json.dumps(doc).replace('["Int", 1]', '["Int", NaN]')
    assert "NaN" in text
    put(entry, text)
    assert value(path) == "1" and len(parses) == 2


def test_an_entry_under_another_key_does_not_change_the_answer(cache, tmp_path):
    one = write(tmp_path, "w = 1\n", "one.formula")
    two = write(tmp_path, "w = 2\n", "two.formula")
    assert value(one, "one.formula") == "1"
    (entry_one,) = cache.glob("*.json")
    assert value(two, "two.formula") == "2"
    (entry_two,) = set(cache.glob("*.json")) - {entry_one}
    entry_two.write_bytes(entry_one.read_bytes())  # numbers of one file under the other's key
    assert value(two, "two.formula") == "2"
    # and the same bytes read as another path (or as built-in) are another entry
    assert library._cached(one, "elsewhere.formula", False).rules[0].location.path == "elsewhere.formula"
    assert library._cached(one, "one.formula", True).rules[0].builtin is True


def test_an_entry_over_the_size_bound_is_a_miss(cache, tmp_path, parses, monkeypatch):
    path, entry, _ = cached_once(cache, tmp_path)
    monkeypatch.setattr(cache_format, "MAX_ENTRY_BYTES", entry.stat().st_size - 1)
    assert value(path) == "1"
    assert len(parses) == 2
    monkeypatch.setattr(cache_format, "MAX_ENTRY_BYTES", 64 * 2**20)
    with open(entry, "r+b") as fh:  # sparse: 64 MiB and a byte, a valid entry at its start
        fh.seek(cache_format.MAX_ENTRY_BYTES)
        fh.write(b" ")
    assert value(path) == "1"
    assert len(parses) == 3


def test_a_deep_entry_is_a_miss_not_a_crash(cache, tmp_path, parses):
    path, entry, doc = cached_once(cache, tmp_path, "w = x + 1\n")
    depth = 100_000
    nodes = [["Sym", "x"]] + [["Not", i] for i in range(depth)]
    doc["file"]["nodes"] = nodes
    doc["file"]["rules"][0]["expr"] = depth
    put(entry, doc)
    same = library._cached(path, "mine.formula", False).rules[0].expr == Symbol("x") + 1
    assert same  # (not the expression itself: pytest would print it)
    # nesting the JSON itself
    put(entry, "[" * 200_000 + "]" * 200_000)
    assert value(path) == "x + 1"
    assert len(parses) == 3


def test_a_shared_node_bomb_is_a_miss(cache, tmp_path, parses):
    path, entry, doc = cached_once(cache, tmp_path, "w = x + 1\n")
    nodes = [["Sym", "x"]] + [["Add", i, i] for i in range(100)]  # a tree of 2^100 nodes
    doc["file"]["nodes"] = nodes
    doc["file"]["rules"][0]["expr"] = 100
    put(entry, doc)
    same = library._cached(path, "mine.formula", False).rules[0].expr == Symbol("x") + 1
    assert same  # (not the expression itself: printing it would not end)
    assert len(parses) == 2


def test_the_cache_is_trusted_only_as_far_as_it_is_checked(cache, tmp_path, parses):
    """The counterpart of the tests above: a well-formed entry with matching metadata is
    used as it is (the directory is private to the user), so the mutations really are
    what made those entries misses."""
    path, entry, doc = cached_once(cache, tmp_path)
    n = _int_node(doc)
    doc["file"]["nodes"][n] = ["Int", 7]
    put(entry, doc)
    assert value(path) == "7"
    assert len(parses) == 1


# --- files and links --------------------------------------------------------------------


def _forged(cache, tmp_path):
    """A valid entry for 'w = 1' that says 7: a hit on it would show."""
    path, entry, doc = cached_once(cache, tmp_path)
    doc["file"]["nodes"][_int_node(doc)] = ["Int", 7]
    return path, entry, json.dumps(doc)


def test_a_link_at_the_entry_name_is_not_followed(cache, tmp_path, parses):
    path, entry, forged = _forged(cache, tmp_path)
    target = tmp_path / "target.json"
    target.write_text(forged)
    entry.unlink()
    entry.symlink_to(target)
    assert value(path) == "1"  # not read through the link
    assert len(parses) == 2
    assert target.read_text() == forged  # not written through it either
    assert not entry.is_symlink() and json.loads(entry.read_text())["format"] == cache_format.FORMAT


def test_a_link_at_the_temporary_name_is_not_followed(cache, tmp_path, monkeypatch):
    cache.mkdir(mode=0o700)
    precious = tmp_path / "precious"
    precious.write_text("keep me")
    (cache / "planted.tmp").symlink_to(precious)
    monkeypatch.setattr(cache_format, "_temp_name", lambda key: "planted.tmp")
    assert value(write(tmp_path)) == "1"
    assert precious.read_text() == "keep me"
    assert (cache / "planted.tmp").is_symlink()
    assert not list(cache.glob("*.json"))


def test_a_fifo_at_the_entry_name_does_not_hang(cache, tmp_path, parses):
    path, entry, _ = cached_once(cache, tmp_path)
    entry.unlink()
    os.mkfifo(entry)

    def unblock():  # should the open block, free it so the test fails instead of hanging
        try:
            os.close(os.open(entry, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass

    timer = threading.Timer(5, unblock)
    timer.start()
    start = time.monotonic()
    try:
        assert value(path) == "1"
    finally:
        timer.cancel()
    assert time.monotonic() - start < 4
    assert len(parses) == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")
def test_an_entry_owned_by_someone_else_is_not_read(cache, tmp_path, parses):
    path, entry, forged = _forged(cache, tmp_path)
    entry.write_text(forged)
    os.chown(entry, 65534, -1)
    assert value(path) == "1"
    assert len(parses) == 2


def _planted(tmp_path, monkeypatch, mode=0o700):
    """A directory holding a forged entry for 'w = 1' (says 7), and a file that has it cached there."""
    real = tmp_path / "real"
    monkeypatch.setenv("VRAM_EVAL_CACHE", str(real))
    path, entry, forged = _forged(real, tmp_path)
    entry.write_text(forged)
    real.chmod(mode)
    return real, path


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702, 0o1777])
def test_a_group_or_world_writable_directory_is_not_used(cache, tmp_path, parses, monkeypatch, mode):
    real, path = _planted(tmp_path, monkeypatch, mode)
    before = sorted(p.name for p in real.iterdir())
    assert value(path) == "1"
    assert len(parses) == 2
    other = write(tmp_path, "w = 3\n", "other.formula")
    assert value(other, "other.formula") == "3"
    assert sorted(p.name for p in real.iterdir()) == before  # nothing written there


def test_a_linked_directory_is_not_used(cache, tmp_path, parses, monkeypatch):
    real, path = _planted(tmp_path, monkeypatch)
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    monkeypatch.setenv("VRAM_EVAL_CACHE", str(link))
    before = sorted(p.name for p in real.iterdir())
    assert value(path) == "1"
    assert len(parses) == 2
    assert sorted(p.name for p in real.iterdir()) == before


@pytest.mark.parametrize("how", ["chown", "geteuid"])
def test_a_directory_owned_by_someone_else_is_not_used(cache, tmp_path, parses, monkeypatch, how):
    real, path = _planted(tmp_path, monkeypatch)
    before = sorted(p.name for p in real.iterdir())
    if how == "chown":
        if os.geteuid() != 0:
            pytest.skip("giving a directory away needs root")
        os.chown(real, 65534, -1)
    else:
        uid = os.geteuid()
        monkeypatch.setattr(os, "geteuid", lambda: uid + 1)
    assert value(path) == "1"
    assert len(parses) == 2
    assert sorted(p.name for p in real.iterdir()) == before


def test_a_file_where_the_directory_should_be_turns_the_cache_off(cache, tmp_path):
    cache.write_text("not a directory")
    assert value(write(tmp_path)) == "1"
    assert cache.read_text() == "not a directory"


# --- no code in the cache's path ----------------------------------------------------------


def test_the_engine_never_imports_a_code_loading_serializer():
    pattern = re.compile(r"^\s*(import|from)\s+(pickle|cPickle|_pickle|marshal|shelve|dill|cloudpickle)\b", re.M)
    sources = sorted((ROOT / "engine").rglob("*.py"))
    assert sources
    assert [p.name for p in sources if pattern.search(p.read_text())] == []


@pytest.mark.parametrize("module, seen", [("cache.py", "checked"), ("nodes.py", "INNER"), ("nodes_sympy.py", "Symbol")])
def test_the_modules_that_read_entries_name_no_evaluating_call(module, seen):
    banned = {"eval", "exec", "compile", "getattr", "__import__", "importlib", "import_module", "sympify",
              "parse_expr", "pickle", "marshal"}
    path = ROOT / "engine" / module
    with open(path, "rb") as fh:
        names = {tok.string for tok in tokenize.tokenize(fh.readline) if tok.type == tokenize.NAME}
    assert seen in names  # the scan sees the code
    assert names & banned == set()
    assert not re.search(r"\bS\(", path.read_text())  # S("...") would parse text
