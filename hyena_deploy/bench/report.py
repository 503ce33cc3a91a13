"""Benchmark results as a rich table, JSON, and a log-log latency plot (matplotlib, optional)."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

from rich.table import Table

from hyena_deploy.bench.runner import BenchResult, Measurement
from hyena_deploy.bench.spec import format_length
from hyena_deploy.errors import HyenaDeployError

MISSING_MATPLOTLIB = "--plot needs matplotlib: pip install 'hyena-deploy[plot]'"
MEMORY_NOTE = ("peak_mb: the worker's peak RSS (VmHWM, its mark reset after the runtime's imports) minus its RSS "
               "then: model weights and graph constants, activations and allocator arenas; host memory only")


def label(source: str) -> str:
    """A short name for SOURCE: ``dir/file.py:factory`` -> ``file.py:factory``."""
    path, _, factory = source.rpartition(":")
    return f"{Path(path).name}:{factory}" if path else Path(source).name


def table(result: BenchResult) -> Table:
    """One row per (length, backend): median latency, tokens/s, peak memory, ratio to PyTorch eager."""
    machine = result.machine
    title = (f"{label(result.source)}: batch 1, {result.threads} thread(s), {machine.get('cpu', '?')}, "
             f"load {machine.get('load_average_1m', '?')}")
    out = Table(title=title)
    for column in ("length", "backend", "median ms", "tokens/s", "peak MB", "x torch", "rel L2 vs torch"):
        out.add_column(column, justify="left" if column in ("length", "backend") else "right")
    for length in result.lengths:
        for backend in result.backends:
            m = result.get(backend, length)
            if m is not None:
                out.add_row(format_length(length), backend, f"{m.median_ms:.1f}", f"{m.tokens_per_s:,.0f}",
                            f"{m.peak_mb:.0f}", _ratio(m), "" if m.rel_l2 is None else f"{m.rel_l2:.1e}")
    return out


def _ratio(m: Measurement) -> str:
    return "" if m.speedup is None else f"{m.speedup:.2f}x"


def to_json(result: BenchResult) -> dict:
    """Plain data: settings, machine, skipped backends and every measurement (with tokens/s)."""
    payload = asdict(result)
    payload["measurements"] = [{**asdict(m), "tokens_per_s": m.tokens_per_s} for m in result.measurements]
    payload["memory"] = MEMORY_NOTE
    return payload


def require_matplotlib():
    """The pyplot module on the Agg backend, or a clear error when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        raise HyenaDeployError(MISSING_MATPLOTLIB) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _n_log_n(length: int) -> float:
    """The FFT cost shape at size 2L (nonzero at L = 1)."""
    return length * math.log2(2 * length)


def plot(results: list[BenchResult], path: Path) -> None:
    """Latency against length (log-log), one panel per source, with an L log L reference line."""
    plt = require_matplotlib()
    from matplotlib import ticker
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5), squeeze=False)
    for ax, result in zip(axes[0], results):
        for backend in result.backends:
            points = [(m.length, m.median_ms) for m in result.measurements if m.backend == backend]
            if points:
                ax.plot(*zip(*points), marker="o", label=backend)
        anchor = min(result.measurements, key=lambda m: (m.backend != "torch", m.length), default=None)
        if anchor is not None and len(result.lengths) > 1:
            ref = [anchor.median_ms * _n_log_n(n) / _n_log_n(anchor.length) for n in result.lengths]
            ax.plot(result.lengths, ref, linestyle="--", color="gray", label="∝ L log L")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ticker.LogFormatter(labelOnlyBase=False))
        ax.yaxis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(1.5, 0.5)))
        ax.set_xticks(result.lengths, [format_length(n) for n in result.lengths])
        ax.set_xlabel("sequence length (batch 1)")
        ax.set_ylabel("median latency (ms)")
        ax.set_title(f"{label(result.source)} ({result.threads} thread(s))", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(str(results[0].machine.get("cpu", "")), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
