"""``hyena-deploy bench``: PyTorch eager vs exported graphs, side by side, per sequence length."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hyena_deploy.bench import report
from hyena_deploy.bench.runner import run_bench
from hyena_deploy.report import console, write_json


@click.command()
@click.argument("source")
@click.option("--lengths", metavar="L,L,...",
              help="Sequence lengths, e.g. 1k,4k,16k,64k (k = 1024). Default: those of 1k,4k,16k,64k up to the "
                   "model's maximum; a length past the maximum is an error.")
@click.option("--backends", default="torch,ort:auto", show_default=True, metavar="B,B,...",
              help="torch (PyTorch eager), ort:<strategy> (export with that --fftconv, run in ONNX Runtime CPU), "
                   "trt (TensorRT engine; skipped with a reason when TensorRT or a GPU is missing).")
@click.option("--threads", type=int, default=2, show_default=True,
              help="Intra-op threads for PyTorch and ONNX Runtime.")
@click.option("--repeats", type=int, default=5, show_default=True, help="Timed runs per measurement (median).")
@click.option("--warmup", type=int, default=1, show_default=True, help="Untimed runs before timing.")
@click.option("--rounds", type=int, default=1, show_default=True,
              help="Run every backend this many times per length, round robin, each in a fresh process.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write results as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a log-log plot of latency against length (needs matplotlib).")
def bench(source: str, lengths: str | None, backends: str, threads: int, repeats: int, warmup: int, rounds: int,
          json_path: Path | None, plot_path: Path | None) -> None:
    """Median latency, tokens/s and peak memory of SOURCE per backend and length (batch 1).

    Each (backend, length) runs in a fresh process; graphs are exported per length (static length,
    batch 1) without verification, and every output is compared with PyTorch eager's instead.
    Peak MB is the worker's peak RSS above its RSS after importing the runtime: weights and graph
    constants, activations and allocator arenas (host memory only for trt).
    """
    if plot_path is not None:
        report.require_matplotlib()  # fail before minutes of measuring
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("loading", total=None)
        result = run_bench(source, lengths, backends, threads, repeats, warmup, rounds,
                           step=lambda done, total, what: progress.update(task, completed=done, total=total,
                                                                         description=what))
    for backend, reason in result.skipped.items():
        console.print(f"skipped {backend}: {escape(reason)}")
    console.print(report.table(result))
    if json_path is not None:
        write_json(json_path, report.to_json(result))
        console.print(f"wrote {json_path}")
    if plot_path is not None:
        report.plot([result], plot_path)
        console.print(f"wrote {plot_path}")
