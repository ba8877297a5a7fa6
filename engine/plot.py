"""Plot a sweep: each output against the swept input, the chosen GPUs' memory as
horizontal lines, and a mark where each curve crosses each line (found by
solve, exactly). Needs the optional extra: pip install 'vram-eval[plot]'."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, Tuple

from .errors import Location, MissingDependency, PlotFileError
from .units import BYTE_UNITS

__all__ = ["plot_sweep"]


def plot_sweep(result, path: str, lines: Sequence[Tuple[str, int]] = (), crossings=(), unit: str = "GiB") -> None:
    """``lines``: (label, bytes); ``crossings``: (target, label, x, bytes) to mark."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".png", ".svg"):
        raise PlotFileError(f"cannot draw '{path}': the plot file must end in .png or .svg", Location("--plot"),
                            file=str(path), reason="suffix")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependency("--plot needs matplotlib and numpy, which are not installed", Location("--plot"),
                                hint="install the optional extra:  pip install 'vram-eval[plot]'",
                                package="matplotlib", extra="plot") from None
    scale = BYTE_UNITS[unit]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for target, column in result.columns.items():
        ys = [float(v) / scale if result.units.get(target) == "bytes" else float(v) for v in column]
        ax.plot(list(result.xs), ys, label=target, linewidth=1.8)
    for label, memory in lines:
        ax.axhline(memory / scale, linestyle="--", linewidth=1, color="grey")
        ax.annotate(f"{label} ({memory / scale:.0f} {unit})", xy=(0.01, memory / scale), xycoords=("axes fraction", "data"),
                    va="bottom", fontsize=8, color="dimgrey")
    for target, label, x, y in crossings:
        ax.plot([float(x)], [float(y) / scale], marker="o", color="black", markersize=5)
        ax.annotate(f"{result.name} = {int(x):,}" if float(x).is_integer() else f"{float(x):.4g}",
                    xy=(float(x), float(y) / scale), xytext=(4, -12), textcoords="offset points", fontsize=8)
    ax.set_xlabel(result.name)
    ax.set_ylabel(f"memory per GPU ({unit})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as exc:
        raise PlotFileError(f"cannot write the plot: {exc.strerror}", Location(path), file=str(path),
                            reason="unwritable") from None
    finally:
        plt.close(fig)
