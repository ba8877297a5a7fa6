"""`vram-eval serve-plan`: the launch line a vLLM or SGLang server needs for a model on a GPU, the
flags as the engines spell them (specs/catalog/engines.toml), and what the pool then holds — the
same figures `vram-eval MODEL --set ...` gives at the chosen settings."""

import json

import pytest

from conftest import DATA, ROOT, evaluate

LLAMA3_8B = str(DATA / "hf_configs" / "llama-3-8b.json")
LLAMA3_70B = str(ROOT / "specs" / "llama3-70b.toml")


def plan(cli, *args):
    code, out, err = cli("serve-plan", *args, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def flags(argv):
    """--flag value pairs of a launch line (a bare flag: True)."""
    out, k = {}, 0
    while k < len(argv):
        if argv[k].startswith("--") and (k + 1 == len(argv) or argv[k + 1].startswith("--")):
            out[argv[k]] = True
            k += 1
        elif argv[k].startswith("--"):
            out[argv[k]] = argv[k + 1]
            k += 2
        else:
            k += 1
    return out


@pytest.mark.parametrize("margin,tp", [("1GiB", 4), ("0GiB", 2)], ids=["default-margin", "no-margin"])
def test_the_fewest_gpus_that_hold_the_context_with_the_margin(cli, margin, tp):
    """Llama-3-70B in bf16 at 32k on H100s: two hold it with 0.08 GiB to spare (inside the
    estimates' uncertainty), four with the default 1 GiB margin."""
    answer = plan(cli, LLAMA3_70B, "--gpu", "h100", "--set", "s_max=131072", "--set", "max_model_len=32768",
                  "--margin", margin)
    assert answer["gpus"] == tp and flags(answer["argv"])["--tensor-parallel-size"] == str(tp)
    assert flags(answer["argv"])["--max-model-len"] == "32768"


def test_the_plans_capacity_is_the_reports_at_the_chosen_settings(cli):
    answer = plan(cli, LLAMA3_70B, "--gpu", "h100", "--set", "s_max=131072", "--set", "max_model_len=32768")
    point = evaluate(LLAMA3_70B, "gpu=h100", "s_max=131072", "max_model_len=32768", "tp=4")
    for name, value in answer["capacity"].items():
        assert value == pytest.approx(float(point[name]), rel=1e-15), name
    assert answer["need"] == pytest.approx(float(point["vllm_gpu_memory"]), rel=1e-15)
    assert answer["headroom"] == pytest.approx(float(point["vllm_headroom"]), rel=1e-15)


def test_where_no_count_of_gpus_holds_the_context_the_longest_that_fits(cli):
    """One 24 GB card and a 131k context: the longest max_model_len that leaves the margin, as solve answers it."""
    answer = plan(cli, LLAMA3_8B, "--gpu", "rtx4090", "--gpus", "1", "--set", "s_max=131072")
    code, out, _ = cli("solve", LLAMA3_8B, "--for", "max_model_len", "--target", "vllm_gpu_memory", "--set", "gpu=rtx4090",
                       "--set", "s_max=131072", "--budget", f"{(int(evaluate(LLAMA3_8B, 'gpu=rtx4090')['gpu_memory']) - 2**30) // 2**20}MiB",
                       "--format", "json")
    assert code == 0 and answer["chosen"].startswith("the longest max_model_len that fits")
    assert int(flags(answer["argv"])["--max-model-len"]) == json.loads(out)["value"]
    assert answer["headroom"] >= 2**30


@pytest.mark.parametrize("sets,expected,absent", [
    ([], {"--gpu-memory-utilization": "0.92"}, ["--kv-cache-dtype", "--enforce-eager", "--block-size"]),
    (["kv_cache_dtype=fp8"], {"--kv-cache-dtype": "fp8"}, []),
    (["kv_cache_dtype=bfloat16"], {"--kv-cache-dtype": "bfloat16"}, []),          # vLLM's spelling, not bf16
    (["enforce_eager=true"], {"--enforce-eager": True}, []),
    (["block_size=32"], {"--block-size": "32"}, []),                               # written because it was set
    (["gpu_memory_utilization=0.85"], {"--gpu-memory-utilization": "0.85"}, []),
    (["enable_prefix_caching=false"], {"--no-enable-prefix-caching": True}, []),
], ids=["defaults", "fp8", "bf16-spelling", "eager", "block-size", "utilisation", "no-prefix-caching"])
def test_vllm_flags_are_written_as_vllm_spells_them(cli, sets, expected, absent):
    answer = plan(cli, LLAMA3_8B, "--gpu", "h100", *[a for s in sets for a in ("--set", s)])
    written = flags(answer["argv"])
    assert answer["argv"][:3] == ["vllm", "serve", LLAMA3_8B]
    assert {k: written.get(k) for k in expected} == expected
    assert not set(absent) & set(written)


def test_sglangs_launch_line_uses_its_own_flags(cli):
    answer = plan(cli, LLAMA3_8B, "--engine", "sglang", "--gpu", "h100", "--set", "kv_cache_dtype=fp8")
    written = flags(answer["argv"])
    assert answer["argv"][:5] == ["python", "-m", "sglang.launch_server", "--model-path", LLAMA3_8B]
    assert written["--kv-cache-dtype"] == "fp8_e4m3" and written["--context-length"] == "8192"
    point = evaluate(LLAMA3_8B, "gpu=h100", "kv_cache_dtype=fp8")
    assert written["--mem-fraction-static"] == str(float(point["mem_fraction_static"]))
    assert answer["capacity"]["sglang_max_total_tokens"] == int(point["sglang_max_total_tokens"])


def test_a_fixed_tensor_parallel_size_is_kept(cli):
    answer = plan(cli, LLAMA3_70B, "--gpu", "h100", "--set", "tp=8", "--set", "s_max=131072")
    assert answer["gpus"] == 8 and flags(answer["argv"])["--max-model-len"] == "131072"


def test_the_table_names_the_launch_line_first_and_says_what_is_estimated(cli):
    code, out, _ = cli("serve-plan", LLAMA3_8B, "--gpu", "h100")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("vllm serve ") and "--max-model-len 8192" in lines[0]
    assert "estimated:" in out and "memory in GiB" in out


@pytest.mark.parametrize("args,words,where", [
    ([LLAMA3_8B], "serve-plan needs the GPU each rank runs on", "--gpu"),
    ([LLAMA3_70B, "--gpu", "rtx4090", "--gpus", "2"], "does not start on 2 GPU(s)", "--gpus"),
    ([LLAMA3_8B, "--gpu", "h100", "--gpus", "0"], "--gpus must be at least 1", "--gpus"),
    ([LLAMA3_8B, "--gpu", "h100", "--margin", "lots"], "is not a memory size", "--margin"),
    ([LLAMA3_8B, "--gpu", "h100", "--set", "max_model_len=9000"], "greater than the derived max_model_len", "--set"),
], ids=["no-gpu", "nothing-fits", "no-gpus", "bad-margin", "too-long"])
def test_a_plan_that_cannot_be_made_is_a_located_error(cli, args, words, where):
    code, out, err = cli("serve-plan", *args)
    assert code == 2 and out == "" and words in err and "Traceback" not in err
    assert err.startswith(where) or f"{where}" in err.splitlines()[0]


def test_sglang_sizes_a_hybrid_models_state_pool_beside_its_tokens(cli):
    """SGLang 0.5.23 (_handle_max_mamba_cache): the pool's r / (1 + r) holds the states, a request's
    3 + 2 slots (extra buffer); a dense model has none."""
    hybrid = plan(cli, str(DATA / "hf_configs" / "qwen3-next-80b-a3b-instruct.json"), "--engine", "sglang", "--gpu", "h200")
    dense = plan(cli, LLAMA3_8B, "--engine", "sglang", "--gpu", "h100")
    assert hybrid["capacity"]["sglang_max_mamba_cache_size"] > 0 and dense["capacity"]["sglang_max_mamba_cache_size"] == 0
    assert hybrid["capacity"]["sglang_max_running_requests"] <= hybrid["capacity"]["sglang_max_mamba_cache_size"] // 5
