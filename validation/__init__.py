"""Measurement scripts that produce ground-truth data for vram-eval (not part of the engine)."""


def write_json(path, doc) -> None:
    """Write a measurement document the way every file in tests/data/measured/ is written."""
    import json

    with open(path, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
