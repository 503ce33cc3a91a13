"""``hyena-deploy rewrite``: replace FFT convolutions in an existing ONNX file."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from hyena_deploy import targets
from hyena_deploy.commands.options import make_tolerance, tolerance_options
from hyena_deploy.jobs.rewrite import rewrite_file
from hyena_deploy.strategies import CHOICES
from hyena_deploy.report import console, parity_table


@click.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--fftconv", type=click.Choice(CHOICES), default="monarch", show_default=True)
@click.option("--max-seq-len", type=int, help="Maximum length for graphs with a dynamic sequence axis (required there).")
@click.option("--target", type=click.Choice(targets.names()), default="onnxruntime", show_default=True,
              help="Runtime the graph is for: its measurements pick --fftconv auto, and a graph it rejects is refused.")
@tolerance_options
@click.option("--no-verify", is_flag=True, help="Skip the check against the input graph.")
def rewrite(model: Path, output: Path, fftconv: str, max_seq_len: int | None, target: str, atol: tuple[str, ...],
            rtol: tuple[str, ...], max_rel_l2: float, no_verify: bool) -> None:
    """Rewrite the FFT convolutions of MODEL (e.g. a stock torch.onnx dynamo export with DFT nodes)."""
    tolerance = make_tolerance(atol, rtol, max_rel_l2)
    with console.status("rewriting"):
        sites, reports, notes = rewrite_file(model, output, fftconv, max_seq_len, tolerance, verify=not no_verify,
                                             target=target)
    for note in notes:
        console.print(f"note: {escape(note)}")
    console.print(f"{len(sites)} FFT convolution(s) rewritten with {fftconv}")
    if reports:
        console.print(parity_table(reports, title="parity vs the input graph"))
    console.print(f"wrote {output}")
