"""The instruments: they build real PyTorch models and measure what the formulas predict (torch is
imported only when one measures; each writes its file of tests/data/measured/ with --out)."""


def write_json(path, doc) -> None:
    """Write a measurement document the way every file in tests/data/measured/ is written."""
    import json

    with open(path, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")


def script_arguments(doc: str, argv=None):
    """The arguments of a measurement script that writes one file (``--out``), with Python's and
    transformers' warnings silenced: what every such script starts with."""
    import argparse
    import warnings

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    return args


def write_cases(path, description: str, cases: dict, packages=(), device: str = "cpu", **more) -> None:
    """Write a measurement of named cases with the versions it was taken with: transformers, torch
    and each of `packages` (imported names), Python, the device and the date (and `more`)."""
    import datetime
    import importlib
    import platform
    import sys

    versions = {name: importlib.import_module(name).__version__ for name in ("transformers", "torch", *packages)}
    versions.update(python=platform.python_version(), device=device, **more, date=datetime.date.today().isoformat())
    write_json(path, {"description": description, "versions": versions, "cases": cases})
    print(f"wrote {len(cases)} cases to {path}", file=sys.stderr)
