"""``bench --decode`` results: the ratios of the streaming targets, a rich table, JSON and a ms/token plot."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from rich.table import Table

from hyena_deploy.bench.decode import BASELINES, STATES, STATES_NOTE, DecodeResult
from hyena_deploy.bench.report import label, require_matplotlib
from hyena_deploy.bench.spec import format_length

MEMORY_NOTE = ("peak_mb: the worker's peak RSS while decoding (VmHWM, its mark reset after the imports and again "
               "after a prefill) minus its RSS after the imports: weights, graph constants, states, activations and "
               "allocator arenas; host memory only")
RECOMPUTE_NOTE = ("full and torch: one full forward over `context` tokens per generated token (what re-running the "
                  "whole sequence costs); stripedhyena: the package's prefill of the context, then one token per "
                  "call; all baselines run at recompute_contexts only")


def ratios(result: DecodeResult) -> dict[str, dict]:
    """Per batch: stateful ms/token and peak MB at the longest vs the shortest context, and the stateful
    speedup (a baseline's ms per step / the stateful one's, i.e. the tokens/s ratio) at each recompute context."""
    settings, out = result.settings, {}
    low, high = settings.contexts[0], settings.contexts[-1]
    growth = f"{format_length(high)}_vs_{format_length(low)}"
    for batch in settings.batches:
        key = f"batch{batch}"
        first, last = result.get("stateful", low, batch), result.get("stateful", high, batch)
        if high > low and first and last:
            out.setdefault(f"stateful_ms_per_token_{growth}", {})[key] = last.ms_per_token / first.ms_per_token
            if first.peak_mb > 0:
                out.setdefault(f"stateful_peak_mb_{growth}", {})[key] = last.peak_mb / first.peak_mb
        for series in BASELINES:
            for context in settings.recompute_contexts:
                ours, theirs = result.get("stateful", context, batch), result.get(series, context, batch)
                if ours and theirs:
                    out.setdefault(f"stateful_speedup_vs_{series}", {}).setdefault(key, {})[format_length(context)] = (
                        theirs.ms_per_token / ours.ms_per_token)
    return out


def to_json(result: DecodeResult) -> dict:
    """Settings, machine, exports, skipped baselines, every cell (with tokens/s) and the ratios."""
    return {"source": result.source, "settings": asdict(result.settings), "machine": result.machine,
            "exports": result.exports, "skipped": result.skipped,
            "states": STATES[result.settings.states] + STATES_NOTE,
            "cells": [{**asdict(c), "tokens_per_s": c.tokens_per_s} for c in result.cells],
            "ratios": ratios(result), "memory": MEMORY_NOTE, "recompute": RECOMPUTE_NOTE}


def table(result: DecodeResult) -> Table:
    """One row per (context, batch, series): ms/token, tokens/s, peak and state MB, stateful speedup."""
    settings, machine = result.settings, result.machine
    out = Table(title=f"{label(result.source)}: decode, {settings.threads} thread(s), states {settings.states}, "
                      f"{machine.get('cpu', '?')}, load {machine.get('load_average_1m', '?')}")
    for column in ("context", "batch", "series", "ms/token", "tokens/s", "peak MB", "state MB", "stateful speedup"):
        out.add_column(column, justify="left" if column == "series" else "right")
    for cell in result.cells:
        ours = result.get("stateful", cell.context, cell.batch)
        speedup = "" if cell.series == "stateful" or ours is None else f"{cell.ms_per_token / ours.ms_per_token:.1f}x"
        out.add_row(format_length(cell.context), str(cell.batch), cell.series, f"{cell.ms_per_token:.2f}",
                    f"{cell.tokens_per_s:,.1f}", f"{cell.peak_mb:.0f}",
                    "" if cell.state_mb is None else f"{cell.state_mb:.2f}", speedup)
    return out


def plot(results: dict[str, DecodeResult], path: Path) -> None:
    """ms/token against context (log-log), one panel per (model, batch), one line per series."""
    plt = require_matplotlib()
    panels = [(name, result, batch) for name, result in results.items() for batch in result.settings.batches]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), squeeze=False)
    for ax, (name, result, batch) in zip(axes[0], panels):
        for series in result.series:
            points = [(c.context, c.ms_per_token) for c in result.cells if c.series == series and c.batch == batch]
            ax.plot(*zip(*points), marker="o", label=series)
        contexts = result.settings.contexts
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(contexts, [format_length(c) for c in contexts])
        ax.set_xlabel("context (tokens)")
        ax.set_ylabel("ms per decode step")
        ax.set_title(f"{name}: batch {batch}, {result.settings.threads} thread(s)", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(str(next(iter(results.values())).machine.get("cpu", "")), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
