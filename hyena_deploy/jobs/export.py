"""The export job: trace -> find -> rewrite -> verify -> write; and the standalone parity check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx

from hyena_deploy import metadata, onnx_io, targets, tool_version
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.lengths import NotCausal, check_right_padding, probe_lengths
from hyena_deploy.loaded import LoadedModel
from hyena_deploy.metadata import GraphInfo
from hyena_deploy.passes import graph_passes, run_passes
from hyena_deploy.rewrite.replace import RewrittenSite, sites_json
from hyena_deploy.runners import Runner
from hyena_deploy.runners.ort_runner import OrtRunner
from hyena_deploy.runners.torch_runner import TorchRunner
from hyena_deploy.sources import load_source
from hyena_deploy.strategies import chooser
from hyena_deploy.trace import trace
from hyena_deploy.verify.bisect import bisect_summary
from hyena_deploy.verify.cases import Case, fresh_rng, random_cases
from hyena_deploy.verify.comparator import compare, require_parity
from hyena_deploy.verify.metrics import OutputReport, Tolerance, default_tolerance

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
    ``tolerance`` defaults to that precision's. ``target`` (see hyena_deploy.targets) picks ``auto``'s
    measurements, and a graph it would reject is refused. Nothing is written when verification fails.
    """
    tolerance = tolerance or default_tolerance(precision)  # also rejects an unknown precision early
    choose = chooser(fftconv, targets.get(target).crossovers)
    if batch is not None and batch < 1:
        raise HyenaDeployError(f"--batch must be >= 1, got {batch}")
    loaded = source if isinstance(source, LoadedModel) else load_source(source, seq_len or max_seq_len)
    lengths = resolve_lengths(loaded, seq_len, max_seq_len)
    not_causal: NotCausal | None = None
    if lengths.dynamic:
        progress(f"checking that right-padding to {lengths.length} is exact")
        try:
            check_right_padding(loaded, lengths.length, np.random.default_rng())
        except NotCausal as exc:  # exact after all if two-sided FFT convolutions cause it: proven by verification
            not_causal = exc
    progress("tracing with torch.onnx (dynamo)")
    traced = trace(loaded, lengths.length, batch, opset)
    progress("finding and rewriting FFT convolutions")
    passes = graph_passes(choose, pad_to=lengths.length if lengths.dynamic else None, precision=precision,
                          keep_io_types=keep_io_types)
    result = run_passes(traced, passes)
    if not_causal is not None and not (verify and any(site.lead for site in result.sites)):
        raise not_causal
    model = result.model
    metadata.write(model, GraphInfo(
        tool_version(), fftconv, sites_json(result.sites), lengths.length, lengths.dynamic, batch is None, precision,
        loaded.name, loaded.source_sha256, target, [asdict(s) for s in result.skipped]).props())
    onnx_io.check(model)
    warnings = [str(p) for p in targets.require_compatible(model, target,
                                                           f"the exported graph does not run on {target}")]
    reports: list[OutputReport] = []
    if verify:
        progress("verifying against PyTorch")
        cases = {c.label: c for c in parity_cases(loaded, _verify_lengths(lengths), batch,
                                                  max_len=lengths.length, dynamic=lengths.dynamic)}
        reports = compare(TorchRunner(loaded), OrtRunner(model), cases.values(), tolerance)
        if not_causal is not None and not all(r.passed for r in reports):
            raise HyenaDeployError(f"{not_causal} (zeroing the padding before its two-sided FFT convolutions "
                                   "does not make it exact)")
        require_parity(reports, "parity failed", explain=lambda worst: _explain(loaded, model, tolerance, lengths,
                                                                               cases[worst.case].inputs))
    files = onnx_io.save(model, output)
    return ExportResult(files, result.sites, reports, lengths.length, lengths.dynamic,
                        [*loaded.notes, *result.notes, *warnings])


def _explain(loaded: LoadedModel, model: onnx.ModelProto, tolerance: Tolerance, lengths: Lengths,
             inputs: list[np.ndarray]) -> str:
    """The first diverging module on the failing inputs; for short inputs of a dynamic graph, the way out."""
    where = bisect_summary(loaded, model, tolerance, inputs)
    length = inputs[0].shape[1] if inputs and inputs[0].ndim > 1 else lengths.length
    if lengths.dynamic and length < lengths.length:
        where += (f"; a dynamic graph computes every length at its maximum {lengths.length}, which costs short inputs "
                  "accuracy: export length buckets (--buckets) or a static --seq-len")
    return where


def _verify_lengths(lengths: Lengths) -> list[int]:
    return probe_lengths(lengths.length) if lengths.dynamic else [lengths.length]


def parity_cases(loaded: LoadedModel, lengths: list[int], batch: int | None, given: list[Case] = (), *,
                 max_len: int | None = None, dynamic: bool = True) -> list[Case]:
    """Fresh random inputs at each length (batch 3 and 1), the model's own example inputs where they fit the graph
    (its batch, and lengths up to ``max_len``, or exactly ``max_len`` for a static graph) and ``given`` cases."""
    make = lambda b, n, rng: [x.numpy() for x in loaded.make_inputs(b, n, rng)]  # noqa: E731
    cases = random_cases(make, lengths, batch, fresh_rng())
    example = [x.detach().cpu().numpy() for x in loaded.example_inputs]

    def fits(x: np.ndarray) -> bool:
        length_ok = max_len is None or (x.shape[1] <= max_len if dynamic else x.shape[1] == max_len)
        return length_ok and (batch is None or x.shape[0] == batch)

    if all(fits(x) for x in example):
        cases.append(Case("example inputs", example))
    return [*cases, *given]


def check_parity(loaded: LoadedModel, candidate: Runner, lengths: list[int], batch: int | None,
                 tolerance: Tolerance, given: list[Case] = (), *, max_len: int | None = None,
                 dynamic: bool = True) -> list[OutputReport]:
    """PyTorch vs ``candidate`` on :func:`parity_cases`."""
    cases = parity_cases(loaded, lengths, batch, given, max_len=max_len, dynamic=dynamic)
    return compare(TorchRunner(loaded), candidate, cases, tolerance)
