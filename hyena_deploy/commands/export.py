"""``hyena-deploy export``."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from hyena_deploy import targets
from hyena_deploy.bench.spec import parse_length
from hyena_deploy.jobs.buckets import export_buckets, paths_for
from hyena_deploy.commands.options import make_tolerance, tolerance_options
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.jobs.export import ExportResult, export_model
from hyena_deploy.report import console, parity_table
from hyena_deploy.stateful.cli import run_stateful_export
from hyena_deploy.strategies import CHOICES
from hyena_deploy.verify.metrics import PRECISIONS, default_tolerance


@click.command()
@click.argument("source")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="ONNX file to write (written only when verification passes).")
@click.option("--fftconv", type=click.Choice(CHOICES), default="auto", show_default=True,
              help="How each FFT long convolution is rewritten.")
@click.option("--target", type=click.Choice(targets.names()), default="onnxruntime", show_default=True,
              help="Runtime the graph is for: its measurements pick --fftconv auto, and a graph it would reject "
                   "is refused with the reason and the fix.")
@click.option("--seq-len", type=int, help="Static sequence length.")
@click.option("--max-seq-len", type=int,
              help="Dynamic sequence length 1..L (default: the model's own maximum, if it declares one).")
@click.option("--batch", type=int, help="Static batch size (default: dynamic batch).")
@click.option("--opset", type=int, default=20, show_default=True, help="ONNX opset (>= 20).")
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
              help="Compute type written into the graph (TensorRT 11 is strongly typed); FFT convolutions, "
                   "normalizations and reductions stay fp32.")
@click.option("--low-precision-io", is_flag=True,
              help="With --precision fp16/bf16, make the float graph inputs and outputs fp16/bf16 too.")
@click.option("--buckets", metavar="L,L,...",
              help="Length buckets, e.g. 1k,4k,16k: one dynamic-length graph per bucket (OUT.b1024.onnx, ...) "
                   "plus the manifest OUT.buckets.json for BucketedModel, written last.")
@tolerance_options
@click.option("--no-verify", is_flag=True, help="Skip the parity check against PyTorch.")
@click.option("--stateful", is_flag=True,
              help="Write a streaming-generation directory OUTPUT (decode.onnx + hyena_deploy.json) instead.")
@click.option("--max-context", type=int,
              help="With --stateful: longest prompt + generation (default: the model's maximum length).")
@click.option("--distilled", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="With --stateful, for a FILE.py:factory model: the `distill` output whose modal filters "
                   "the decode graph's states use (O(1) per token).")
def export(source: str, output: Path, fftconv: str, target: str, seq_len: int | None, max_seq_len: int | None,
           batch: int | None, opset: int, precision: str, low_precision_io: bool, buckets: str | None,
           atol: tuple[str, ...], rtol: tuple[str, ...], max_rel_l2: float | None, no_verify: bool,
           stateful: bool, max_context: int | None, distilled: Path | None) -> None:
    """Export SOURCE (model directory, sample name, or FILE.py:factory / package.module:factory) to ONNX."""
    tolerance = make_tolerance(atol, rtol, max_rel_l2, default_tolerance(precision))
    if stateful or max_context is not None or distilled is not None:
        if not stateful:
            raise HyenaDeployError(f"{'--max-context' if distilled is None else '--distilled'} needs --stateful")
        unsupported = {"--seq-len": seq_len, "--max-seq-len": max_seq_len, "--batch": batch, "--buckets": buckets,
                       "--fftconv (the decode graph has no FFT convolution)": fftconv != "auto",
                       "--precision fp16/bf16": precision != "fp32", "--low-precision-io": low_precision_io}
        run_stateful_export(source, output, max_context=max_context, opset=opset, tolerance=tolerance,
                            verify=not no_verify, distilled=distilled, unsupported=unsupported)
        return
    options = dict(fftconv=fftconv, target=target, batch=batch, opset=opset, precision=precision,
                   keep_io_types=not low_precision_io, tolerance=tolerance, verify=not no_verify)
    options.update({k: v for k, v in (("seq_len", seq_len), ("max_seq_len", max_seq_len)) if v is not None})
    with console.status("exporting") as status:
        if buckets is None:
            results = [export_model(source, output, progress=lambda msg: status.update(msg), **options)]
        else:
            sizes = [parse_length(part) for part in buckets.split(",") if part.strip()]
            results = export_buckets(source, output, sizes, progress=lambda msg: status.update(msg), **options)
    for result in results:
        _print_result(result)
    if buckets is not None:
        console.print(f"wrote {paths_for(output, [])[0]} ({len(results)} buckets)")


def _print_result(result: ExportResult) -> None:
    for note in result.notes:
        console.print(f"note: {escape(note)}")
    kinds = ", ".join(sorted({s.strategy for s in result.sites})) or "none"
    console.print(f"{len(result.sites)} long convolution(s) rewritten ({kinds}); "
                  f"sequence length {'1..' if result.dynamic_seq_len else ''}{result.max_seq_len}")
    if result.reports:
        console.print(parity_table(result.reports))
    for path in result.files:
        console.print(f"wrote {path}")
