"""The `measured` activation formulas against bytes PyTorch really saved for backward.

tests/data/measured/activations.json: Hugging Face Llama and GPT-2 models built from
configs with random weights, one training forward pass under
torch.autograd.graph.saved_tensors_hooks (validation/ACTIVATIONS.md; torch 2.13.0+cpu,
transformers 5.24.0, peft 0.21.2). Target (issue 3/5): within 2% — in fact every case
is reproduced to the byte.
"""

import json

import pytest

from conftest import DATA, evaluate, evaluate_once
from vram_eval.lab.cases import activation_comparable, activation_sets

MEASURED = json.loads((DATA / "measured" / "activations.json").read_text())


def _cases():
    # CPU-only behaviour that a GPU run does not share is left out (engine/lab/cases.py).
    yield from (c for c in MEASURED["cases"] if activation_comparable(c))


CASES = list(_cases())


def _id(c):
    return (f"{c['arch']}-{c['attn']}-{c['dtype']}-b{c['b']}s{c['s']}h{c['h']}a{c['a']}kv{c['kv_heads']}"
            f"f{c['f']}L{c['L']}V{c['V']}{'-ckpt' if c['checkpointing'] else ''}{'-lora' if c['lora'] else ''}"
            f"{'-' + c['activation_function'] if c['arch'] == 'gpt2' else ''}-{c.get('dropout_impl')}"
            f"{'-amp' if c.get('amp') else ''}"
            f"{'-moe%dx%d' % (c['experts'], c['experts_per_token']) if c.get('experts', 1) > 1 else ''}")


def bind(c):
    return evaluate_once(None, *activation_sets(c))  # docs/ACCURACY.md's table asks the same point


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_measured_activations(case):
    result = bind(case)
    per_layer = result["lora_activations_per_layer" if case["lora"] else "activations_per_layer"]
    total = result["lora_activations" if case["lora"] else "activations"]
    # within 2% (the issue's bar) — and in fact exact
    assert abs(per_layer - case["per_layer_bytes"]) <= 0.02 * case["per_layer_bytes"]
    assert abs(total - case["total_bytes"]) <= 0.02 * case["total_bytes"]
    assert per_layer == case["per_layer_bytes"]
    assert total == case["total_bytes"]


def test_the_measured_data_records_its_versions():
    assert MEASURED["versions"]["torch"].startswith("2.13.0")
    assert {"transformers", "peft", "python"} <= set(MEASURED["versions"])


def test_published_formula_is_not_what_llama_saves():
    """Korthikanti's 34 undercounts a Llama block (fp32 RMSNorm copies, SwiGLU): the report says which it uses."""
    sets = ("arch=llama", "h=4096", "a=32", "L=32", "f=11008", "V=32000", "s=4096", "flash_attention=true")
    measured = evaluate(None, *sets)["activations_per_layer"]
    published = evaluate(None, *sets, "activation_model=korthikanti")["activations_per_layer"]
    assert measured > 1.3 * published
