"""The command line contract: forms, JSON shape, exit codes, errors on stderr."""

import json
import os
import subprocess
import sys


from conftest import ROOT


def test_spec_is_short_for_eval(cli):
    assert cli("specs/llama13b.toml")[:2] == cli("eval", "specs/llama13b.toml")[:2]


def test_json_follows_the_design_schema(cli):
    status, out, err = cli("specs/llama13b.toml", "--format", "json")
    assert status == 0, err
    data = json.loads(out)
    assert {"spec", "inputs", "outputs", "units"} <= set(data)
    assert data["spec"] == "specs/llama13b.toml"
    assert data["outputs"]["params"] == 13_015_864_320
    assert data["outputs"]["weights"] == 26_031_728_640  # exact bytes, an integer
    assert data["units"]["weights"] == "bytes" and data["units"]["params"] == "count"
    assert data["inputs"]["h"] == 5120 and data["inputs"]["weight_dtype"] == "fp16"
    for name in ("params", "weights", "gradients", "optimizer_states", "activations", "kv_cache", "io_buffers",
                 "total_training", "total_lora", "total_qlora", "total_inference", "activations_per_layer",
                 "lora_params"):
        assert name in data["outputs"], name


def test_yaml_output(cli):
    import yaml

    status, out, _ = cli("specs/llama13b.toml", "--format", "yaml")
    assert status == 0 and yaml.safe_load(out)["outputs"]["params"] == 13_015_864_320


def test_units_gb(cli):
    status, out, _ = cli("specs/llama13b.toml", "--units", "GB")
    assert status == 0 and "GB (10^9 bytes)" in out and "26.03 GB" in out


def test_output_asks_for_one_value(cli):
    status, out, _ = cli("specs/llama13b.toml", "--output", "params")
    assert status == 0 and "13,015,864,320" in out and "weights" not in out


def test_asking_for_an_unavailable_output_names_the_missing_inputs(cli, tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text("b = 1\n")
    status, out, err = cli(spec, "--output", "params")
    assert status == 2 and "'params' cannot be computed" in err and "'h'" in err


def test_user_formulas_change_an_answer_without_python(cli, tmp_path):
    mine = tmp_path / "mine.formula"
    mine.write_text("# fp32 weights everywhere\nweight_bytes [bytes] = 4\n")
    status, out, err = cli("specs/llama13b.toml", "--formulas", mine, "--format", "json")
    assert status == 0, err
    data = json.loads(out)
    assert data["outputs"]["weights"] == 4 * 13_015_864_320
    assert data["overridden"][0]["name"] == "weight_bytes"
    status, out, _ = cli("specs/llama13b.toml", "--formulas", mine)
    assert "overridden by your formulas: weight_bytes" in out


def test_explain(cli):
    status, out, err = cli("explain", "kv_cache_per_token")
    assert status == 0, err
    assert "formulas/inference.formula" in out and "kv_heads" in out and "expanded" in out
    assert "bytes" in out


def test_explain_unknown_name_suggests(cli):
    status, _, err = cli("explain", "kv_cach")
    assert status == 2 and "did you mean 'kv_cache'" in err


def test_explain_list(cli):
    status, out, _ = cli("explain", "--list")
    assert status == 0 and "total_training" in out and "weight_dtype" in out


def test_check_builtin_formulas(cli):
    status, out, err = cli("check", "formulas")
    assert status == 0, err
    assert "ok" in out and "arch=llama" in out


def test_check_reports_every_broken_file(cli, tmp_path):
    (tmp_path / "a.formula").write_text("x = (1 +\n")
    (tmp_path / "b.formula").write_text("y = sqr(2)\n")
    status, out, err = cli("check", tmp_path)
    assert status == 2
    assert "a.formula:1:5" in err and "b.formula:1:5" in err and "FAILED (2 errors)" in out


def test_check_warns_about_inputs_no_spec_sets(cli, tmp_path):
    (tmp_path / "new.formula").write_text("input novel_input [count]\nextra = novel_input * 2\n")
    status, out, _ = cli("check", tmp_path)
    assert status == 0 and "'novel_input' has no default" in out


def test_check_fails_on_a_name_nothing_defines(cli, tmp_path):
    (tmp_path / "new.formula").write_text("extra = weigths * 2\n")
    status, out, err = cli("check", tmp_path)
    assert status == 2
    assert "new.formula:1:9: error: 'weigths' is not defined" in err and "did you mean 'weights'?" in err


def test_a_misspelt_name_in_a_user_formula_is_an_error_not_an_input(cli, tmp_path):
    mine = tmp_path / "mine.formula"
    mine.write_text("my_total [bytes] = weights +\n    weigths\n")
    status, _, err = cli("specs/llama2-7b.toml", "--formulas", mine)
    assert status == 2
    assert f"{mine}:2:5: error: 'weigths' is not defined" in err and "did you mean 'weights'?" in err


def test_a_name_the_spec_binds_may_stand_in_a_user_formula(cli, tmp_path):
    mine = tmp_path / "mine.formula"
    mine.write_text("my_total [bytes] = weights + extra_bytes\n")
    status, out, _ = cli("specs/llama2-7b.toml", "--formulas", mine, "--set", "extra_bytes=1", "--output", "my_total")
    assert status == 0 and "my_total" in out


def test_check_accepts_a_copy_of_the_builtin_formulas_beside_a_users_file(cli, tmp_path):
    import shutil

    shutil.copytree(ROOT / "formulas", tmp_path / "formulas")
    (tmp_path / "my.formula").write_text("input x [count] = 2\nmine [bytes] = weights * x\n")
    status, out, err = cli("check", tmp_path / "formulas", tmp_path / "my.formula")
    assert status == 0, err
    assert ": ok" in out


# Bad input of every kind: exit 2, a located paragraph on stderr, never a traceback.
def _bad_inputs(tmp_path):
    cases = {}
    junk = tmp_path / "junk.formula"
    junk.write_bytes(bytes(range(256)) * 4)
    cases["binary junk"] = ("specs/llama13b.toml", "--formulas", junk)
    long_line = tmp_path / "long.formula"
    long_line.write_text("x = " + "y" * 10_000_000 + " $\n")
    cases["10 MB line"] = ("specs/llama13b.toml", "--formulas", long_line)
    for name, text in {"unbalanced": "x = ((1 + 2)\n", "import": 'x = __import__("os").system("ls")\n',
                       "unknown function": "x = exec(1)\n"}.items():
        p = tmp_path / f"{name.replace(' ', '_')}.formula"
        p.write_text(text)
        cases[name] = ("specs/llama13b.toml", "--formulas", p)
    latin = tmp_path / "latin1.formula"
    latin.write_bytes(b"# caf\xe9\nx = 1\n")
    cases["non-UTF-8"] = ("specs/llama13b.toml", "--formulas", latin)
    cases["missing spec"] = (tmp_path / "nope.toml",)
    cases["missing formulas"] = ("specs/llama13b.toml", "--formulas", tmp_path / "nope.formula")
    cases["directory as spec"] = (tmp_path,)
    cases["bad --set"] = ("specs/llama13b.toml", "--set", "s")
    cases["unknown --set"] = ("specs/llama13b.toml", "--set", "hiden_size=3")
    cases["set junk value"] = ("specs/llama13b.toml", "--set", "s=lots")
    cases["unknown gpu"] = ("specs/llama13b.toml", "--gpu", "h1000")
    cases["explain junk"] = ("explain", "\x00\x01")
    return cases


def test_every_bad_input_gives_exit_2_and_a_located_message(cli, tmp_path):
    for name, args in _bad_inputs(tmp_path).items():
        status, out, err = cli(*args)
        assert status == 2, (name, err)
        assert "Traceback" not in err and "error:" in err, (name, err)
        assert err.count("\n") < 12, (name, err)


def test_usage_errors_exit_2(cli):
    assert cli("specs/llama13b.toml", "--format", "xml")[0] == 2
    assert cli()[0] == 2


def test_help_exits_0(cli):
    status, out, _ = cli("--help")
    assert status == 0 and "vram-eval" in out


def test_through_a_real_subprocess():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "vram_eval", "specs/llama13b.toml"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "LLaMA-13B" in proc.stdout and "GiB" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "vram_eval", "specs/nope.toml"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("specs/nope.toml: error: no such file")


def test_explain_a_name_of_another_variant_says_which(cli):
    status, _, err = cli("explain", "llama_mlp")
    assert status == 2 and "defined only for arch=llama" in err and "--set arch=llama" in err
    status, out, _ = cli("explain", "llama_mlp", "--set", "arch=llama")
    assert status == 0 and "formulas/arch/llama.formula" in out
