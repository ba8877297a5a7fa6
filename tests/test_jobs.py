"""The jobs are data (formulas/jobs.toml): read, checked against the formulas, and what the report,
solve and the questions' default targets follow."""

import pytest

import vram_eval
from vram_eval.errors import FormulaError
from vram_eval.regimes import JOBS, REGIMES, REMEDIES, REMEDY_SOLVES, SMALLEST, Job, check_jobs, read_jobs

from conftest import SPECS


def test_the_report_s_columns_are_the_jobs_file_s_tables_in_order():
    assert [heading for heading, _, _ in REGIMES] == ["full training", "LoRA", "QLoRA", "inference", "vLLM", "SGLang",
                                                      "llama.cpp"]
    assert list(JOBS) == ["training", "lora", "qlora", "inference", "vllm", "sglang", "llamacpp"]


@pytest.mark.parametrize("engine,columns", [
    ("transformers", ["full training", "LoRA", "QLoRA", "inference"]),
    ("vllm", ["full training", "LoRA", "QLoRA", "vLLM"]),
    ("sglang", ["full training", "LoRA", "QLoRA", "SGLang"]),
    ("llamacpp", ["full training", "LoRA", "QLoRA", "llama.cpp"]),
])
def test_the_engine_input_picks_the_inference_column(cli, engine, columns):
    """A job with an `engine` shows only at that value of the engine input (the default: transformers)."""
    from vram_eval.regimes import shown

    assert [j.heading for j in shown(engine)] == columns
    code, out, _ = cli("specs/llama3-8b.toml", "--set", f"engine={engine}", "--set", "gpu=h100")
    header = next(line for line in out.splitlines() if "full training" in line)
    assert code == 0 and header.split() == " ".join(columns).split()


@pytest.mark.parametrize("engine,regime,job", [
    ("vllm", "inference", "vllm"),          # the inference regime asks about the engine's job
    ("llamacpp", "inference", "llamacpp"),
    ("transformers", "vllm", "vllm"),       # a job named outright is that job, whatever the engine
    ("vllm", "training", "training"),       # jobs of no engine are themselves
])
def test_the_inference_regime_asks_about_the_chosen_engine(engine, regime, job):
    from vram_eval.focus import default_target, default_total

    problem = vram_eval.load(str(SPECS / "llama3-8b.toml"), [f"engine={engine}", f"regime={regime}", "gpu=h100"])
    assert (default_total(problem), default_target(problem)) == (JOBS[job].total, JOBS[job].peak)


@pytest.mark.parametrize("engine", ["vllm", "sglang", "llamacpp"])
def test_an_engine_column_is_the_sum_of_its_rows(engine):
    from conftest import evaluate

    job = JOBS[engine]
    point = evaluate(SPECS / "llama3-8b.toml", f"engine={engine}", "gpu=h100", "ctx_size=8192")
    assert sum(point[o] for o in job.rows.values()) == point[job.total]
    assert point[job.headroom] == point["gpu_memory"] - point[job.total]


def test_a_jobs_engine_must_be_a_value_of_the_engine_input():
    broken = {**JOBS, "vllm": Job(**{**JOBS["vllm"].__dict__, "engine": "tgi"})}
    errors = check_jobs(vram_eval.load(str(SPECS / "llama2-7b.toml")).ruleset, broken)
    assert any('engine = "tgi" is not a value the formulas allow' in e.message for e in errors)
    broken = {**JOBS, "vllm": Job(**{**JOBS["vllm"].__dict__, "stands_for": "serving"})}
    errors = check_jobs(vram_eval.load(str(SPECS / "llama2-7b.toml")).ruleset, broken)
    assert any('stands_for = "serving" is not a job' in e.message for e in errors)


def test_every_name_the_built_in_jobs_file_gives_is_defined_by_the_formulas():
    assert check_jobs(vram_eval.load(str(SPECS / "llama2-7b.toml")).ruleset) == []


@pytest.mark.parametrize("change, words", [
    (dict(total="total_trainnig"), "its total 'total_trainnig' is not an output of the formulas"),
    (dict(rows={"weights": "wieghts"}), "the row 'weights' 'wieghts' is not an output"),
    (dict(phases=(("start", "training_at_start"),)), "the phase 'start' 'training_at_start' is not an output"),
])
def test_a_name_the_formulas_do_not_define_is_an_error(change, words):
    job = JOBS["training"]
    broken = {**JOBS, "training": Job(**{**job.__dict__, **change})}
    errors = check_jobs(vram_eval.load(str(SPECS / "llama2-7b.toml")).ruleset, broken)
    assert any(words in e.message for e in errors), [e.message for e in errors]


def test_a_regime_value_without_a_job_is_an_error():
    jobs = {name: job for name, job in JOBS.items() if name != "qlora"}
    errors = check_jobs(vram_eval.load(str(SPECS / "llama2-7b.toml")).ruleset, jobs)
    assert [e.message for e in errors] == ['regime = "qlora" is allowed by the formulas but has no [job.qlora]']


@pytest.mark.parametrize("remedy", [
    {"set": "recompute"}, {"set": 3}, {"smallest": "tp", "set": "tp=2"}, {"solve_for": "dp"}, "recompute=full",
])
def test_a_malformed_remedy_is_a_located_error(tmp_path, remedy):
    text = (SPECS.parent / "formulas" / "jobs.toml").read_text()
    bad = text.replace('{ set = "kv_dtype=fp8" }', _inline(remedy))
    path = tmp_path / "jobs.toml"
    path.write_text(bad)
    with pytest.raises(FormulaError) as info:
        read_jobs(path)
    assert "job.inference: a remedy is" in info.value.message and info.value.location.path == str(path)
    assert info.value.location.line == bad.splitlines().index("[job.inference]") + 1


def _inline(value):
    if isinstance(value, str):
        return f'"{value}"'
    parts = [f'{k} = {v!r}'.replace("'", '"') for k, v in value.items()]
    return "{ " + ", ".join(parts) + " }"


def test_a_row_outside_row_order_is_a_located_error(tmp_path):
    text = (SPECS.parent / "formulas" / "jobs.toml").read_text().replace('"KV cache" = "kv_cache"', '"KV" = "kv_cache"')
    path = tmp_path / "jobs.toml"
    path.write_text(text)
    with pytest.raises(FormulaError, match="the row 'KV' is not in row_order"):
        read_jobs(path)


def test_remedies_say_which_input_they_set_and_which_one_solve_answers_with():
    assert ("tp", SMALLEST) in REMEDIES["peak_inference"]
    assert REMEDIES["total_lora"] == REMEDIES["peak_lora"]
    assert REMEDY_SOLVES == {"zero_stage": "dp"}


def test_the_regime_input_picks_the_job_questions_answer_about():
    from vram_eval.focus import default_target, default_total

    problem = vram_eval.load(str(SPECS / "llama2-7b.toml"), ["regime=qlora"])
    assert (default_total(problem), default_target(problem)) == (JOBS["qlora"].total, JOBS["qlora"].peak)
