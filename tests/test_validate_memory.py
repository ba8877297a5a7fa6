"""`vram-eval validate` refuses a scale this machine's memory cannot hold, by the formulas' own
peak of the scaled training step (no torch needed to decide)."""

import os

import pytest

import vram_eval
from conftest import SPECS
from vram_eval.errors import SpecError
from vram_eval.validate import scaled_shape


def _free_pages(monkeypatch, free_bytes):
    real = os.sysconf
    monkeypatch.setattr(os, "sysconf", lambda name: {"SC_PAGE_SIZE": 4096, "SC_AVPHYS_PAGES": free_bytes // 4096}.get(
        name, real(name) if isinstance(name, int) else 0))


def test_a_scale_that_fits_in_half_the_free_memory_is_run(monkeypatch):
    _free_pages(monkeypatch, 64 * 2**30)
    assert scaled_shape(vram_eval.load(str(SPECS / "llama2-7b.toml")), "small")["h"] > 0


def test_a_scale_beyond_half_the_free_memory_is_refused_with_the_formulas_figure(monkeypatch):
    _free_pages(monkeypatch, 2**20)
    with pytest.raises(SpecError, match=r"this scale needs about \d+\.\d GiB, more than half of this machine's free "
                                        r"memory \(0\.0 GiB\)") as info:
        scaled_shape(vram_eval.load(str(SPECS / "llama2-7b.toml")), "small")
    assert info.value.location.path == "--scale" and "use --scale tiny" in info.value.hint
