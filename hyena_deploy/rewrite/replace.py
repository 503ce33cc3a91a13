"""Rewrite every FFT convolution of an ONNX graph with a chosen strategy; leave the rest exactly as traced."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
import onnx

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.names import FFTCONV_PREFIX
from hyena_deploy.graph import (NodeBuilder, axis1_length, dedupe_initializers, input_specs, producers,
                                remove_dead, topological_sort)
from hyena_deploy.rewrite.find import FFTConvSite, SkippedSite, find_sites
from hyena_deploy.rewrite.layout import build_site
from hyena_deploy.rewrite.probe import Boundary, Filter, NotAConvolution, float_shapes, measure
from hyena_deploy.spectral import support
from hyena_deploy.strategies import BUILDERS

PREFIX_TOLERANCE = 1e-5  # filter at a short length vs the same lags of the filter at the maximum
TWO_SIDED = ("monarch", "dft", "direct")  # strategies that take filters with negative lags

StrategyChooser = Callable[[np.ndarray], str]


@dataclass(frozen=True)
class RewrittenSite:
    """What was done to one long convolution (``lead``: its negative lags, 0 when causal)."""

    output: str
    strategy: str
    channels: int
    taps: int
    lead: int = 0
    module: str = ""


@dataclass(frozen=True)
class MeasuredSite:
    """A site with the boundary the probe kept and the filter measured across it."""

    site: FFTConvSite
    boundary: Boundary
    filter: Filter


def dummy_feeds(model: onnx.ModelProto, length: int, batch: int = 1) -> dict[str, np.ndarray]:
    """Zero inputs with batch on axis 0 and ``length`` on axis 1 wherever those axes are dynamic."""
    return {name: np.zeros(dims, dtype) for name, (dims, dtype) in input_specs(model, batch, length).items()}


def is_length_dynamic(model: onnx.ModelProto) -> bool:
    """True when some graph input has a symbolic axis 1."""
    return any(len(vi.type.tensor_type.shape.dim) > 1 and axis1_length(vi) is None for vi in model.graph.input)


def _is_batch_dynamic(model: onnx.ModelProto) -> bool:
    inits = {i.name for i in model.graph.initializer}
    return any(vi.type.tensor_type.shape.dim and not vi.type.tensor_type.shape.dim[0].HasField("dim_value")
               for vi in model.graph.input if vi.name not in inits)


def static_length(model: onnx.ModelProto) -> int | None:
    """Axis-1 length of the first graph input with a static axis 1."""
    return next((n for n in map(axis1_length, model.graph.input) if n is not None), None)


def _measure_site(model: onnx.ModelProto, site: FFTConvSite, shapes: dict[str, tuple[int, ...]],
                  feeds: dict[str, np.ndarray], length: int, seed: int) -> MeasuredSite:
    """The widest boundary of ``site`` whose region is a fixed convolution, or the first reason none is.

    ``shapes`` holds the float32 candidates only: an integer signal is taken after its cast.
    """
    dynamic_batch = _is_batch_dynamic(model)
    failure = shape_failure = None
    for output in site.outputs:
        for signal in site.signals:
            if signal not in shapes or output not in shapes:
                continue
            boundary = Boundary(signal, output)
            try:
                return MeasuredSite(site, boundary, measure(model, site, boundary, shapes, feeds, dynamic_batch,
                                                         length, seed))
            except NotAConvolution as exc:
                if "no axis of the output" in str(exc):
                    shape_failure = shape_failure or exc
                else:
                    failure = failure or exc
    raise failure or shape_failure or NotAConvolution("its signal and output are not float32 tensors")


def _remeasure(model: onnx.ModelProto, found: MeasuredSite, length: int, seed: int) -> Filter:
    """The same boundary and axes at another length (graphs with a dynamic length)."""
    feeds = dummy_feeds(model, length)
    shapes = float_shapes(model, [found.boundary.signal, found.boundary.output], feeds)
    return measure(model, found.site, found.boundary, shapes, feeds, _is_batch_dynamic(model), length, seed,
                   axes=(found.filter.signal_axis, found.filter.output_axis))


def _prefix_error(short: Filter, full: Filter) -> float:
    """Largest difference between the filter at a short length and the same lags at the maximum."""
    length = short.length
    if not np.array_equal(short.channel_map, full.channel_map):
        return np.inf
    scale = max(np.abs(full.h).max(), 1e-30)
    return float(np.abs(short.lags(length) - full.lags(length)).max() / scale)


def _skip(site: FFTConvSite, reason: str) -> SkippedSite:
    return SkippedSite(site.inverse_dft, site.module, reason)


def measure_sites(model: onnx.ModelProto, max_seq_len: int | None = None,
                  seed: int = 0) -> tuple[list[MeasuredSite], list[SkippedSite]]:
    """Every FFT convolution of ``model`` measured as an operator, and the sites that are not one (with why).

    Static graphs are measured at their own length. Graphs with a dynamic axis 1 need
    ``max_seq_len``: filters are measured there and at a short odd length, and the short one must
    equal the same lags of the long one (right-padding inside a strategy is then exact).
    ``model`` must carry no ``value_info`` (the exporter's is wrong around IRFFT).
    """
    sites, skipped = find_sites(model)
    if not sites:
        return [], skipped
    dynamic = is_length_dynamic(model)
    length = max_seq_len if dynamic else static_length(model)
    if length is None:
        raise HyenaDeployError("the graph's sequence length is dynamic: give the maximum length (--max-seq-len)")
    feeds = dummy_feeds(model, length)
    shapes = float_shapes(model, sorted({n for s in sites for n in (*s.signals, *s.outputs)}), feeds)
    measured: list[MeasuredSite] = []
    for index, site in enumerate(sites):
        try:
            measured.append(_measure_site(model, site, shapes, feeds, length, seed + index))
        except NotAConvolution as exc:
            skipped.append(_skip(site, str(exc)))
    if not dynamic:
        return measured, skipped
    short = min(length, 17 if length > 17 else max(1, length // 2 + 1))
    kept = []
    for found in measured:
        try:
            err = _prefix_error(_remeasure(model, found, short, seed), found.filter)
        except NotAConvolution as exc:
            skipped.append(_skip(found.site, f"at length {short}: {exc}"))
            continue
        if not err <= PREFIX_TOLERANCE:
            skipped.append(_skip(found.site, (
                f"its filter at length {short} is not the filter at the maximum length {length} cut to "
                f"those lags (error {err:.1e}), so one rewrite cannot serve every length; "
                "export a static length instead")))
            continue
        kept.append(found)
    return kept, skipped


def rewrite_fftconvs(model: onnx.ModelProto, choose: StrategyChooser, max_seq_len: int | None = None,
                     seed: int = 0, substitute: Callable[[MeasuredSite], np.ndarray] | None = None,
                     measured: tuple[list[MeasuredSite], list[SkippedSite]] | None = None
                     ) -> tuple[onnx.ModelProto, list[RewrittenSite], list[SkippedSite]]:
    """A copy of ``model`` with each FFT convolution replaced by the strategy ``choose(h)`` names.

    Returns the new model, the rewritten sites and the sites left exactly as traced (with the reason);
    sites are measured by :func:`measure_sites` (``max_seq_len`` is for graphs with a dynamic length).
    ``substitute(site)``, when given, is the filter to build instead of the measured one (a distillation);
    ``measured``, what :func:`measure_sites` already returned for ``model`` (not measured again).
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.value_info[:]
    measured, skipped = measure_sites(out, max_seq_len, seed) if measured is None else (measured[0], list(measured[1]))
    if not measured:
        return out, [], skipped  # nothing to replace: the graph stays exactly as traced
    done = []
    made_by = producers(out.graph)
    replaced: set[str] = set()
    for index, found in enumerate(measured):
        filt, output = found.filter, found.boundary.output
        if substitute is not None:
            filt = replace(filt, h=substitute(found))
        strategy = choose(filt.h)
        if strategy not in BUILDERS:
            raise HyenaDeployError(f"unknown FFT-convolution strategy {strategy!r} (known: {', '.join(BUILDERS)})")
        if filt.lead and strategy not in TWO_SIDED:
            skipped.append(_skip(found.site, (
                f"its filter is two-sided ({filt.lead} negative lags) and strategy {strategy} takes causal filters "
                f"only: choose {', '.join(TWO_SIDED)}")))
            continue
        if output in replaced:
            continue
        replaced.add(output)
        old = made_by[output]
        old.output[list(old.output).index(output)] = f"{output}__replaced"
        nb = NodeBuilder(f"{FFTCONV_PREFIX}{index}")
        build_site(nb, BUILDERS[strategy], found.boundary.signal, output, filt)
        out.graph.node.extend(nb.nodes)
        out.graph.initializer.extend(nb.initializers)
        done.append(RewrittenSite(output, strategy, int(filt.h.shape[0]), support(filt.h[:, filt.lead:]),
                                  filt.lead, found.site.module))
    remove_dead(out.graph)
    dedupe_initializers(out.graph)
    topological_sort(out.graph)
    _ensure_opsets(out)
    return out, done, skipped


def _ensure_opsets(model: onnx.ModelProto) -> None:
    have = {o.domain for o in model.opset_import}
    for node in model.graph.node:
        if node.domain not in have and node.domain not in ("", "ai.onnx"):
            model.opset_import.append(onnx.helper.make_opsetid(node.domain, 1))
            have.add(node.domain)


def sites_json(sites: list[RewrittenSite]) -> list[dict]:
    """Sites as plain dicts for metadata and reports."""
    return [asdict(s) for s in sites]
