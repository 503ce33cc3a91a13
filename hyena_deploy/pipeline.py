"""The export job: trace -> find -> rewrite -> verify -> write; and the standalone parity check."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hyena_deploy import metadata, onnx_io, tool_version
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.lengths import check_right_padding, make_length_dynamic, probe_lengths, run_torch
from hyena_deploy.loaded import LoadedModel
from hyena_deploy.precision import apply_precision, default_tolerance
from hyena_deploy.rewrite.replace import RewrittenSite, rewrite_fftconvs, sites_json
from hyena_deploy.runtime import Backend, OrtModel
from hyena_deploy.sources import load_source
from hyena_deploy.strategies import chooser
from hyena_deploy.trace import trace
from hyena_deploy.verify import OutputReport, Tolerance, compare

Progress = Callable[[str], None]


@dataclass
class ExportResult:
    """What an export produced and measured."""

    files: list[Path]
    sites: list[RewrittenSite]
    reports: list[OutputReport]
    max_seq_len: int
    dynamic_seq_len: bool
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Lengths:
    """Static length, or dynamic up to a maximum."""

    length: int
    dynamic: bool


def resolve_lengths(loaded: LoadedModel, seq_len: int | None, max_seq_len: int | None) -> Lengths:
    """Validate --seq-len / --max-seq-len against the model; default to dynamic up to its declared max."""
    if seq_len is not None and max_seq_len is not None:
        raise HyenaDeployError("give --seq-len or --max-seq-len, not both")
    chosen = seq_len if seq_len is not None else max_seq_len
    if chosen is None:
        if loaded.max_seq_len is not None:
            return Lengths(loaded.max_seq_len, True)
        return Lengths(loaded.example_inputs[0].shape[1], False)
    if chosen < 1:
        raise HyenaDeployError(f"sequence length must be >= 1, got {chosen}")
    if loaded.max_seq_len is not None and chosen > loaded.max_seq_len:
        raise HyenaDeployError(f"sequence length {chosen} is past the model's maximum {loaded.max_seq_len}")
    return Lengths(chosen, seq_len is None)


def export_model(source: str | LoadedModel, output: Path, *, fftconv: str = "auto", target: str = "onnxruntime",
                 seq_len: int | None = None, max_seq_len: int | None = None, batch: int | None = None,
                 opset: int = 20, precision: str = "fp32", keep_io_types: bool = True,
                 tolerance: Tolerance | None = None, verify: bool = True,
                 progress: Progress = lambda _: None) -> ExportResult:
    """Export ``source`` to ``output`` with every FFT convolution rewritten; verify parity unless told not to.

    ``precision`` fp16/bf16 lowers the graph (FFT convolutions stay fp32; see hyena_deploy.precision);
    ``tolerance`` defaults to that precision's. Nothing is written when verification fails.
    """
    tolerance = tolerance or default_tolerance(precision)  # also rejects an unknown precision early
    choose = chooser(fftconv, target)
    if batch is not None and batch < 1:
        raise HyenaDeployError(f"--batch must be >= 1, got {batch}")
    loaded = source if isinstance(source, LoadedModel) else load_source(source)
    lengths = resolve_lengths(loaded, seq_len, max_seq_len)
    notes = list(loaded.notes)
    if lengths.dynamic:
        progress(f"checking that right-padding to {lengths.length} is exact")
        check_right_padding(loaded, lengths.length, np.random.default_rng())
    progress("tracing with torch.onnx (dynamo)")
    model = trace(loaded, lengths.length, batch, opset)
    progress("finding and rewriting FFT convolutions")
    model, sites = rewrite_fftconvs(model, choose)
    if not sites:
        notes.append("no FFT long convolution found: the graph was exported as traced")
    if lengths.dynamic:
        make_length_dynamic(model, lengths.length)
    if precision != "fp32":
        progress(f"lowering to {precision} (FFT convolutions stay fp32)")
        model = apply_precision(model, precision, keep_io_types, notes)
    metadata.write(model, {
        metadata.VERSION: tool_version(), metadata.STRATEGY: fftconv, metadata.SITES: sites_json(sites),
        metadata.MAX_SEQ_LEN: str(lengths.length), metadata.DYNAMIC_SEQ: str(lengths.dynamic).lower(),
        metadata.DYNAMIC_BATCH: str(batch is None).lower(), metadata.PRECISION: precision,
        metadata.SOURCE_SHA256: loaded.source_sha256, metadata.SOURCE: loaded.name})
    onnx_io.check(model)
    reports: list[OutputReport] = []
    if verify:
        progress("verifying against PyTorch")
        reports = check_parity(loaded, OrtModel(model), _verify_lengths(lengths), batch, tolerance)
        failed = [r for r in reports if not r.passed]
        if failed:
            worst = max(failed, key=lambda r: r.rel_l2)
            raise HyenaDeployError(f"parity failed: {worst.output} at {worst.case}: rel L2 {worst.rel_l2:.2e}, "
                                   f"max abs {worst.max_abs:.2e} (nothing written)")
    files = onnx_io.save(model, output)
    return ExportResult(files, sites, reports, lengths.length, lengths.dynamic, notes)


def _verify_lengths(lengths: Lengths) -> list[int]:
    return probe_lengths(lengths.length) if lengths.dynamic else [lengths.length]


def check_parity(loaded: LoadedModel, runner: Backend, lengths: list[int], batch: int | None,
                 tolerance: Tolerance, given: list[tuple[str, list[np.ndarray]]] = ()) -> list[OutputReport]:
    """PyTorch vs ``runner`` on fresh random inputs at each length (batch 3 and 1), plus ``given`` inputs."""
    rng = np.random.default_rng(int.from_bytes(os.urandom(8), "little"))
    cases: list[tuple[str, list[np.ndarray]]] = []
    for i, length in enumerate(lengths):
        b = batch or (3 if i % 2 == 0 else 1)
        inputs = loaded.make_inputs(b, length, rng)
        cases.append((f"B={b} L={length}", [x.numpy() for x in inputs]))
    cases.extend(given)
    reports = []
    for case, arrays in cases:
        want = run_torch(loaded, tuple(torch.from_numpy(a) for a in arrays))
        got = runner.run(arrays)
        if len(want) != len(got):
            raise HyenaDeployError(f"PyTorch gives {len(want)} outputs, the ONNX model {len(got)}")
        reports.extend(compare(name, case, w, g, tolerance) for name, w, g in zip(runner.output_names, want, got))
    return reports
