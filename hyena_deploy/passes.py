"""Graph passes with one contract, and the one pass list export and rewrite both run.

A pass takes a model and returns a new one (the input is never changed) plus notes for the user. Each job
builds its list with :func:`graph_passes` and runs it with :func:`run_passes`; the FFT-convolution rewrite
does its own cleanup (dead nodes, duplicate constants, order) once, at its end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx

from hyena_deploy.lengths import make_length_dynamic
from hyena_deploy.precision import apply_precision
from hyena_deploy.rewrite.find import SkippedSite
from hyena_deploy.rewrite.replace import RewrittenSite, rewrite_fftconvs


@dataclass
class PassResult:
    """A pass's new model and what the user should know about it."""

    model: onnx.ModelProto
    notes: list[str] = field(default_factory=list)
    sites: list[RewrittenSite] = field(default_factory=list)
    skipped: list[SkippedSite] = field(default_factory=list)


GraphPass = Callable[[onnx.ModelProto], PassResult]


def fftconv_pass(choose: Callable[[np.ndarray], str], max_seq_len: int | None = None) -> GraphPass:
    """Every FFT long convolution replaced by the strategy ``choose(h)`` names (see rewrite.replace)."""
    def run(model: onnx.ModelProto) -> PassResult:
        new, sites, skipped = rewrite_fftconvs(model, choose, max_seq_len)
        notes = [str(s) for s in skipped] + ([] if sites else ["no FFT long convolution found: the graph is left as traced"])
        return PassResult(new, notes, sites, skipped)
    return run


def dynamic_length_pass(max_len: int) -> GraphPass:
    """Inputs of any length 1..max_len, right-padded in the graph (exact for causal models)."""
    def run(model: onnx.ModelProto) -> PassResult:
        out = onnx.ModelProto()
        out.CopyFrom(model)
        make_length_dynamic(out, max_len)
        return PassResult(out)
    return run


def precision_pass(precision: str, keep_io_types: bool) -> GraphPass:
    """Compute in fp16/bf16 with FFT-convolution islands and sensitive ops kept fp32."""
    def run(model: onnx.ModelProto) -> PassResult:
        notes: list[str] = []
        return PassResult(apply_precision(model, precision, keep_io_types, notes), notes)
    return run


def graph_passes(choose: Callable[[np.ndarray], str], *, pad_to: int | None = None, measure_at: int | None = None,
                 precision: str = "fp32", keep_io_types: bool = True) -> list[GraphPass]:
    """The pass list: rewrite FFT convolutions (measured at ``measure_at`` for graphs already dynamic), make the
    length dynamic up to ``pad_to`` (graphs traced at a static length), lower the precision."""
    passes = [fftconv_pass(choose, measure_at)]
    if pad_to is not None:
        passes.append(dynamic_length_pass(pad_to))
    if precision != "fp32":
        passes.append(precision_pass(precision, keep_io_types))
    return passes


def run_passes(model: onnx.ModelProto, passes: list[GraphPass]) -> PassResult:
    """Run ``passes`` in order; the last model, all notes, all rewritten and all skipped sites."""
    result = PassResult(model)
    for graph_pass in passes:
        step = graph_pass(result.model)
        result = PassResult(step.model, result.notes + step.notes, result.sites + step.sites,
                            result.skipped + step.skipped)
    return result
