"""Measure an FFT-convolution site as a linear operator: its impulse response and an LTI check.

The site's region (everything from its signal to its output, including input-independent filter
branches) is cut out of the graph and run in ONNX's reference evaluator, whose DFT is numpy's
accurate FFT at any size (ONNX Runtime's DFT loses ~1e-4 at non-power-of-two sizes). Feeding a
unit impulse gives the filter ``h`` that every branch (MLPs, positional tables, windows, modal
sums, normalisations) produces; a random signal then checks that the region really is
``causal_conv(signal, h)`` per channel, independent of the batch.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.graph import producers, value_dependent
from hyena_deploy.rewrite.find import FFTConvSite
from hyena_deploy.spectral import causal_conv_reference

LTI_TOLERANCE = 1e-5  # relative L2 between the region and causal_conv(signal, h)
NEGLIGIBLE_TAIL = 1e-6  # a filter tail whose L1 norm is below this fraction of the filter's L2 norm is dropped


class NotAConvolution(HyenaDeployError):
    """The region between a signal DFT and an inverse DFT is not a causal depthwise convolution."""


def _elem_type(model: onnx.ModelProto, name: str) -> int:
    for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        if vi.name == name:
            return vi.type.tensor_type.elem_type
    return onnx.TensorProto.FLOAT


def region_model(model: onnx.ModelProto, site: FFTConvSite) -> onnx.ModelProto:
    """The sub-model computing ``site.output`` from ``site.signal`` (plus graph inputs used for shapes)."""
    graph = model.graph
    made_by = producers(graph)
    graph_inputs = {i.name: i for i in graph.input}
    inits = {i.name: i for i in graph.initializer}
    nodes, taken, seen, extra_inputs, used_inits = [], set(), set(), [], set()
    stack = [site.output]
    while stack:
        name = stack.pop()
        if name in seen or name == site.signal or not name:
            continue
        seen.add(name)
        if name in inits:
            used_inits.add(name)
        elif name in graph_inputs:
            extra_inputs.append(graph_inputs[name])
        elif name in made_by:
            node = made_by[name]
            if id(node) not in taken:
                taken.add(id(node))
                nodes.append(node)
                stack.extend(node.input)
    order = {id(n): i for i, n in enumerate(graph.node)}
    nodes.sort(key=lambda n: order[id(n)])
    signal_vi = helper.make_tensor_value_info(site.signal, onnx.TensorProto.FLOAT, None)
    output_vi = helper.make_tensor_value_info(site.output, onnx.TensorProto.FLOAT, None)
    sub_graph = helper.make_graph(nodes, "region", [signal_vi, *extra_inputs], [output_vi],
                                  [inits[n] for n in sorted(used_inits)])
    sub = helper.make_model(sub_graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    if site.output in value_dependent_from(sub, {i.name for i in extra_inputs}):
        raise NotAConvolution(f"{site.output} depends on graph input values outside the signal")
    return sub


def value_dependent_from(model: onnx.ModelProto, names: set[str]) -> set[str]:
    """Tensors of ``model`` whose values depend on the values of ``names``."""
    graph = onnx.GraphProto()
    graph.CopyFrom(model.graph)
    keep = [i for i in graph.input if i.name in names]
    del graph.input[:]
    graph.input.extend(keep)
    return value_dependent(graph)


def signal_shapes(model: onnx.ModelProto, sites: list[FFTConvSite],
                  feeds: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    """Shapes of every site's signal when the full model runs on ``feeds``."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    names = sorted({s.signal for s in sites})
    for name in names:
        probe.graph.output.append(helper.make_tensor_value_info(name, _elem_type(model, name), None))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    results = session.run(names, feeds)
    return {name: tuple(r.shape) for name, r in zip(names, results)}


def _run_region(region: ReferenceEvaluator, site: FFTConvSite, signal: np.ndarray,
                feeds: dict[str, np.ndarray]) -> np.ndarray:
    inputs = {site.signal: signal.astype(np.float32)}
    inputs.update({k: v for k, v in feeds.items() if k in region.input_names})
    out = np.asarray(region.run(None, inputs)[0])
    if out.shape != signal.shape:
        raise NotAConvolution(f"{site.output} has shape {out.shape}, its signal {signal.shape}")
    return out


def _as_float64(region: onnx.ModelProto) -> onnx.ModelProto:
    """The region computing in float64: float initializers, constants, casts and I/O widened."""
    wide = onnx.ModelProto()
    wide.CopyFrom(region)
    graph = wide.graph
    for vi in [graph.input[0], *graph.output]:
        vi.type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
    for i, init in enumerate(graph.initializer):
        if init.data_type == onnx.TensorProto.FLOAT:
            graph.initializer[i].CopyFrom(numpy_helper.from_array(
                numpy_helper.to_array(init).astype(np.float64), init.name))
    for node in graph.node:
        for attr in node.attribute:
            if attr.name == "to" and attr.i == onnx.TensorProto.FLOAT:
                attr.i = onnx.TensorProto.DOUBLE
            elif attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == onnx.TensorProto.FLOAT:
                attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float64), attr.t.name))
    return wide


def filter_support(region: onnx.ModelProto, site: FFTConvSite, shape: tuple[int, ...],
                   feeds: dict[str, np.ndarray]) -> int:
    """Number of leading taps that matter, from a float64 run (all of them if it cannot run).

    The tail dropped has, in every channel, an L1 norm under ``NEGLIGIBLE_TAIL`` times the
    filter's L2 norm, so it changes no output by more than that times max|signal|: this keeps
    explicit short filters run through a long FFT (Evo 2's 128-tap HCM) at their true length even
    when the exporter folded their spectrum to float32.
    """
    impulse = np.zeros((1, *shape[1:]), np.float64)
    impulse[..., 0] = 1.0
    try:
        wide = ReferenceEvaluator(_as_float64(region))
        inputs = {site.signal: impulse, **{k: v for k, v in _with_batch(feeds, 1).items() if k in wide.input_names}}
        h = np.abs(np.asarray(wide.run(None, inputs)[0], np.float64))
    except Exception:  # an op without a float64 kernel: keep every tap
        return shape[-1]
    if h.shape != impulse.shape or not np.isfinite(h).all():
        return shape[-1]
    rows = h.reshape(-1, shape[-1])
    tail_l1 = np.cumsum(rows[:, ::-1], axis=1)[:, ::-1]               # sum of |h[t:]| per channel
    small = (tail_l1 <= NEGLIGIBLE_TAIL * np.linalg.norm(rows, axis=1, keepdims=True)).all(axis=0)
    kept = np.flatnonzero(~small)
    return int(kept[-1]) + 1 if kept.size else 1


def measure_filter(region: onnx.ModelProto, site: FFTConvSite, shape: tuple[int, ...],
                   feeds: dict[str, np.ndarray], seed: int) -> np.ndarray:
    """Impulse response ``h`` (channels..., L) of the region, verified to be causal LTI per channel.

    Taps that a float64 run shows to be exactly zero (an explicit short filter inside a long FFT)
    are set to exactly zero, so strategies can see the filter's real support.
    """
    evaluator = ReferenceEvaluator(region)
    impulse = np.zeros((1, *shape[1:]), np.float32)
    impulse[..., 0] = 1.0
    h = _run_region(evaluator, site, impulse, _with_batch(feeds, 1))[0].astype(np.float64)
    taps = filter_support(region, site, shape, feeds)
    h[..., taps:] = 0.0
    rng = np.random.default_rng(seed)
    signal = rng.standard_normal((2, *shape[1:])).astype(np.float32)
    got = _run_region(evaluator, site, signal, _with_batch(feeds, 2))
    want = causal_conv_reference(signal.astype(np.float64), h)
    err = np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30)
    if not err <= LTI_TOLERANCE:
        raise NotAConvolution(f"{site.output} is not a causal per-channel convolution (rel err {err:.1e})")
    return h


def _with_batch(feeds: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    return {k: np.repeat(v[:1], batch, axis=0) if v.ndim else v for k, v in feeds.items()}
