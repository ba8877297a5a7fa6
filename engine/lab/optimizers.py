"""Measure the optimizers that run on the CPU: what they keep and what their step allocates.

    python -m vram_eval.lab.optimizers --out tests/data/measured/optimizers.json

The instrument and the training loop are engine/lab/peaks.py's (live tensor bytes op by op, two
iterations of forward with loss, backward, step, zero_grad(set_to_none)); only the optimizer
changes. Each is built as the Hugging Face Trainer builds it for its ``optim`` name
(transformers 5.24 trainer_optimizer.py), or as the recipe that names it does:

* ``adafactor``: transformers' Adafactor with the Trainer's ``scale_parameter=False,
  relative_step=False`` (trainer_optimizer.py ``_get_adafactor``), beta1 None, a fixed lr;
* ``muon``: ``torch.optim.Muon`` on the 2-D matrices of the decoder layers, ``torch.optim.AdamW``
  on everything else (embedding, head, norms), as torch's own docstring example and Keller Jordan's
  recipe split them (torch/optim/_muon.py refuses a parameter that is not 2-D);
* ``adamw_bnb_8bit`` and ``paged_adamw_32bit``: bitsandbytes' AdamW8bit and PagedAdamW32bit (its CPU
  backend; paging needs CUDA, and on the CPU bitsandbytes falls back to ordinary buffers), only
  where bitsandbytes imports. Their CPU step is not the CUDA kernel, so only their state is a
  reference, not their step's temporaries.

Needs the validation venv (torch 2.13.0 CPU, transformers, peft; bitsandbytes optional).
"""
from __future__ import annotations

import sys
import time

import torch

from . import script_arguments, write_json


class Combined:
    """Two optimizers stepped one after the other (Muon's recipe), seen as one by the harness."""

    def __init__(self, *opts):
        self.opts = opts

    @property
    def state(self):
        out = {}
        for o in self.opts:
            out.update(o.state)
        return out

    def step(self):
        for o in self.opts:
            o.step()

    def zero_grad(self, set_to_none=True):
        for o in self.opts:
            o.zero_grad(set_to_none=set_to_none)


def make_optimizer(name, model, foreach):
    """A function of the trained parameters building optimizer `name` (see the module doc)."""
    def build(trained):
        if name == "adafactor":
            from transformers.optimization import Adafactor
            return Adafactor(trained, lr=1e-4, scale_parameter=False, relative_step=False)
        if name == "muon":
            from .saved_bytes import decoder_layers
            in_layers = {id(p) for layer in decoder_layers(model) for p in layer.parameters()}
            matrices = [p for p in trained if p.ndim == 2 and id(p) in in_layers]
            ids = {id(p) for p in matrices}
            rest = [p for p in trained if id(p) not in ids]
            opts = [torch.optim.Muon(matrices, lr=1e-3)]
            if rest:
                opts.append(torch.optim.AdamW(rest, lr=1e-4, foreach=foreach))
            return Combined(*opts)
        if name == "adamw_bnb_8bit":
            import bitsandbytes as bnb
            return bnb.optim.AdamW8bit(trained, lr=1e-4)
        if name == "paged_adamw_32bit":
            import bitsandbytes as bnb
            return bnb.optim.PagedAdamW32bit(trained, lr=1e-4)
        raise ValueError(name)
    return build


def have_bnb():
    try:
        import bitsandbytes  # noqa: F401
    except Exception:  # pragma: no cover - optional
        return False
    return True


BASE = {"b": 2, "s": 128, "h": 256, "a": 4, "kv_heads": 4, "f": 688, "L": 2, "V": 1000}


def case_list():
    cases = []
    names = ["adafactor", "muon"] + (["adamw_bnb_8bit", "paged_adamw_32bit"] if have_bnb() else [])
    for name in names:
        for dtype in ("bf16", "fp32"):
            for sh in ({}, {"V": 4000}, {"h": 512, "f": 1376}):
                for lora in (False, True):
                    if lora and dtype == "fp32":
                        continue
                    cases.append(dict(arch="llama", dtype=dtype, attn="sdpa", mode="train", optimizer=name,
                                      foreach=False, fused=False, logits_to_keep=None, context=None, amp=False,
                                      lora=lora, **{**BASE, **sh}))
    return cases


def run_one(c):
    from . import peaks

    model = peaks._build(c)
    g = torch.Generator().manual_seed(1)
    input_ids = torch.randint(0, c["V"], (c["b"], c["s"]), generator=g)
    model.train()
    trained = [p for p in model.parameters() if p.requires_grad]
    tr, cats, extra = peaks.measure_train(model, input_ids, input_ids.clone(), foreach=c["foreach"],
                                          make_optimizer=make_optimizer(c["optimizer"], model, c["foreach"]))
    # what the optimizer keeps, split into parameter-shaped state and 0-dim step counters
    opt_ids = cats.sets["optimizer_state"]
    counters = sum(tr.id_nbytes[i] for i in opt_ids if tr.id_desc[i][1] == ())
    res = dict(c)
    res.update(
        n_params=sum(p.numel() for p in model.parameters()),
        n_trainable_params=sum(p.numel() for p in trained),
        n_trainable_tensors=len(trained),
        trainable_shapes=[list(p.shape) for p in trained],
        optimizer_state_bytes=extra["optimizer_state_bytes"],
        step_counter_bytes=counters,
        phase_peaks={p: tr.phase_peak[p] for p in tr.phase_order},
        live_at={k: v[0] for k, v in tr.boundary.items()},
        step_2_breakdown=cats.breakdown(tr.phase_snap["step_2"], tr),
    )
    return res


def main(argv=None):
    args = script_arguments(__doc__, argv)
    from .saved_bytes import versions

    t0 = time.time()
    results = []
    cases = case_list()
    for i, c in enumerate(cases):
        r = run_one(c)
        results.append(r)
        print(f"[{i + 1}/{len(cases)}] {c['optimizer']} {c['dtype']} lora={c['lora']} V={c['V']} h={c['h']}: "
              f"state={r['optimizer_state_bytes']} step_2={r['phase_peaks']['step_2']}", file=sys.stderr)
    v = versions()
    if have_bnb():
        import bitsandbytes
        v["bitsandbytes"] = bitsandbytes.__version__
    doc = {
        "description": (
            "Optimizer state and step peaks of a random-weight HF Llama (engine/lab/peaks.py's live-tensor "
            "instrument, CPU, two training iterations) with the optimizers that run on the CPU. Generated by "
            "`python -m vram_eval.lab.optimizers --out tests/data/measured/optimizers.json`; compared with "
            "formulas/workload.formula and peaks.formula by tests/test_optimizers.py."),
        "versions": v,
        "elapsed_s": round(time.time() - t0, 1),
        "cases": results,
    }
    write_json(args.out, doc)
    print(f"wrote {len(results)} cases to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
