"""``hyena-deploy distill``."""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hyena_deploy.distill.checkpoint import check_output_dir, write_distilled
from hyena_deploy.distill.fit import METHODS
from hyena_deploy.distill import sites
from hyena_deploy.distill.run import (FitOptions, LayerFit, check_options, distill, filter_samples, hankel_plot,
                                      implicit_filters, report)
from hyena_deploy.loaded import LoadedModel
from hyena_deploy.registry import families
from hyena_deploy.report import console, write_json
from hyena_deploy.sources import SAMPLES_DIR, load_source, sample_names


def _checkpoint_directory(source: str) -> Path | None:
    """The directory a SOURCE was loaded from (the distilled checkpoint keeps a copy of it); None for code."""
    if Path(source).is_dir():
        return Path(source)
    if source in sample_names():
        return SAMPLES_DIR / source
    return None


@click.command("distill")
@click.argument("source")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Distilled checkpoint directory to create (written only when the logits check passes).")
@click.option("--tol", type=float, default=1e-3, show_default=True,
              help="Filter relative L2 error (over its full length) each channel's fit must reach.")
@click.option("--max-order", type=int, default=64, show_default=True,
              help="Largest real state dimension per channel (a conjugate pair counts 2).")
@click.option("--method", type=click.Choice(METHODS), default="hankel", show_default=True,
              help="How the poles are found (the residues are always least squares over the whole filter).")
@click.option("--refine", is_flag=True, help="Refine the poles by nonlinear least squares on the filter samples.")
@click.option("--direct", is_flag=True, help="Fit a direct term at t = 0 too (folded into the D skip).")
@click.option("--max-logits-err", type=float, default=1e-2, show_default=True,
              help="Largest relative L2 of the distilled model's outputs against the original's.")
@click.option("--report", "report_path", type=click.Path(path_type=Path), help="Write a JSON report here.")
@click.option("--plot", type=click.Path(path_type=Path), help="Write the Hankel singular value plot here (PNG/SVG).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random check inputs.")
def distill_command(source: str, output: Path, tol: float, max_order: int, method: str, refine: bool,
                    direct: bool, max_logits_err: float, report_path: Path | None, plot: Path | None,
                    seed: int) -> None:
    """Distil SOURCE's implicit long filters into modal (state-space) form: a checkpoint export accepts.

    For a FILE.py:factory model the filters are its FFT convolutions as measured in the traced graph, and
    OUTPUT holds their fits only: give it to `export SOURCE --stateful --distilled OUTPUT`.
    """
    base = _checkpoint_directory(source)
    check_output_dir(output)
    options = FitOptions(tol, max_order, method, refine, direct)
    check_options(options, max_logits_err)
    loaded = load_source(source)
    if base is None:
        _distill_traced(source, loaded, output, options, max_logits_err, report_path, plot, seed)
        return
    family = next((f.name for f in families().values() if f.matches(base)), "unknown")
    found = implicit_filters(loaded.module)
    total = sum(filter_samples(module).shape[0] for _, module, _ in found)
    with _progress() as progress:
        task = progress.add_task("fitting", total=max(total, 1))
        fits, layers, errors = distill(loaded, options, max_logits_err, seed,
                                       advance=lambda name: progress.update(task, advance=1, description=name))
    payload = report(source, options, fits, errors)
    write_distilled(output, base, family, layers, _fit_settings(payload))
    _finish(payload, fits, output, report_path, plot)


def _distill_traced(source: str, loaded: LoadedModel, output: Path, options: FitOptions, max_logits_err: float,
                    report_path: Path | None, plot: Path | None, seed: int) -> None:
    length = sites.max_length(loaded)
    with _progress() as progress:
        task = progress.add_task(f"tracing and measuring at {length}", total=None)
        graph, measured = sites.measured_sites(loaded, length)
        progress.update(task, total=sum(m.filter.h.shape[0] for m in measured), completed=0)
        fitted = sites.fit_sites(measured, options.tol, options.max_order, options.method, options.direct,
                                 options.refine, advance=lambda name: progress.update(task, advance=1,
                                                                                      description=name))
        progress.update(task, description="checking the distilled graph's outputs")
        errors = sites.check_logits(loaded, graph, measured, fitted, length, max_logits_err, seed)
    layers = [LayerFit(f.module, f.samples, f.fits, [list(range(f.samples.shape[0]))],
                       sites.hankel(f, options.max_order)) for f in fitted]
    payload = report(source, options, layers, errors)
    sites.write_sites(output, loaded, length, fitted, _fit_settings(payload))
    _finish(payload, layers, output, report_path, plot)
    console.print(f"use it with: hyena-deploy export {source} -o DIR --stateful --distilled {output}")


def _progress() -> Progress:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(*columns, console=console, transient=True, disable=not console.is_terminal)


def _fit_settings(payload: dict) -> dict:
    """What the written distillation records of how it was fitted."""
    return {k: payload[k] for k in ("tol", "max_order", "method", "refine", "direct", "logits_rel_l2")}


def _finish(payload: dict, fits: list[LayerFit], output: Path, report_path: Path | None, plot: Path | None) -> None:
    """The optional report and plot, then the summary table."""
    if report_path is not None:
        write_json(report_path, payload)
    if plot is not None:
        hankel_plot(plot, fits)
    _print(payload, output)


def _print(payload: dict, output: Path) -> None:
    table = Table(title="distilled filters")
    for column in ("layer", "channels", "order min/median/max", "filter rel L2 max", "state bytes before -> after"):
        table.add_column(column, justify="left" if column == "layer" else "right")
    for layer in payload["layers"]:
        for i, group in enumerate(layer["groups"]):
            name = layer["module"] + (f" [{i}]" if len(layer["groups"]) > 1 else "")
            state = layer["state_bytes"]
            table.add_row(name, str(group["channels"]),
                          f"{group['order_min']}/{group['order_median']:g}/{group['order_max']}",
                          f"{group['filter_error_max']:.1e}",
                          f"{state['history']:,} -> {state['modal']:,}" if i == 0 else "")
    console.print(table)
    worst = max(payload["logits_rel_l2"].values())
    total = payload["state_bytes_per_sequence"]
    console.print(f"outputs rel L2 vs original: {worst:.2e} (worst case); streaming state per sequence "
                  f"{total['before']:,} -> {total['after']:,} bytes")
    console.print(f"wrote {output}")

