"""The development tree: what regenerates the repository's own files from the instruments' output.

Not installed (the wheel holds the instruments, ``vram_eval.lab``): run from a checkout, as
``python -m validation.accuracy`` (docs/ACCURACY.md), ``python -m validation.peaks_fit`` (the fitted
in-layer event forms, peak_forms.json) and ``python -m validation.report``; ``derived.py`` and
``peaks_derived.py`` are the derivation oracles the tests compare the formulas with.
"""
