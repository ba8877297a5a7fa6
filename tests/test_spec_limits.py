"""Hostile spec input (issue 9): every bad file, value or --set ends in exit status 2 and one
located paragraph on stderr — never a traceback, a hang or a silent wrong number.

Each row is one behaviour: (file name, content, words the message must contain, line).
The line is where the problem is (None: the file as a whole, no line to point at)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import socket
import stat
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vram_eval import spec as spec_module
from vram_eval import spec_file, spec_yaml

from conftest import evaluate, scratch_dir, value

MODEL = 'arch = "llama"\n[model]\nh = 4096\nL = 32\na = 32\nf = 11008\nV = 32000\n'
LLAMA = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
         "intermediate_size": 11008, "vocab_size": 32000, "max_position_embeddings": 4096}


def config(**changes) -> str:
    """A config.json (one key a line) with ``changes``; a value of ... drops the key."""
    data = dict(LLAMA, **changes)
    return json.dumps({k: v for k, v in data.items() if v is not ...}, indent=1)


def config_raw(extra: str) -> str:
    """A config.json whose last line is ``extra`` as written (JSON that json.dumps would not write)."""
    return config()[:-2] + ",\n " + extra + "\n}"


def _bomb(levels: int = 9) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + f"\nlora_targets: *l{levels - 1}\n"


LONG = 5000 * "1"

# (file name, content, words, line)
ROWS = [
    # --- size: files, lines, keys, nesting ---
    ("huge.toml", 'x = "' + "a" * (10 * 2**20) + '"\n', "larger than 256 KiB", None),
    ("just-too-large.json", "{}" + " " * (256 * 1024), "larger than 256 KiB", None),
    ("longline.toml", 'x = "' + "a" * (100 * 1024) + '"\n', "longer than 64 KiB", 1),
    ("lines.toml", "#\n" * 100_000, "more than 10,000 lines", 10_001),
    ("lines.yaml", "#\n" * 100_000, "more than 10,000 lines", 10_001),
    ("keys.toml", "".join(f"k{i} = {i}\n" for i in range(10_000)), "more than 1,000 keys", 1001),
    ("keys.yaml", "".join(f"k{i}: {i}\n" for i in range(10_000)), "more than 1,000 keys", 1001),
    ("keys.json", json.dumps({f"k{i}": i for i in range(2000)}, indent=0), "more than 1,000 keys", 1002),
    ("inline-keys.toml", "x = {" + ", ".join(f"k{i} = 1" for i in range(1500)) + "}\n", "more than 1,000 keys", 1),
    ("list.toml", "lora_targets = [" + ", ".join(['"q"'] * 2000) + "]\n", "more than 1,000 keys and list items", 1),
    ("unknown.toml", "".join(f"k{i} = {i}\n" for i in range(900)), "unknown key 'k0'", 1),
    ("bomb.yaml", _bomb(), "more than 1,000 keys and list items", 4),  # l3 expands to 9^4 items
    ("bomb-maps.yaml", "a: &a {x: [1, 2, 3, 4, 5, 6, 7, 8, 9]}\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
     "more than 1,000 keys and list items", 3),
    ("recursive.yaml", "lora_targets: &a [*a]\n", "nested more than 32 levels", 1),
    ("deep-flow.yaml", "x: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 32 levels", 1),
    ("deep-block.yaml", "".join(" " * i + f"k{i}:\n" for i in range(40)) + " " * 40 + "x: 1\n",
     "nested more than 32 levels", 33),
    ("deep.toml", "x = " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 32 levels", 1),
    ("deep-inline.toml", "x = " + "{a = " * 40 + "1" + "}" * 40 + "\n", "nested more than 32 levels", 1),
    ("deep-header.toml", "h = 1\n[" + ".".join(["t"] * 40) + "]\nx = 1\n", "nested more than 32 levels", 2),
    ("deep.json", config_raw('"x": ' + "[" * 5000 + "]" * 5000), "nested more than 32 levels", 9),
    ("deep-ignored.json", config_raw('"x": ' + "[" * 40 + "]" * 40), "nested more than 32 levels", 9),
    # --- numbers ---
    ("inf.toml", "arch = \"llama\"\nh = inf\n", "inf is not a finite number", 2),
    ("neg-inf.toml", "h = -inf\n", "-inf is not a finite number", 1),
    ("nan.toml", "\nh = nan\n", "nan is not a finite number", 2),
    ("float-overflow.toml", "h = 1e400\n", "1e400 is not a finite number", 1),
    ("huge-float.toml", "h = 1e300\n", "out of range", 1),
    ("huge-int.toml", "h = 1" + "0" * 31 + "\n", "out of range", 1),
    ("digits-toml.toml", "\nh = " + LONG + "\n", "integer is too long", 2),
    ("digits-500.toml", "h = " + "1" * 500 + "\n", "500-digit number is out of range", 1),
    ("string-1e400.toml", 'gpu_memory = "1e400GiB"\n', "limited to 10^30", 1),
    ("string-1e999.toml", 'gpu_memory = "1e999GiB"\n', "exponents are limited to ±400", 1),
    ("string-inf.toml", 'h = "inf"\n', "not a finite number", 1),
    ("fullwidth.toml", 'h = "１２８"\n', "is not a count", 1),
    ("arabic.yaml", 'h: "١٢٨"\n', "is not a count", 1),
    ("fullwidth-memory.toml", 'gpu_memory = "２４GiB"\n', "is not a memory size", 1),
    ("inf.yaml", "h: .inf\n", ".inf is not a finite number", 1),
    ("neg-inf.yaml", "model:\n  h: -.inf\n", "-.inf is not a finite number", 2),
    ("nan.yaml", "h: .NaN\n", "is not a finite number", 1),
    ("float-overflow.yaml", "h: 1.0e+400\n", "not a finite number", 1),
    ("digits.yaml", "h: " + LONG + "\n", "longer than 400 digits", 1),
    ("inf.json", config_raw('"head_dim": Infinity'), "Infinity is not a finite number", 9),
    ("neg-inf.json", config_raw('"head_dim": -Infinity'), "-Infinity is not a finite number", 9),
    ("nan.json", config_raw('"head_dim": NaN'), "NaN is not a finite number", 9),
    ("float-overflow.json", config_raw('"head_dim": 1e400'), "1e400 is not a finite number", 9),
    ("digits.json", config_raw('"head_dim": ' + LONG), "longer than 400 digits", 9),
    ("huge.json", config_raw('"head_dim": 1e31'), "out of range", 9),
    # --- types where they enter ---
    ("kv-half.toml", MODEL + "kv_heads = 0.5\n", "a count is a whole number, at least 0, not 0.5", 8),
    ("experts.toml", "experts = 2.5\n", "a count is a whole number", 1),
    ("experts-per-token.toml", "experts_per_token = 1.5\n", "a count is a whole number", 1),
    ("count-string.toml", 'L = "1.5K5"\n', "is not a count", 1),
    ("negative-count.toml", "L = -2\n", "a count is a whole number, at least 0", 1),
    ("negative-bytes.toml", 'overhead = "-5GiB"\n', "a memory size cannot be negative", 1),
    ("negative-bytes-number.toml", "overhead = -1\n", "a memory size cannot be negative", 1),
    ("ratio-nan.toml", 'lora_dropout = "nan"\n', "not a finite number", 1),
    ("bool-yes.toml", 'flash_attention = "yes"\n', "expects true or false, not 'yes'", 1),
    ("bool-quoted.toml", 'flash_attention = "true"\n', "expects true or false, not 'true'", 1),
    ("bool-number.toml", "flash_attention = 1\n", "expects true or false", 1),
    ("bool-yes.yaml", 'flash_attention: "yes"\n', "expects true or false", 1),
    ("bool-yes.json", config(tie_word_embeddings="yes"), "expects true or false, not 'yes'", 9),
    ("date.toml", "h = 1979-05-27\n", "not a date or time", 1),
    ("table-value.yaml", "lora_targets: [{a: 1}]\n", "list items must be strings, not a table", 1),
    # --- duplicate keys, with the line of the second ---
    ("dup.toml", "h = 1\nh = 2\n", "TOML syntax", 2),
    ("dup.yaml", "h: 1\nL: 2\nh: 2\n", "'h' is set twice in one mapping", 3),
    ("dup-flow.yaml", "model: {h: 1, h: 2}\n", "'h' is set twice in one mapping", 1),
    ("dup-nested.yaml", "model:\n  h: 1\n  a: 2\n  h: 3\n", "'h' is set twice", 4),
    ("dup-sections.yaml", "model:\n  h: 1\nother:\n  h: 2\n", "'h' is set twice: as model.h and as other.h", 4),
    ("dup.json", config()[:-2] + ',\n "hidden_size": 5120\n}', '"hidden_size" is set twice', 9),
    ("dup-nested.json", config_raw('"rope_scaling": {"factor": 8.0,\n "factor": 4.0}'), '"factor" is set twice', 10),
    # --- config.json ---
    ("no-model-type.json", config(model_type=...), 'no "model_type"', 1),
    ("model-type-number.json", config(model_type=5), '"model_type" must be a string', 2),
    ("list-value.json", config(hidden_size=[4096]), "not a list", 3),
    ("dict-value.json", config(hidden_size={"a": 1}), "not a table", 3),
    ("minified.json", json.dumps(dict(LLAMA, num_hidden_layers="32.5")), "a count is a whole number", 1),
    ("not-an-object.json", "[1, 2]", "must be a JSON object", 1),
    # --- syntax errors and keys always have a line ---
    ("end-of-document.toml", "name = \"x\"\nh = \n", "TOML syntax: invalid value", 2),
    ("unterminated.toml", 'h = 1\nx = """abc\n', "TOML syntax: unterminated string", 2),
    ("header.toml", "h = 1\n[model", "TOML syntax", 2),
    ("escape.toml", 'x = "\\q"\n', "TOML syntax", 1),
    ("control.toml", "x = 1\x00\n", "TOML syntax", 1),
    ("dotted.toml", "h = 1\nmodel.hiden = 1\n", "unknown key 'hiden'", 2),
    ("quoted.toml", 'h = 1\n"hiden" = 1\n', "unknown key 'hiden'", 2),
    ("inline.toml", "h = 1\nmodel = { a = 1, hiden = 2 }\n", "unknown key 'hiden'", 2),
    ("table.toml", "[a]\nhiden = 1\n[b]\nx = 1\n", "unknown key 'hiden'", 2),
    ("array-of-tables.toml", "name = 'x'\n[[h]]\nx = 1\n", "not a list", 2),
    ("flow.yaml", "h: 1\nmodel: {a: 1, hiden: 2}\n", "unknown key 'hiden'", 2),
    ("yaml-tab.yaml", "h:\n\t- 1\n", "YAML syntax", 2),
    ("yaml-python.yaml", "h: !!python/object:os.system x\n", "YAML syntax", 1),
    ("yaml-two-docs.yaml", "h: 1\n---\nh: 2\n", "YAML syntax", 2),
    ("json-trailing-comma.json", '{"model_type": "llama",\n "hidden_size": 4096,\n}', "JSON syntax", 3),
    ("bom.toml", "\ufeff" + "hiden = 1\n", "unknown key 'hiden'", 1),
    ("long-string.toml", 'h = 1\narch = "' + "x" * 5000 + '"\n', "values are limited to 1,000", 2),
    ("long-string-list.yaml", "lora_targets: [q, " + "v" * 2000 + "]\n", "values are limited to 1,000", 1),
    # --- strings that would reach the terminal ---
    ("escape-name.json", config_raw('"_name_or_path": "\\u001b[2J"'), "U+001B, which a spec may not contain", 9),
    ("surrogate-name.json", config_raw('"_name_or_path": "\\ud800"'), "U+D800", 9),
    ("escape-name.yaml", 'h: 1\nname: "\\e[31mred"\n', "U+001B", 2),
    ("escape-value.toml", 'activation_function = "gelu\\u001b[2J"\n', "U+001B", 1),
    ("escape-key.yaml", '"\\e[31m": 1\n', "unknown key '\\x1b[31m'", 1),
]


def _write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@contextlib.contextmanager
def _deadline(seconds: float):
    """Fail (rather than hang) if the body takes longer than ``seconds``."""
    if not hasattr(signal, "setitimer"):  # pragma: no cover - Windows
        yield
        return

    def expired(*_):
        raise TimeoutError(f"took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _assert_located(status, err, path, words, line):
    assert status == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert words in err, err
    head = err.splitlines()[0]
    if line is None:
        assert head.startswith(f"{path}: error: "), err
    else:
        assert re.match(rf"{re.escape(str(path))}:{line}:\d+: error: ", head), err
    assert err.count("\n") < 12, err  # one paragraph
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", err), repr(err)  # no control characters reach the terminal


@pytest.mark.parametrize("name, content, words, line", ROWS, ids=[r[0] for r in ROWS])
def test_hostile_spec_is_a_located_error(cli, tmp_path, name, content, words, line):
    path = _write(tmp_path, name, content)
    start = time.monotonic()
    with _deadline(20):
        status, out, err = cli(path)
    assert time.monotonic() - start < 10, "far slower than the bounds allow"
    _assert_located(status, err, path, words, line)


def _fifo(tmp_path):
    path = tmp_path / "fifo.toml"
    os.mkfifo(path)
    return path


def _socket(tmp_path):
    path = tmp_path / "socket.toml"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    return path


SPECIAL = [
    (_fifo, "named pipe (FIFO), not a spec file"),
    (_socket, "socket, not a spec file"),
    (lambda _: "/dev/zero", "character device, not a spec file"),
    (lambda _: "/dev/null", "character device, not a spec file"),
]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX files")
@pytest.mark.parametrize("make, words", SPECIAL, ids=["fifo", "socket", "dev-zero", "dev-null"])
def test_files_that_are_not_files_are_refused_before_reading(cli, tmp_path, make, words):
    if len(str(tmp_path / "socket.toml")) > 100:
        pytest.skip("socket path too long for AF_UNIX")
    path = make(tmp_path)
    with _deadline(20):  # a FIFO opened for reading without a writer would block forever
        status, out, err = cli(path)
    _assert_located(status, err, path, words, None)


def test_dev_stdin_is_refused_unless_it_is_a_file(cli):
    if not os.path.exists("/dev/stdin") or stat.S_ISREG(os.stat("/dev/stdin").st_mode):
        pytest.skip("/dev/stdin is a regular file here")
    with _deadline(20):
        status, out, err = cli("/dev/stdin")
    _assert_located(status, err, "/dev/stdin", "not a spec file", None)


def test_a_file_growing_past_the_bound_is_read_no_further(tmp_path, monkeypatch):
    path = _write(tmp_path, "m.toml", "h = 1\n" * 100)
    monkeypatch.setattr(spec_file, "MAX_BYTES", 64)
    with pytest.raises(spec_module.SpecError, match="larger than"):
        spec_module.load_spec(str(path))


# (--set text, words, column the caret points at)
SETS = [
    ("h=inf", "'inf' is not a finite number", 3),
    ("s=1e400", "limited to 10^30", 3),
    ("s=1e401", "exponents are limited to ±400", 3),
    ("gpu_memory=1e400GiB", "limited to 10^30", 12),
    ("b=１２", "write numbers with the ASCII digits 0-9", 3),
    ("b=١٢", "is not a count", 3),
    ("x=", "needs a value", 3),
    ("=3", "needs a name", 1),
    ("flash_attention=yes", "expects true or false, not 'yes'", 17),
    ("flash_attention=1", "expects true or false", 17),
    ("kv_heads=0.5", "a count is a whole number", 10),
    ("overhead=-5GiB", "a memory size cannot be negative", 10),
    ("h= 4096.5", "a count is a whole number", 4),
    ("s=" + "9" * 500, "limited to 400 digits", 3),
    ("activation_function=\x1b[2J", "U+001B", 21),
    ("weight_dtype=" + "x" * 2000, "values are limited to 1,000", 14),
]


@pytest.mark.parametrize("text, words, column", SETS, ids=[s[0][:30] for s in SETS])
def test_bad_set_values_are_located_on_the_command_line(cli, text, words, column):
    status, out, err = cli("specs/llama2-7b.toml", "--set", text)
    assert status == 2 and "Traceback" not in err, err
    assert words in err, err
    assert err.startswith("--set: error: "), err
    caret = err.splitlines()[2]
    assert caret.index("^") - 4 == column - 1, err


# A control character in a value a message quotes is shown escaped, as Python writes it in a string:
# the message about a variant selector's value (arch = "\r" is not one of: gpt, llama) printed a raw
# carriage return, which moved the terminal's cursor back over the line.
CONTROL = [("\r", r"\r"), ("\n", r"\n"), ("\t", r"\t"), ("\x1b", r"\x1b"), ("\x00", r"\x00")]
RAW = re.compile("[\x00-\x1f\x7f-\x9f]")


@pytest.mark.parametrize("character, shown", CONTROL, ids=[c[1] for c in CONTROL])
def test_a_variant_value_with_a_control_character_is_quoted_escaped(character, shown):
    from vram_eval.errors import InvalidValue, SpecError
    from vram_eval.library import Library

    with pytest.raises(InvalidValue[SpecError]) as info:
        Library([]).ruleset({"arch": f"ll{character}ama"})
    error = info.value
    assert error.message.startswith(f'arch = "ll{shown}ama" is not one of: '), error.message
    assert not RAW.search(error.message) and not RAW.search(error.render().replace("\n", ""))
    assert error.value == f"ll{character}ama"  # the fact is the value itself


@pytest.mark.parametrize("character, shown", CONTROL[:3], ids=[c[1] for c in CONTROL[:3]])
@pytest.mark.parametrize("how", ["spec", "--set"])
def test_a_control_character_a_spec_may_hold_reaches_the_terminal_escaped(cli, tmp_path, character, shown, how):
    if how == "spec":
        path = tmp_path / "s.toml"
        path.write_text(f"arch = {json.dumps('ll' + character + 'ama')}\n", newline="")
        status, out, err = cli(path)
    else:
        status, out, err = cli("specs/llama2-7b.toml", "--set", f"arch=ll{character}ama")
    assert status == 2 and "Traceback" not in err, err
    assert f'error: arch = "ll{shown}ama" is not one of: gpt, llama' in err, repr(err)
    assert not RAW.search(err.replace("\n", "")), repr(err)


@pytest.mark.parametrize("spelling, expected", [("true", True), ("TRUE", True), ("False", False), ("false", False)])
def test_set_booleans_take_the_documented_spellings_in_any_case(spelling, expected):
    result = evaluate(None, f"flash_attention={spelling}")
    assert bool(result["flash_attention"]) is expected


def test_config_json_keys_override_the_model_type_defaults(tmp_path):
    """Llama-3.2-1B says "tie_word_embeddings": true; LlamaConfig's default is false."""
    untied = value(evaluate(_write(tmp_path, "untied.json", config())), "params")
    tied = value(evaluate(_write(tmp_path, "tied.json", config(tie_word_embeddings=True))), "params")
    assert untied - tied == 32000 * 4096  # the LM head is the embedding


def test_yaml_merge_keys_may_be_overridden_as_yaml_says():
    text = "x: &b {h: 1, a: 2}\ny:\n  <<: *b\n  h: 3\n"
    tree, locate = spec_yaml._read_yaml(spec_file._Lines("m.yaml", text))
    assert tree["y"] == {"h": 3, "a": 2}
    assert locate(tree["y"], ("y",), "h").line == 4


def test_bounds_hold_for_valid_specs_just_inside_them(tmp_path):
    """The bounds refuse nothing a real spec needs: 1,000 keys, 32 levels, 10^30, 400 digits."""
    keys = "".join(f"k{i} = {i}\n" for i in range(999)) + "h = 1\n"
    spec = spec_module.load_spec(str(_write(tmp_path, "ok.toml", keys)))
    assert len(spec.entries) == 1000
    deep = spec_module.load_spec(str(_write(tmp_path, "deep.json", config_raw('"x": ' + "[" * 31 + "]" * 31))))
    assert deep.entries
    result = evaluate(None, "gpu_memory=1e30", "h=1" + "0" * 29)
    assert value(result, "gpu_memory") == 10**30


def test_valid_specs_read_as_before(tmp_path):
    assert value(evaluate(_write(tmp_path, "m.toml", MODEL)), "params") == 6_738_415_616
    text = "arch: llama\nmodel: {h: 4096, L: 32, a: 32, f: 11008, V: 32000}\n"
    assert value(evaluate(_write(tmp_path, "m.yaml", text)), "params") == 6_738_415_616
    assert value(evaluate(_write(tmp_path, "m.json", config())), "params") == 6_738_415_616


# ---------------------------------------------------------------------------
# property: any text given as a spec ends in exit 0 or 2, never a traceback


def _run(name: str, content: str):
    from vram_eval.cli import main

    with scratch_dir() as tmp:
        path = os.path.join(tmp, name)
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as fh:
            fh.write(content)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main([path, "--format", "json"])
    return status, err.getvalue()


KEYS = st.sampled_from(["h", "L", "a", "V", "f", "s", "b", "kv_heads", "experts", "flash_attention", "overhead",
                        "gpu_memory", "weight_dtype", "lora_targets", "arch", "model", "name", "hidden_size",
                        "num_hidden_layers", "model_type", "tie_word_embeddings", "x"]) | st.text(max_size=8)
SCALARS = (st.none() | st.booleans() | st.integers(-10**40, 10**40) | st.floats(allow_nan=True)
           | st.text(max_size=12) | st.sampled_from(["24GiB", "13B", "llama", "inf", "-1", "0.5", "１２"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
                      max_leaves=12)
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)) | st.sampled_from(list('[]{}=:,."\'#\n -0123')),
               max_size=200)

PROPERTY = settings(max_examples=60, deadline=3000, suppress_health_check=[HealthCheck.too_slow], database=None)


def _ok(status, err):
    assert status in (0, 2), err
    assert "Traceback" not in err and "internal error" not in err, err
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", err), repr(err)  # nothing reaches the terminal raw


@PROPERTY
@given(text=TEXT, suffix=st.sampled_from([".toml", ".yaml", ".json"]))
def test_any_text_as_a_spec_is_an_answer_or_a_located_error(text, suffix):
    _ok(*_run("spec" + suffix, text))


@PROPERTY
@given(tree=st.dictionaries(KEYS, VALUES, max_size=6))
def test_any_json_object_as_a_config_is_an_answer_or_a_located_error(tree):
    _ok(*_run("config.json", json.dumps(tree)))


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if v is None or (isinstance(v, dict)):
        return '"none"' if v is None else "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, float):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(repr(v), repr(v))
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(v)


@PROPERTY
@given(tree=st.dictionaries(KEYS, VALUES, max_size=6))
def test_any_toml_or_yaml_tree_as_a_spec_is_an_answer_or_a_located_error(tree):
    import yaml

    toml = "".join(f"{json.dumps(k)} = {_toml_value(v)}\n" for k, v in tree.items())
    _ok(*_run("spec.toml", toml))
    _ok(*_run("spec.yaml", yaml.safe_dump(tree, allow_unicode=True)))


def test_units_refuse_what_no_input_can_be_and_print_what_the_formulas_can():
    from vram_eval.units import NumberTooLarge, format_bytes, format_number, parse_number, parse_quantity

    with pytest.raises(NumberTooLarge, match=r"10\^30"):
        parse_quantity("1e400GiB")
    with pytest.raises(NumberTooLarge, match="±400"):
        parse_quantity("1e401")
    assert parse_quantity("１２８") is None and parse_number("١٢٨") is None and parse_quantity("２４GiB") is None
    assert parse_quantity("1e30") == (10**30, None)
    assert parse_number("1e400") == 10**400  # formula literals keep their own bound (±400)
    assert format_bytes(2**5000) == "1.32e+1496 GiB"  # no float overflow in reports
    assert format_number(10**5000) == "1e+5000"
    assert format_bytes(26e9) == "24.21 GiB"
