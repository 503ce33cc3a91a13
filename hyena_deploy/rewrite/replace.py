"""Rewrite every FFT convolution of an ONNX graph with a chosen strategy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import onnx

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.graph import (NodeBuilder, axis1_length, dedupe_initializers, input_specs, producers,
                                remove_dead, topological_sort)
from hyena_deploy.rewrite.find import FFTConvSite, find_fftconv_sites
from hyena_deploy.rewrite.probe import measure_filter, region_model, signal_shapes
from hyena_deploy.spectral import support
from hyena_deploy.strategies import BUILDERS

PREFIX_TOLERANCE = 1e-5  # filter at a short length vs the prefix of the filter at the maximum
NODE_PREFIX = "hyena_fftconv"  # every replacement node's name starts with this

StrategyChooser = Callable[[np.ndarray], str]


@dataclass(frozen=True)
class RewrittenSite:
    """What was done to one long convolution."""

    output: str
    strategy: str
    channels: int
    taps: int


def dummy_feeds(model: onnx.ModelProto, length: int, batch: int = 1) -> dict[str, np.ndarray]:
    """Zero inputs with batch on axis 0 and ``length`` on axis 1 wherever those axes are dynamic."""
    return {name: np.zeros(dims, dtype) for name, (dims, dtype) in input_specs(model, batch, length).items()}


def is_length_dynamic(model: onnx.ModelProto) -> bool:
    """True when some graph input has a symbolic axis 1."""
    return any(len(vi.type.tensor_type.shape.dim) > 1 and axis1_length(vi) is None for vi in model.graph.input)


def static_length(model: onnx.ModelProto) -> int | None:
    """Axis-1 length of the first graph input with a static axis 1."""
    return next((n for n in map(axis1_length, model.graph.input) if n is not None), None)


def _measure(model: onnx.ModelProto, sites: list[FFTConvSite], length: int, seed: int) -> list[np.ndarray]:
    feeds = dummy_feeds(model, length)
    shapes = signal_shapes(model, sites, feeds)
    return [measure_filter(region_model(model, s), s, shapes[s.signal], feeds, seed + i)
            for i, s in enumerate(sites)]


def _check_prefix(site: FFTConvSite, short: np.ndarray, full: np.ndarray) -> None:
    length = short.shape[-1]
    scale = max(np.abs(full).max(), 1e-30)
    err = np.abs(short - full[..., :length]).max() / scale
    if not err <= PREFIX_TOLERANCE:
        raise HyenaDeployError(
            f"the filter of {site.output} at length {length} is not a prefix of the filter at the maximum "
            f"length (error {err:.1e}): a dynamic-length graph would be wrong; export a static length instead")


def rewrite_fftconvs(model: onnx.ModelProto, choose: StrategyChooser, max_seq_len: int | None = None,
                     seed: int = 0) -> tuple[onnx.ModelProto, list[RewrittenSite]]:
    """A copy of ``model`` with each FFT convolution replaced by the strategy ``choose(h)`` names.

    Static graphs are measured at their own length. Graphs with a dynamic axis 1 need
    ``max_seq_len``: filters are measured there and at a short odd length, and the short one must
    be a prefix of the long one (causal right-padding is then exact for every length up to it).
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.value_info[:]
    sites = find_fftconv_sites(out)
    if not sites:
        return out, []
    dynamic = is_length_dynamic(out)
    length = max_seq_len if dynamic else static_length(out)
    if length is None:
        raise HyenaDeployError("the graph's sequence length is dynamic: give the maximum length (--max-seq-len)")
    filters = _measure(out, sites, length, seed)
    if dynamic:
        short = min(length, 17 if length > 17 else max(1, length // 2 + 1))
        for site, h_short, h in zip(sites, _measure(out, sites, short, seed), filters):
            _check_prefix(site, h_short, h)
    done = []
    made_by = producers(out.graph)
    for index, (site, h) in enumerate(zip(sites, filters)):
        strategy = choose(h)
        if strategy not in BUILDERS:
            raise HyenaDeployError(f"unknown FFT-convolution strategy {strategy!r} (known: {', '.join(BUILDERS)})")
        old = made_by[site.output]
        old.output[list(old.output).index(site.output)] = f"{site.output}__replaced"
        nb = NodeBuilder(f"{NODE_PREFIX}{index}")
        BUILDERS[strategy](nb, site.signal, site.output, h)
        out.graph.node.extend(nb.nodes)
        out.graph.initializer.extend(nb.initializers)
        done.append(RewrittenSite(site.output, strategy, int(np.prod(h.shape[:-1])), support(h)))
    remove_dead(out.graph)
    dedupe_initializers(out.graph)
    topological_sort(out.graph)
    _ensure_opsets(out)
    return out, done


def _ensure_opsets(model: onnx.ModelProto) -> None:
    have = {o.domain for o in model.opset_import}
    for node in model.graph.node:
        if node.domain not in have and node.domain not in ("", "ai.onnx"):
            model.opset_import.append(onnx.helper.make_opsetid(node.domain, 1))
            have.add(node.domain)


def sites_json(sites: list[RewrittenSite]) -> list[dict]:
    """Sites as plain dicts for metadata and reports."""
    return [asdict(s) for s in sites]
