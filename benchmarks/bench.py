"""Speed of vram-eval, measured (not asserted): `python3 benchmarks/bench.py [--runs N]`.

Bars (README "Speed"): `vram-eval specs/llama13b.toml` cold within 1.5x of
`python -c "import sympy"` on the same machine.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cold(cmd, runs: int) -> float:
    """Median wall time of a fresh process, in seconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    py = sys.executable
    cold([py, "-m", "engine", "specs/llama13b.toml"], 1)  # warm the disk cache and Lark's grammar cache
    sympy_s = cold([py, "-c", "import sympy"], args.runs)
    report_s = cold([py, "-m", "engine", "specs/llama13b.toml"], args.runs)
    print(f"machine: {platform.machine()}, {platform.processor() or 'unknown cpu'}, Python {platform.python_version()}")
    print(f"python -c 'import sympy'           {sympy_s * 1000:7.0f} ms (median of {args.runs})")
    print(f"vram-eval specs/llama13b.toml      {report_s * 1000:7.0f} ms  = {report_s / sympy_s:.2f}x import sympy "
          f"(goal <= 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
