"""Measurement scripts that produce ground-truth data for vram-eval (not part of the engine)."""
