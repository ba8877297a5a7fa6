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
