"""``hyena-deploy bench``: PyTorch eager vs exported graphs, side by side, per sequence length (or, with
``--decode``, decode ms/token per context length: stateful graphs vs recompute baselines)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hyena_deploy.bench import decode_report, report
from hyena_deploy.bench.decode import BASELINES, STATES, run_decode_bench
from hyena_deploy.bench.runner import run_bench
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.report import console, write_json

FULL_ONLY = ("lengths", "backends")
DECODE_ONLY = ("contexts", "recompute_contexts", "baselines", "tokens", "batch", "states")


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
@click.option("--decode", is_flag=True,
              help="Decode ms/token and peak memory per context length: the stateful graph (export --stateful) "
                   "against re-running the full-sequence graph, PyTorch eager recompute and the stripedhyena "
                   "package's own recurrent generation.")
@click.option("--contexts", metavar="C,C,...",
              help="--decode: context lengths (default: those of 1k,8k,64k up to the model's maximum).")
@click.option("--recompute-contexts", metavar="C,C,...",
              help="--decode: the contexts (of --contexts) where baselines run (default: those up to 8k).")
@click.option("--baselines", default=",".join(BASELINES), show_default=True, metavar="B,B,...",
              help="--decode: full, torch, stripedhyena (skipped with a reason unless a StripedHyena checkpoint "
                   "and the package are there).")
@click.option("--tokens", type=int, default=32, show_default=True,
              help="--decode: timed decode steps per cell (after --warmup untimed ones).")
@click.option("--batch", default="1", show_default=True, metavar="B,B,...", help="--decode: batch sizes.")
@click.option("--states", type=click.Choice(list(STATES)), default="random", show_default=True,
              help="--decode: fill the stateful graph's states with random values of their shape, or by a real "
                   "prefill of the context.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write results as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a log-log plot of latency against length (needs matplotlib).")
def bench(source: str, lengths: str | None, backends: str, threads: int, repeats: int, warmup: int, rounds: int,
          decode: bool, contexts: str | None, recompute_contexts: str | None, baselines: str, tokens: int, batch: str,
          states: str, json_path: Path | None, plot_path: Path | None) -> None:
    """Median latency, tokens/s and peak memory of SOURCE per backend and length (batch 1).

    Each (backend, length) runs in a fresh process; graphs are exported per length (static length,
    batch 1) without verification, and every output is compared with PyTorch eager's instead.
    Peak MB is the worker's peak RSS above its RSS after importing the runtime: weights and graph
    constants, activations and allocator arenas (host memory only for trt).

    With --decode: ms per decode step and peak memory per context and batch, each cell in a fresh
    process; the stateful graph is exported per context (verified), the baselines run at
    --recompute-contexts (--repeats full forwards each); the JSON holds every cell and the ratios.
    """
    _check_mode(decode)
    if plot_path is not None:
        report.require_matplotlib()  # fail before minutes of measuring
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("loading", total=None)
        step = lambda done, total, what: progress.update(task, completed=done, total=total,  # noqa: E731
                                                         description=what)
        if decode:
            result = run_decode_bench(source, step, contexts=contexts, recompute=recompute_contexts,
                                      baselines=baselines, batches=batch, tokens=tokens, threads=threads,
                                      warmup=warmup, repeats=repeats, rounds=rounds, states=states)
        else:
            result = run_bench(source, lengths, backends, threads, repeats, warmup, rounds, step=step)
    if decode:
        _decode_outputs(result, json_path, plot_path)
        return
    for backend, reason in result.skipped.items():
        console.print(f"skipped {backend}: {escape(reason)}")
    console.print(report.table(result))
    if json_path is not None:
        write_json(json_path, report.to_json(result))
        console.print(f"wrote {json_path}")
    if plot_path is not None:
        report.plot([result], plot_path)
        console.print(f"wrote {plot_path}")


def _check_mode(decode: bool) -> None:
    """Options of the other mode given explicitly are a usage error."""
    context = click.get_current_context()
    explicit = [name for name in (FULL_ONLY if decode else DECODE_ONLY)
                if context.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT]
    if explicit:
        option = "--" + explicit[0].replace("_", "-")
        raise HyenaDeployError(f"{option} does not go with {'--decode' if decode else 'a full-sequence bench'} "
                               f"(use {'--contexts and --baselines' if decode else '--decode'})")


def _decode_outputs(result, json_path: Path | None, plot_path: Path | None) -> None:
    for series, reason in result.skipped.items():
        console.print(f"skipped {series}: {escape(reason)}")
    console.print(decode_report.table(result))
    for name, values in decode_report.ratios(result).items():
        console.print(f"{name}: {escape(str(_rounded(values)))}")
    if json_path is not None:
        write_json(json_path, decode_report.to_json(result))
        console.print(f"wrote {json_path}")
    if plot_path is not None:
        decode_report.plot({report.label(result.source): result}, plot_path)
        console.print(f"wrote {plot_path}")


def _rounded(values):
    return {k: _rounded(v) for k, v in values.items()} if isinstance(values, dict) else round(values, 2)
