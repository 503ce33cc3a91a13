"""``rewrite``: FFT convolutions in an ONNX file from any exporter, verified against the input graph."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator

from hyena_deploy import metadata, onnx_io, tool_version
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.graph import constant_value, consumers, input_specs
from hyena_deploy.lengths import probe_lengths
from hyena_deploy.rewrite.replace import RewrittenSite, is_length_dynamic, rewrite_fftconvs, sites_json, static_length
from hyena_deploy.runtime import OrtModel
from hyena_deploy.strategies import chooser
from hyena_deploy.verify import OutputReport, Tolerance, compare


def _vocab_for(model: onnx.ModelProto, name: str) -> int:
    """Rows of the embedding table an integer input indexes (2 when it feeds no Gather)."""
    for node in consumers(model.graph).get(name, []):
        if node.op_type == "Gather" and node.input[1] == name:
            table = constant_value(model.graph, node.input[0])
            if table is not None:
                return int(table.shape[0])
    return 2


def random_feeds(model: onnx.ModelProto, batch: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random inputs: batch on axis 0, ``length`` on axis 1 where dynamic; token ids within the embedding."""
    return {name: rng.integers(0, _vocab_for(model, name), size=dims).astype(dtype)
            if np.issubdtype(dtype, np.integer) else rng.standard_normal(dims).astype(dtype)
            for name, (dims, dtype) in input_specs(model, batch, length).items()}


def compare_graphs(original: onnx.ModelProto, rewritten: onnx.ModelProto, lengths: list[int],
                   tolerance: Tolerance) -> list[OutputReport]:
    """The input graph in ONNX's reference evaluator (exact FFT at any size) vs the rewritten one in ORT."""
    reference = ReferenceEvaluator(original)
    runner = OrtModel(rewritten)
    rng = np.random.default_rng(int.from_bytes(os.urandom(8), "little"))
    reports = []
    for i, length in enumerate(lengths):
        batch = 3 if i % 2 == 0 else 1
        feeds = random_feeds(original, batch, length, rng)
        want = reference.run(None, feeds)
        got = runner.run([feeds[n] for n in runner.input_names])
        reports.extend(compare(name, f"B={batch} L={length}", np.asarray(w), g, tolerance)
                       for name, w, g in zip(runner.output_names, want, got))
    return reports


def rewrite_file(source: Path, output: Path, fftconv: str, max_seq_len: int | None, tolerance: Tolerance,
                 verify: bool = True, target: str = "onnxruntime") -> tuple[list[RewrittenSite], list[OutputReport]]:
    """Rewrite ``source`` into ``output``; nothing is written when verification fails."""
    model = onnx_io.load(source)
    dynamic = is_length_dynamic(model)
    if max_seq_len is not None and max_seq_len < 1:
        raise HyenaDeployError(f"--max-seq-len must be >= 1, got {max_seq_len}")
    if not dynamic and max_seq_len is not None and max_seq_len != static_length(model):
        raise HyenaDeployError(f"the graph has a static length {static_length(model)}; drop --max-seq-len")
    new, sites = rewrite_fftconvs(model, chooser(fftconv, target), max_seq_len)
    if not sites:
        raise HyenaDeployError(f"{source}: no FFT convolution found (nothing to rewrite)")
    length = max_seq_len if dynamic else static_length(model)
    metadata.write(new, {metadata.VERSION: tool_version(), metadata.STRATEGY: fftconv,
                         metadata.SITES: sites_json(sites), metadata.MAX_SEQ_LEN: str(length),
                         metadata.DYNAMIC_SEQ: str(dynamic).lower(), metadata.PRECISION: "fp32"})
    onnx_io.check(new)
    reports: list[OutputReport] = []
    if verify:
        del model.graph.value_info[:]  # stock dynamic exports carry wrong IRFFT shapes
        reports = compare_graphs(model, new, probe_lengths(length) if dynamic else [length], tolerance)
        failed = [r for r in reports if not r.passed]
        if failed:
            worst = max(failed, key=lambda r: r.rel_l2)
            raise HyenaDeployError(f"rewritten graph differs from the input: {worst.output} at {worst.case}: "
                                   f"rel L2 {worst.rel_l2:.2e} (nothing written)")
    onnx_io.save(new, output)
    return sites, reports
