"""Measure an FFT-convolution site as a linear operator: which axis is time, which channel feeds
which, its impulse response on both sides of lag 0, and proof that nothing else is going on.

The site's region (everything from a signal candidate to an output candidate, including the
input-independent filter branches) is cut out of the graph and run in ONNX's reference evaluator,
whose DFT is numpy's accurate FFT at any size. Before anything is measured, the region must
depend on the signal only through the forward DFT (:func:`signal_reaches_only_the_dft`) and on no
other graph input's values: a filter with a signal-dependent gain is then never folded. Unit
impulses at the first and the last position give the causal and anti-causal halves of every
output channel's filter and, with a second set of per-channel amplitudes, the input channel each
output channel reads (filter banks add channels). Random signals at scales 1e-3, 1 and 1e3 must
then match the measured convolution, so the region is linear, time-invariant and per channel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper
from onnx.reference import ReferenceEvaluator
from scipy import fft

from hyena_deploy.errors import HyenaDeployError, first_line
from hyena_deploy.graph import as_float64, producers, value_dependent
from hyena_deploy.rewrite import fast_dft
from hyena_deploy.rewrite.find import FFTConvSite, module_path
from hyena_deploy.spectral import next_pow2

LTI_TOLERANCE = 1e-5  # relative L2 between the region and the measured convolution, at every input scale
CHANNEL_TOLERANCE = 1e-4  # relative residual of an output channel explained by one input channel
NEGLIGIBLE_TAIL = 1e-6  # a filter tail whose L1 norm is below this fraction of the filter's L2 norm is dropped
# Negative lags whose L2 norm is below this fraction of the filter's are rounding, not an anticausal filter: a
# causal FFT convolution computed through float32 casts leaves ~1e-7 of its energy spread over negative lags.
NEGLIGIBLE_ANTICAUSAL = 1e-6
SCALES = (1e-3, 1.0, 1e3)  # input scales the convolution must hold at (a signal-dependent gain shows here)
MAX_RUN_BATCH = 2  # signals per reference run on dynamic batches (memory at 64k tokens)


class NotAConvolution(HyenaDeployError):
    """The region between a signal and an output is not a fixed per-channel convolution."""


@dataclass(frozen=True)
class Boundary:
    """One candidate region of a site: the signal tensor entering it and the output tensor leaving it."""

    signal: str
    output: str


@dataclass(frozen=True)
class Filter:
    """``output = conv(signal, h)`` along ``signal_axis`` / ``output_axis``.

    ``h`` (O, lead + T) holds lags ``-lead .. T-1`` of every output channel ``o`` (``o`` flattens
    the output's non-batch, non-time axes); ``o`` reads input channel ``channel_map[o]`` (the
    flattened non-batch, non-time axes of the signal). ``lead`` > 0 means a two-sided filter.
    """

    h: np.ndarray
    lead: int
    channel_map: np.ndarray
    signal_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    signal_axis: int
    output_axis: int

    @property
    def length(self) -> int:
        return self.h.shape[-1] - self.lead

    @property
    def is_plain(self) -> bool:
        """Time last on both sides, same shape, output channel o reads input channel o."""
        last = len(self.signal_shape) - 1
        return (self.signal_shape == self.output_shape and self.signal_axis == last == self.output_axis
                and np.array_equal(self.channel_map, np.arange(len(self.channel_map))))

    def lags(self, length: int) -> np.ndarray:
        """(O, 2*length - 1): lags ``-(length-1) .. length-1`` (zero outside what ``h`` holds)."""
        dense = np.zeros((self.h.shape[0], 2 * length - 1))
        take_neg, take_pos = min(self.lead, length - 1), min(self.length, length)
        dense[:, length - 1 - take_neg:length - 1] = self.h[:, self.lead - take_neg:self.lead]
        dense[:, length - 1:length - 1 + take_pos] = self.h[:, self.lead:self.lead + take_pos]
        return dense


def two_sided_conv(x: np.ndarray, h: np.ndarray, lead: int) -> np.ndarray:
    """``y[..., t] = sum_d h[..., lead + d] x[..., t - d]`` in float64 for x (..., T), h (..., K)."""
    length, taps = x.shape[-1], h.shape[-1]
    n = next_pow2(length + taps)
    spectrum = fft.rfft(x.astype(np.float64), n, workers=-1) * fft.rfft(h.astype(np.float64), n, workers=-1)
    full = fft.irfft(spectrum, n, workers=-1)
    return full[..., lead:lead + length]


def region_model(model: onnx.ModelProto, boundary: Boundary) -> onnx.ModelProto:
    """The sub-model computing ``boundary.output`` from ``boundary.signal`` (plus graph inputs used for shapes)."""
    graph = model.graph
    made_by = producers(graph)
    graph_inputs = {i.name: i for i in graph.input}
    inits = {i.name: i for i in graph.initializer}
    nodes, taken, seen, extra_inputs, used_inits = [], set(), set(), [], set()
    stack = [boundary.output]
    while stack:
        name = stack.pop()
        if name in seen or name == boundary.signal or not name:
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
    signal_vi = helper.make_tensor_value_info(boundary.signal, onnx.TensorProto.FLOAT, None)
    output_vi = helper.make_tensor_value_info(boundary.output, onnx.TensorProto.FLOAT, None)
    sub_graph = helper.make_graph(nodes, "region", [signal_vi, *extra_inputs], [output_vi],
                                  [inits[n] for n in sorted(used_inits)])
    sub = helper.make_model(sub_graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    if boundary.output in value_dependent_from(sub, {i.name for i in extra_inputs}):
        raise NotAConvolution("its filter depends on the model's inputs other than through the signal's FFT "
                              "(a signal-dependent filter is never folded)")
    return sub


def value_dependent_from(model: onnx.ModelProto, names: set[str]) -> set[str]:
    """Tensors of ``model`` whose values depend on the values of ``names``."""
    graph = onnx.GraphProto()
    graph.CopyFrom(model.graph)
    keep = [i for i in graph.input if i.name in names]
    del graph.input[:]
    graph.input.extend(keep)
    return value_dependent(graph)


def signal_reaches_only_the_dft(region: onnx.ModelProto, signal: str, forward_dft: str) -> None:
    """Refuse a region where the signal's values reach anything but the forward DFT's input.

    Tensors depending on the signal other than through the forward DFT must all be ancestors of
    that DFT's input (the casts, scalings, relabels and padding in front of it): otherwise the
    filter side sees the signal (a gain from its RMS, a normalisation) and folding it would be wrong.
    """
    graph = region.graph
    dft = next((n for n in graph.node if (n.name or n.output[0]) == forward_dft), None)
    if dft is None:
        raise NotAConvolution("the forward DFT of the signal is not inside the region")
    reach = {signal}
    for node in graph.node:
        if node is dft or node.op_type in ("Shape", "Size"):
            continue
        if any(i in reach for i in node.input):
            reach.update(node.output)
    made_by = producers(graph)
    ancestors, stack = set(), [dft.input[0]]
    while stack:
        name = stack.pop()
        if name in ancestors or not name:
            continue
        ancestors.add(name)
        if name in made_by and name != signal:
            stack.extend(made_by[name].input)
    chain = reach & ancestors
    branch = next((n for n in graph.node if n is not dft and n.op_type not in ("Shape", "Size")
                   and any(i in chain for i in n.input) and not set(n.output) <= ancestors), None)
    if branch is not None:
        where = module_path(branch)
        raise NotAConvolution(f"the signal also reaches the filter side (a {branch.op_type}"
                              f"{' in ' + where if where else ''}), not only through its FFT: "
                              "a signal-dependent filter is never folded")


def float_shapes(model: onnx.ModelProto, names: list[str], feeds: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    """Shapes of those ``names`` that are float32 tensors when the model runs on ``feeds``.

    ONNX shape inference answers for static graphs (a symbolic axis 0 is the feeds' batch); the
    rest is run once in ONNX Runtime, which at long lengths costs as much as the whole model.
    """
    batch = next((v.shape[0] for v in feeds.values() if v.ndim), 1)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # inference rejects some graphs ONNX Runtime runs: ask ONNX Runtime for every shape
        inferred = onnx.ModelProto()
    known: dict[str, tuple[int, tuple[int, ...]]] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
        tensor = vi.type.tensor_type
        if not tensor.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else (batch if axis == 0 and d.dim_param else None)
                for axis, d in enumerate(tensor.shape.dim)]
        if tensor.elem_type and all(d is not None for d in dims):
            known[vi.name] = (tensor.elem_type, tuple(dims))
    missing = [n for n in names if n not in known]
    if missing:
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        del probe.graph.output[:]
        probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in missing)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
            values = session.run(missing, feeds)
        except Exception as exc:  # ORT's own error types; the user needs its first line
            raise HyenaDeployError(f"ONNX Runtime cannot run the graph to measure its FFT convolutions: "
                                   f"{first_line(exc)}") from None
        for name, value in zip(missing, values):
            known[name] = (helper.np_dtype_to_tensor_dtype(value.dtype), value.shape)
    return {n: known[n][1] for n in names if known[n][0] == onnx.TensorProto.FLOAT}


def _evaluator(region: onnx.ModelProto) -> ReferenceEvaluator:
    """ONNX's reference evaluator, with the faster DFT kernel for opset >= 20."""
    opset = next((o.version for o in region.opset_import if o.domain in ("", "ai.onnx")), 0)
    return ReferenceEvaluator(region, new_ops=[fast_dft.DFT] if opset >= 20 else None)


class _Region:
    """Runs a region on stacks of signals (n, I, T) in the layout the site expects, in float32 or float64."""

    def __init__(self, region: onnx.ModelProto, signal: str, signal_shape: tuple[int, ...], axis: int,
                 feeds: dict[str, np.ndarray], dynamic_batch: bool) -> None:
        self.signal, self.shape, self.axis = signal, signal_shape, axis
        self.batch = None if dynamic_batch else signal_shape[0]
        self.feeds = {k: v for k, v in feeds.items() if k != signal}
        self.f32 = _evaluator(region)
        try:
            self.f64: ReferenceEvaluator | None = _evaluator(as_float64(region))
        except Exception:  # an op without a float64 kernel: float32 only
            self.f64 = None

    def channels(self) -> tuple[int, ...]:
        return tuple(d for i, d in enumerate(self.shape) if i not in (0, self.axis))

    def run(self, x: np.ndarray, wide: bool = False) -> np.ndarray:
        """x (n, I, T) -> the region's outputs (n, *output shape)."""
        signals = np.moveaxis(x.reshape(len(x), *self.channels(), x.shape[-1]), -1, self.axis)
        evaluator = self.f64 if wide else self.f32
        dtype = np.float64 if wide else np.float32
        chunk = self.batch or min(len(signals), MAX_RUN_BATCH)
        outs = []
        for start in range(0, len(signals), chunk):
            part = signals[start:start + chunk]
            filled = np.concatenate([part, np.zeros((chunk - len(part), *part.shape[1:]))]) if len(part) < chunk else part
            inputs = {self.signal: filled.astype(dtype)}
            inputs.update({k: _batched(v, chunk) for k, v in self.feeds.items() if k in evaluator.input_names})
            outs.append(np.asarray(evaluator.run(None, inputs)[0], np.float64)[:len(part)])
        return np.concatenate(outs)


def _batched(value: np.ndarray, batch: int) -> np.ndarray:
    return np.repeat(value[:1], batch, axis=0) if value.ndim else value


def _flat_output(y: np.ndarray, axis: int) -> np.ndarray:
    """(n, *output shape) -> (n, O, T) with time last."""
    y = np.moveaxis(y, axis, -1)
    return y.reshape(len(y), -1, y.shape[-1])


def _support(rows: np.ndarray, norms: np.ndarray) -> int:
    """Leading columns that matter: the dropped tail has L1 norm under NEGLIGIBLE_TAIL x the filter's L2 norm."""
    rows = np.abs(rows)
    tail_l1 = np.cumsum(rows[:, ::-1], axis=1)[:, ::-1]
    small = (tail_l1 <= NEGLIGIBLE_TAIL * norms[:, None]).all(axis=0)
    kept = np.flatnonzero(~small)
    return int(kept[-1]) + 1 if kept.size else 0


def _channel_map(plain: np.ndarray, coded: np.ndarray, amplitudes: np.ndarray) -> np.ndarray:
    """Input channel of each output channel from ``coded = amplitudes[map] * plain`` (rows (O, T))."""
    energy = np.einsum("ot,ot->o", plain, plain)
    ratio = np.einsum("ot,ot->o", coded, plain) / np.maximum(energy, 1e-300)
    found = np.abs(ratio[:, None] - amplitudes[None, :]).argmin(axis=1)
    residual = np.linalg.norm(coded - amplitudes[found][:, None] * plain, axis=1)
    live = energy > 0
    if np.any(residual[live] > CHANNEL_TOLERANCE * np.sqrt(energy[live]) * amplitudes[found][live]):
        raise NotAConvolution("an output channel mixes several input channels (not a per-channel convolution)")
    return np.where(live, found, -1)


def _axis_pairs(signal_shape: tuple[int, ...], output_shape: tuple[int, ...], length: int | None) -> list[tuple[int, int]]:
    """(signal axis, output axis) of equal size, the sequence length and the last axes first."""
    pairs = [(a, b) for a in range(1, len(signal_shape)) for b in range(1, len(output_shape))
             if signal_shape[a] == output_shape[b]]
    last_in, last_out = len(signal_shape) - 1, len(output_shape) - 1
    return sorted(pairs, key=lambda p: (signal_shape[p[0]] != length, p[0] != last_in, p[1] != last_out,
                                        -p[0], -p[1]))


def measure(model: onnx.ModelProto, site: FFTConvSite, boundary: Boundary, shapes: dict[str, tuple[int, ...]],
            feeds: dict[str, np.ndarray], dynamic_batch: bool, length: int | None, seed: int,
            axes: tuple[int, int] | None = None) -> Filter:
    """The filter of ``boundary`` as a convolution, or :class:`NotAConvolution` with the reason."""
    region = region_model(model, boundary)
    signal_reaches_only_the_dft(region, boundary.signal, site.forward_dft)
    signal_shape, output_shape = shapes[boundary.signal], shapes[boundary.output]
    pairs = [axes] if axes is not None else _axis_pairs(signal_shape, output_shape, length)
    if not pairs:
        raise NotAConvolution(f"no axis of the output {output_shape} has the length of a signal axis {signal_shape}")
    failure: NotAConvolution | None = None
    for signal_axis, output_axis in pairs:
        try:
            runner = _Region(region, boundary.signal, signal_shape, signal_axis, feeds, dynamic_batch)
            return _measure_along(runner, output_shape, signal_axis, output_axis, seed)
        except NotAConvolution as exc:
            failure = failure or exc
        except Exception as exc:  # the reference evaluator rejects the region on probe signals
            failure = failure or NotAConvolution(f"its region does not run on probe signals: {first_line(exc)}")
    raise failure


def _impulse_responses(region: _Region, probes: np.ndarray) -> tuple[np.ndarray, bool]:
    """The region on ``probes``, in float64 when every op has a float64 kernel (then tails are exact)."""
    if region.f64 is not None:
        try:
            out = region.run(probes, wide=True)
            if np.isfinite(out).all():
                return out, True
        except Exception:  # an op without a float64 kernel: measure in float32
            pass
    return region.run(probes), False


def _used(rows: np.ndarray, norms: np.ndarray, exact: bool) -> int:
    """Leading columns of ``rows`` that carry the filter (float32 runs: above 1e-6 of the largest tap)."""
    if exact:
        return _support(rows, norms)
    used = np.flatnonzero((np.abs(rows) > 1e-6 * max(np.abs(rows).max(initial=0.0), 1e-300)).any(axis=0))
    return int(used[-1]) + 1 if used.size else 0


def _measure_along(region: _Region, output_shape: tuple[int, ...], signal_axis: int, output_axis: int,
                   seed: int) -> Filter:
    length = region.shape[signal_axis]
    inputs = int(np.prod(region.channels(), dtype=np.int64))
    amplitudes = 1.0 + (np.arange(inputs) + 1.0) / (inputs + 1.0)
    probes = np.zeros((3, inputs, length))
    probes[0, :, 0] = 1.0                                    # lags 0..T-1
    probes[1, :, -1] = 1.0                                   # lags -(T-1)..0
    probes[2, :, 0] = probes[2, :, -1] = amplitudes          # which input channel feeds each output channel
    out, exact = _impulse_responses(region, probes)
    if out.shape[1:] != tuple(output_shape[1:]):
        raise NotAConvolution(f"the output has shape {out.shape[1:]} on probes, {tuple(output_shape[1:])} in the model")
    y = _flat_output(out, output_axis)
    plain = y[0] + y[1] if length > 1 else y[0]
    channel_map = _channel_map(plain, y[2], amplitudes)
    channel_map = np.where(channel_map < 0, np.arange(len(channel_map)) % inputs, channel_map)
    causal, anticausal = y[0], y[1][:, :-1]                  # lags 0..T-1 and -(T-1)..-1
    norms = np.sqrt(np.sum(causal ** 2, axis=1) + np.sum(anticausal ** 2, axis=1))
    taps = max(_used(causal, norms, exact), 1)
    lead = _used(anticausal[:, ::-1], norms, exact)
    if lead and np.all(np.linalg.norm(anticausal, axis=1) <= NEGLIGIBLE_ANTICAUSAL * np.maximum(norms, 1e-300)):
        lead = 0
    h = np.concatenate([anticausal[:, anticausal.shape[1] - lead:], causal], axis=1)
    h[:, lead + taps:] = 0.0
    filt = Filter(h, lead, channel_map, region.shape, tuple(output_shape), signal_axis, output_axis)
    _check_convolution(region, filt, inputs, length, seed)
    return filt


def _check_convolution(region: _Region, filt: Filter, inputs: int, length: int, seed: int) -> None:
    """Random signals, one per scale, run batched (also checks batch independence), against the convolution."""
    rng = np.random.default_rng(seed)
    signals = rng.standard_normal((len(SCALES), inputs, length)) * np.array(SCALES)[:, None, None]
    got = _flat_output(region.run(signals), filt.output_axis)
    want = two_sided_conv(signals[:, filt.channel_map, :], filt.h, filt.lead)
    for i, scale in enumerate(SCALES):
        err = np.linalg.norm(got[i] - want[i]) / max(np.linalg.norm(want[i]), 1e-300)
        if not err <= LTI_TOLERANCE:
            raise NotAConvolution(
                f"it is not a fixed per-channel convolution at input scale {scale:g} (relative error {err:.1e}): "
                "the filter changes with the signal or with time")
