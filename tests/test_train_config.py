"""Training configs as input (issue 13.4; engine/train_config.py, specs/catalog/training_configs.toml):
each kind of file binds what it decides, located in that file, and gives the same answer as the
--set line that says the same; the keys it does not read are listed, a value it cannot honour is
an error located at its key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import vram_eval
import vram_eval.train_config
from vram_eval.errors import InvalidValue, SpecError, UnreadableFile

from conftest import SPECS
from test_checkpoint import hub_cache, model_folder

LLAMA = str(SPECS / "llama2-7b.toml")
HERE = Path(__file__).parent / "data" / "train_configs"


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


DEEPSPEED = """{
  "bf16": {"enabled": true},
  "zero_optimization": {
    "stage": 3,
    "offload_optimizer": {"device": "cpu", "pin_memory": true},
    "offload_param": {"device": "none"},
    "overlap_comm": true,
    "contiguous_gradients": true,
    "stage3_gather_16bit_weights_on_model_save": true
  },
  "gradient_accumulation_steps": "auto",
  "train_micro_batch_size_per_gpu": 2,
  "steps_per_print": 2000
}
"""
DEEPSPEED_SETS = ["distributed=deepspeed", "framework=mixed_precision", "weight_dtype=bf16", "zero_stage=3",
                  "offload_optimizer=cpu", "pin_memory=true", "offload_param=none", "overlap_comm=true",
                  "contiguous_gradients=true", "b=2"]

AXOLOTL = """base_model: {model}
adapter: qlora
load_in_4bit: true
lora_r: 32
lora_alpha: 16
lora_dropout: 0.0
lora_target_linear: true
sequence_len: 4096
sample_packing: true
micro_batch_size: 2
gradient_accumulation_steps: 4
gradient_checkpointing: true
bf16: auto
optimizer: paged_adamw_8bit
flash_attention: true
datasets:
  - path: mhenrychen/alpaca
    type: alpaca
output_dir: ./out
"""
AXOLOTL_SETS = ["framework=hf_trainer", "regime=qlora", "lora_rank=32", "lora_dropout=0", "lora_targets=all-linear",
                "s=4096", "b=2", "grad_accumulation=4", "recompute=full", "optimizer=paged_adamw_8bit",
                "flash_attention=true"]

LLAMAFACTORY = """### model
model_name_or_path: {model}

### method
stage: sft
do_train: true
finetuning_type: lora
lora_rank: 8
lora_target: q_proj,v_proj

### dataset
dataset: identity,alpaca_en_demo
template: llama3
cutoff_len: 2048
max_samples: 1000

### train
per_device_train_batch_size: 1
gradient_accumulation_steps: 8
learning_rate: 1.0e-4
bf16: true
"""
LLAMAFACTORY_SETS = ["framework=hf_trainer", "regime=lora", "lora_rank=8", "lora_targets=q,v", "s=2048", "b=1",
                     "grad_accumulation=8", "weight_dtype=bf16"]

TRAINER = """{"output_dir": "out", "per_device_train_batch_size": 4, "gradient_accumulation_steps": 2,
 "gradient_checkpointing": true, "bf16": true, "optim": "adamw_torch_fused", "max_length": 1024, "packing": false,
 "learning_rate": 2e-5}
"""
TRAINER_SETS = ["framework=hf_trainer", "b=4", "grad_accumulation=2", "recompute=full", "weight_dtype=bf16",
                "optimizer=adamw_torch_fused", "s=1024"]


def _outputs(spec, sets=(), configs=()):
    problem = vram_eval.load(spec, list(sets), train_configs=[str(c) for c in configs])
    return vram_eval.evaluate(problem).outputs, problem


@pytest.mark.parametrize("text, sets", [(DEEPSPEED, DEEPSPEED_SETS), (TRAINER, TRAINER_SETS)], ids=["deepspeed", "trainer"])
def test_a_config_gives_the_answer_of_its_set_line(tmp_path, text, sets):
    config = _write(tmp_path, "config.json", text)
    ours, _ = _outputs(LLAMA, configs=[config])
    assert ours == _outputs(LLAMA, sets)[0]


@pytest.mark.parametrize("name, text, sets", [("axolotl.yml", AXOLOTL, AXOLOTL_SETS),
                                              ("llamafactory.yaml", LLAMAFACTORY, LLAMAFACTORY_SETS)])
def test_a_config_naming_its_base_model_needs_no_spec(tmp_path, name, text, sets):
    folder = model_folder(tmp_path / "Llama-2-7b-hf", "llama-2-7b.json")
    config = _write(tmp_path, name, text.format(model=folder))
    ours, problem = _outputs(None, configs=[config])
    assert problem.spec.path == str(folder)
    assert ours == _outputs(str(folder), sets)[0]


def test_a_deepspeed_config_it_names_is_read_after_it(tmp_path):
    folder = model_folder(tmp_path / "m", "llama-2-7b.json")
    _write(tmp_path, "ds_z3.json", DEEPSPEED)
    config = _write(tmp_path, "axolotl.yml", AXOLOTL.format(model=folder) + "deepspeed: ds_z3.json\n")
    ours, problem = _outputs(None, configs=[config])
    # the DeepSpeed config comes after the axolotl one: its framework and micro-batch win
    expected = _outputs(str(folder), AXOLOTL_SETS + DEEPSPEED_SETS)[0]
    assert ours == expected
    assert [c.format for c in problem.train_configs] == ["axolotl", "deepspeed"]


def test_the_base_model_may_be_a_hub_id_of_the_local_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache(tmp_path / "hub")))
    config = _write(tmp_path, "lf.yaml", LLAMAFACTORY.format(model="meta-llama/Llama-2-7b-hf"))
    _, problem = _outputs(None, configs=[config])
    assert problem.title == "meta-llama/Llama-2-7b-hf"


def test_set_comes_after_the_config(tmp_path):
    config = _write(tmp_path, "ds.json", DEEPSPEED)
    _, problem = _outputs(LLAMA, ["zero_stage=2"], [config])
    assert problem.bindings["zero_stage"].plain == 2 and problem.bindings["zero_stage"].location.path == "--set"
    assert problem.bindings["offload_optimizer"].location.path == str(config)


def test_a_spec_given_wins_over_the_configs_base_model_and_says_so(tmp_path):
    config = _write(tmp_path, "ax.yml", AXOLOTL.format(model="meta-llama/Meta-Llama-3-8B"))
    _, problem = _outputs(LLAMA, configs=[config])
    assert problem.title == "Llama-2-7B"
    assert problem.warnings == (f"{config}: its base model 'meta-llama/Meta-Llama-3-8B' is not read: the spec given is",)


def test_the_report_lists_the_keys_used_and_ignored(tmp_path, cli):
    config = _write(tmp_path, "ds.json", DEEPSPEED)
    status, out, _ = cli(LLAMA, "--train-config", config)
    assert status == 0
    assert f"{config} (DeepSpeed config): used bf16.enabled, zero_optimization.stage," in out
    assert "ignored: zero_optimization.stage3_gather_16bit_weights_on_model_save, gradient_accumulation_steps, " \
           "steps_per_print" in out
    status, out, _ = cli(LLAMA, "--train-config", config, "--format", "json")
    data = json.loads(out)["train_configs"]
    assert data[0]["format"] == "deepspeed" and data[0]["ignored"]["gradient_accumulation_steps"] == \
        "auto: the Trainer decides"
    assert data[0]["ignored"]["steps_per_print"] == "logging"


def test_without_a_spec_the_command_line_needs_a_config_naming_the_model(tmp_path, cli):
    status, _, err = cli()
    assert status == 2
    config = _write(tmp_path, "ds.json", DEEPSPEED)
    status, _, err = cli("--train-config", config)
    assert status == 0  # no spec and no model: the formulas' defaults, as `vram-eval` with no spec would be
    status, _, err = cli("eval")
    assert status == 2 and err.startswith("SPEC: error: give a SPEC")


# a key → (the YAML line, what the error says)
BAD = {
    "adapter": ("adapter: ia3", "'adapter' is 'ia3', which vram-eval cannot honour (it takes lora or qlora)"),
    "stage": ("stage: dpo", "'stage' is 'dpo', which vram-eval cannot honour"),
    "micro_batch_size": ("micro_batch_size: two", "'two' is not a count"),
    "load_in_8bit": ("load_in_8bit: true", "'load_in_8bit' is true, which vram-eval cannot honour"),
    "lora_r": ("lora_r: -4", "'lora_r': a count is a whole number, at least 0, not -4"),
    "deepspeed": ("deepspeed: {zero_optimization: {stage: 3}}", "an inline config is not read"),
    "missing_deepspeed": ("deepspeed: nowhere.json", "the DeepSpeed config 'nowhere.json' it names is not there"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_value_it_cannot_honour_is_located_in_its_file(tmp_path, case):
    line, words = BAD[case]
    folder = model_folder(tmp_path / "m", "llama-2-7b.json")
    key = line.split(":")[0]
    lines = [f"base_model: {folder}"] + (["stage: sft"] if key != "stage" else []) + [line, "sequence_len: 512"]
    if key == "stage":
        lines = [f"model_name_or_path: {folder}", line]
    config = _write(tmp_path, "c.yml", "\n".join(lines) + "\n")
    with pytest.raises(SpecError) as info:
        vram_eval.load(None, [], train_configs=[str(config)])
    assert words in info.value.message, info.value.message
    assert info.value.location.path == str(config)
    assert info.value.location.line == (1 + lines.index(line))


@pytest.mark.parametrize("text, kind, words", [
    ('{"foo": 1}', UnreadableFile, "not a training config vram-eval reads"),
    ("[1, 2]", InvalidValue, "must be a mapping"),
    ('{"zero_optimization": {"stage": 3}, "zero_optimization": {}}', SpecError, "twice"),
])
def test_a_file_that_is_not_a_training_config_is_a_located_error(tmp_path, text, kind, words):
    config = _write(tmp_path, "x.json", text)
    with pytest.raises(kind, match=words) as info:
        vram_eval.load(LLAMA, [], train_configs=[str(config)])
    assert info.value.location.path == str(config)


def test_a_training_config_is_not_written(tmp_path, cli):
    config = _write(tmp_path, "ds.json", DEEPSPEED)
    before = config.stat().st_mtime_ns
    assert cli(LLAMA, "--train-config", config)[0] == 0
    assert config.stat().st_mtime_ns == before and sorted(p.name for p in tmp_path.iterdir()) == ["ds.json"]


# --- the projects' own examples (tests/data/train_configs/SOURCES.md) ----------------------

CONFIGS = Path(__file__).parent / "data" / "hf_configs"
# The base models the examples name, in a local Hugging Face cache (their config.json: the same
# sizes as these public configs; Meta-Llama-3-8B-Instruct's differs from the base model's only in
# eos_token_id).
BASES = {"NousResearch/Meta-Llama-3-8B": "llama-3-8b.json", "meta-llama/Meta-Llama-3-8B-Instruct": "llama-3-8b.json",
         "mistralai/Mixtral-8x7B-v0.1": "mixtral-8x7b-v0.1.json", "mistralai/Mistral-7B-v0.1": "mistral-7b-v0.1.json"}


@pytest.fixture
def bases(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    for repo, config in BASES.items():
        org, name = repo.split("/")
        snap = cache / f"models--{org}--{name}" / "snapshots" / ("0" * 40)
        snap.mkdir(parents=True)
        (snap / "config.json").write_text((CONFIGS / config).read_text())
        (snap.parent.parent / "refs").mkdir()
        (snap.parent.parent / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


BF16 = ["weight_dtype=bf16"]  # the Llama-3 and Mixtral configs' own torch_dtype; axolotl's bf16: auto keeps it
DS_AUTO = ["distributed=deepspeed", "framework=mixed_precision"]

# (the project's folder, the config as its tool is run on it, the base model, the --set line that says the same)
EXAMPLES = [
    ("axolotl", "examples/llama-3/qlora.yml", "NousResearch/Meta-Llama-3-8B",
     ["framework=hf_trainer", "regime=qlora", "s=4096", "lora_rank=32", "lora_dropout=0.05", "lora_targets=all-linear",
      "grad_accumulation=4", "b=2", "optimizer=paged_adamw_32bit", "recompute=full", "flash_attention=true"]),
    ("axolotl", "examples/mistral/mixtral/mixtral.yml", "mistralai/Mixtral-8x7B-v0.1",
     ["framework=hf_trainer", "regime=qlora", "s=4096", "lora_rank=32", "lora_dropout=0.05", "lora_targets=all-linear",
      "grad_accumulation=2", "b=1", "optimizer=adamw_bnb_8bit", "recompute=full", "flash_attention=true"]
     + DS_AUTO + ["zero_stage=2", "offload_optimizer=cpu", "contiguous_gradients=true", "overlap_comm=true"]),
    ("llamafactory", "examples/train_full/llama3_full_sft.yaml", "meta-llama/Meta-Llama-3-8B-Instruct",
     ["framework=hf_trainer", "regime=training", "s=2048", "b=1", "grad_accumulation=2", "weight_dtype=bf16"]
     + DS_AUTO + ["zero_stage=3", "overlap_comm=false", "contiguous_gradients=true", "sub_group_size=1000000000",
                  "stage3_max_live_parameters=1000000000"]),
    ("llamafactory", "examples/train_qlora/llama3_lora_sft_otfq.yaml", "meta-llama/Meta-Llama-3-8B-Instruct",
     ["framework=hf_trainer", "regime=qlora", "lora_rank=8", "lora_targets=all-linear", "s=2048", "b=1",
      "grad_accumulation=8", "weight_dtype=bf16"]),
    ("alignment-handbook", "config_qlora.yaml", "mistralai/Mistral-7B-v0.1",
     ["framework=hf_trainer", "weight_dtype=bf16", "flash_attention=true", "regime=qlora", "lora_rank=16",
      "lora_dropout=0.05", "lora_targets=q,k,v,o,gate,up,down", "recompute=full", "s=2048", "b=4",
      "grad_accumulation=2"]),
]


@pytest.mark.parametrize("project, config, base, sets", EXAMPLES, ids=[f"{p}:{c}" for p, c, _, _ in EXAMPLES])
def test_a_projects_own_example_gives_the_answer_of_its_set_line(bases, monkeypatch, project, config, base, sets):
    monkeypatch.chdir(HERE / project)  # where the project's tool runs: the paths a config names resolve from it
    ours, problem = _outputs(None, configs=[config])
    assert problem.title == base
    assert ours == _outputs(base, sets)[0]


@pytest.mark.parametrize("config, sets", [
    ("deepspeed/ds_zero_stage_infinity_config.json",
     DS_AUTO + ["b=4", "grad_accumulation=1", "zero_stage=3", "stage3_max_live_parameters=1000000000",
                "stage3_prefetch_bucket_size=50000000", "contiguous_gradients=true", "overlap_comm=true",
                "reduce_bucket_size=90000000", "sub_group_size=100000000", "offload_optimizer=nvme", "pin_memory=true",
                "offload_param=nvme", "weight_dtype=fp16"]),
    ("deepspeed/ds_zero_stage_3_config_release.json",  # DeepSpeed < 0.3.13's cpu_offload names
     DS_AUTO + ["grad_accumulation=1", "zero_stage=3", "stage3_max_live_parameters=1000000000",
                "stage3_prefetch_bucket_size=50000000", "contiguous_gradients=true", "offload_optimizer=cpu",
                "offload_param=cpu", "pin_memory=true", "overlap_comm=true", "reduce_bucket_size=90000000",
                "sub_group_size=400000000", "weight_dtype=fp16"]),
    ("deepspeed/zero_md_cpu_offload.json",
     DS_AUTO + ["zero_stage=3", "contiguous_gradients=true", "stage3_max_live_parameters=1000000000",
                "stage3_prefetch_bucket_size=10000000", "reduce_bucket_size=10000000", "sub_group_size=1000000000",
                "offload_optimizer=cpu", "offload_param=cpu"]),
    ("transformers/ds_config_zero3.json",  # the HF integration's, "auto" where the Trainer decides
     DS_AUTO + ["optimizer=adamw", "zero_stage=3", "offload_optimizer=cpu", "pin_memory=true", "offload_param=cpu",
                "overlap_comm=true", "contiguous_gradients=true", "sub_group_size=100000000000000",
                "stage3_max_live_parameters=1000000000"]),
])
def test_deepspeeds_own_configs_give_the_answer_of_their_set_line(config, sets):
    ours, problem = _outputs(LLAMA, configs=[HERE / config])
    assert ours == _outputs(LLAMA, sets)[0]
    assert problem.train_configs[0].format == "deepspeed"
    assert not [k for k, why in problem.train_configs[0].ignored if why == "not read by vram-eval"]


def test_every_key_of_the_examples_is_known(bases, monkeypatch):
    """No key of the projects' own examples is left as 'not read by vram-eval': each sets an input
    or is ignored for a stated reason."""
    for project, config, _, _ in EXAMPLES:
        monkeypatch.chdir(HERE / project)
        for c in vram_eval.load(None, [], train_configs=[config]).train_configs:
            assert not [k for k, why in c.ignored if why == "not read by vram-eval"], (config, c.ignored)


def test_trls_cli_example_names_its_model(tmp_path):
    _, problem = _outputs(LLAMA, configs=[HERE / "trl" / "example_config.yaml"])
    config = problem.train_configs[0]
    assert config.format == "trainer" and config.used == ("model_name_or_path",) and config.model[0] == "Qwen/Qwen2.5-0.5B"
    assert problem.bindings["framework"].plain == "hf_trainer"


def test_a_yaml_alias_bomb_as_a_training_config_is_never_expanded(tmp_path):
    """10^9 items if expanded: the reader counts each alias once where it is used and reads a
    list as one value, so the file is read at once and the answer is about its base model."""
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)) + "base_model: x\n"
    config = _write(tmp_path, "bomb.yml", bomb)
    with pytest.raises(UnreadableFile, match="no such file") as info:
        vram_eval.load(None, [], train_configs=[str(config)])
    assert info.value.location.path == "x"
    assert [k for k, _ in vram_eval.train_config.read_train_configs([config])[0].ignored][:2] == ["a", "b"]
