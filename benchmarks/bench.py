"""Speed of vram-eval, measured (not asserted): `python3 benchmarks/bench.py [--runs N]`.

Cold processes are run in turn with `python -c "import sympy"` and each ratio is taken pair by
pair (the median of the ratios), so a machine whose speed drifts does not move it.

Bars (README "Speed"):
  * `vram-eval specs/llama13b.toml` and `vram-eval solve ...` cold, the parse cache warm: within
    0.5x of `python -c "import sympy"` on the same machine (neither imports SymPy nor Lark);
  * one inverse solve, warm (in-process, after a first one): under 10 ms;
  * a 10^6-point sweep including its CSV: under 1 s, in-process from the grid to the CSV
    written to /dev/null. The whole `vram-eval sweep ... --format csv` process (start-up, the
    sweep and 20 MB of CSV to /dev/null) is measured against `import sympy` as well, without a bar.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# As a user runs it: with bytecode caching on (some sandboxes set PYTHONDONTWRITEBYTECODE,
# which would make every run recompile vram-eval's modules).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

SOLVE = ["solve", "specs/llama2-7b.toml", "--for", "s", "--budget", "24GiB", "--set", "regime=inference"]
MILLION = "s=1:1000000"
SWEEP_CSV = ["sweep", "specs/llama2-7b.toml", MILLION, "--set", "regime=inference", "--format", "csv"]


def _run(cmd):
    """(wall, CPU) seconds of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, env=ENV)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def paired(cmd, baseline, runs: int):
    """(median wall, median CPU, median wall ratio, median CPU ratio) of ``cmd`` against
    ``baseline``, run in turn — baseline, cmd, baseline, cmd ... — and each ratio taken pair by
    pair, so that a machine whose speed drifts during the measurement does not move the ratio.
    CPU time (user + system) is steadier than wall time on a shared machine."""
    walls, cpus, wall_ratios, cpu_ratios = [], [], [], []
    for _ in range(runs):
        base_wall, base_cpu = _run(baseline)
        wall, cpu = _run(cmd)
        walls.append(wall)
        cpus.append(cpu)
        wall_ratios.append(wall / base_wall)
        cpu_ratios.append(cpu / base_cpu)
    median = statistics.median
    return median(walls), median(cpus), median(wall_ratios), median(cpu_ratios)


def warm(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    py = sys.executable
    _run([py, "-m", "vram_eval", "specs/llama13b.toml"])  # fill the disk cache and Lark's grammar cache
    sympy = [py, "-c", "import sympy"]
    sympy_s = paired(sympy, sympy, args.runs)
    report_s = paired([py, "-m", "vram_eval", "specs/llama13b.toml"], sympy, args.runs)
    solve_cold_s = paired([py, "-m", "vram_eval", *SOLVE], sympy, args.runs)
    sweep_cold_s = paired([py, "-m", "vram_eval", *SWEEP_CSV], sympy, args.runs)  # stdout: /dev/null

    import vram_eval
    from vram_eval.report import render_sweep
    from vram_eval.inverse import solve
    from vram_eval.grid import parse_range, sweep

    problem = vram_eval.load("specs/llama2-7b.toml", ["regime=inference"])
    solve_s = warm(lambda: solve(problem, "s", 24 * 2**30), args.runs)
    sweep_s = warm(lambda: sweep(problem, parse_range(MILLION)), 3)

    def sweep_to_csv():
        with open(os.devnull, "w") as out:
            out.write(render_sweep(sweep(problem, parse_range(MILLION)), "csv"))

    sweep_csv_s = warm(sweep_to_csv, 3)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"cold processes, median of {args.runs}, each run paired with one of import sympy:   wall      CPU")
    for label, (wall, cpu, wall_ratio, cpu_ratio), goal in (
            ("python -c 'import sympy'", sympy_s, None), ("vram-eval specs/llama13b.toml", report_s, "goal <= 0.5x"),
            ("vram-eval solve ... --for s", solve_cold_s, "goal <= 0.5x"),
            ("vram-eval sweep 10^6 --format csv", sweep_cold_s, "no goal")):
        ratio = "" if goal is None else f"   = {wall_ratio:.2f}x / {cpu_ratio:.2f}x import sympy ({goal})"
        print(f"  {label:<34} {wall * 1000:6.0f} ms   {cpu * 1000:6.0f} ms{ratio}")
    print(f"solve(problem, 's', 24 GiB) (warm)       {solve_s * 1000:7.1f} ms (goal < 10 ms)")
    print(f"sweep of 10^6 points (warm)              {sweep_s * 1000:7.0f} ms")
    print(f"  and its CSV written to /dev/null       {sweep_csv_s * 1000:7.0f} ms (goal < 1000 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
