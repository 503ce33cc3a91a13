"""``rewrite``: FFT convolutions in an ONNX file from any exporter, verified against the input graph."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from hyena_deploy import metadata, onnx_io, targets, tool_version
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.lengths import probe_lengths
from hyena_deploy.metadata import GraphInfo
from hyena_deploy.passes import graph_passes, run_passes
from hyena_deploy.rewrite.replace import RewrittenSite, is_length_dynamic, sites_json, static_length
from hyena_deploy.runners.ort_runner import OrtRunner
from hyena_deploy.runners.reference_runner import ReferenceRunner
from hyena_deploy.strategies import chooser
from hyena_deploy.verify.cases import fresh_rng, graph_inputs, random_cases
from hyena_deploy.verify.comparator import compare, require_parity
from hyena_deploy.verify.metrics import OutputReport, Tolerance


def rewrite_file(source: Path, output: Path, fftconv: str, max_seq_len: int | None, tolerance: Tolerance,
                 verify: bool = True, target: str = "onnxruntime"
                 ) -> tuple[list[RewrittenSite], list[OutputReport], list[str]]:
    """Rewrite ``source`` into ``output``: sites, parity reports and notes; nothing is written when verification
    fails or ``target`` would reject the result.

    The reference is the input graph in ONNX's reference evaluator (exact FFT at any size, unlike ONNX Runtime's
    DFT at non-power-of-two sizes); the candidate the rewritten graph in ONNX Runtime.
    """
    model = onnx_io.load(source)
    dynamic = is_length_dynamic(model)
    if max_seq_len is not None and max_seq_len < 1:
        raise HyenaDeployError(f"--max-seq-len must be >= 1, got {max_seq_len}")
    if not dynamic and max_seq_len is not None and max_seq_len != static_length(model):
        raise HyenaDeployError(f"the graph has a static length {static_length(model)}; drop --max-seq-len")
    result = run_passes(model, graph_passes(chooser(fftconv, targets.get(target).crossovers),
                                            measure_at=max_seq_len))
    if not result.sites:
        reasons = "; ".join(result.notes)
        raise HyenaDeployError(f"{source}: no FFT convolution rewritten (nothing to do){': ' + reasons if reasons else ''}")
    new = result.model
    length = max_seq_len if dynamic else static_length(model)
    batch_dims = [vi.type.tensor_type.shape.dim[0] for vi in model.graph.input if vi.type.tensor_type.shape.dim]
    metadata.write(new, GraphInfo(tool_version(), fftconv, sites_json(result.sites), length, dynamic,
                                  dynamic_batch=not all(d.HasField("dim_value") for d in batch_dims), target=target,
                                  skipped=[asdict(s) for s in result.skipped]).props())
    onnx_io.check(new)
    warnings = [str(p) for p in targets.require_compatible(new, target, f"the rewritten graph does not run on {target}")]
    reports: list[OutputReport] = []
    if verify:
        cases = random_cases(graph_inputs(model), probe_lengths(length) if dynamic else [length], None, fresh_rng())
        reports = compare(ReferenceRunner(model), OrtRunner(new), cases, tolerance)
        require_parity(reports, "rewritten graph differs from the input")
    onnx_io.save(new, output)
    return result.sites, reports, [*result.notes, *warnings]
