"""A stateful form for causal language models known only by their traced graph (``file.py:factory``).

Two traces at short static lengths L1 < L2 have the same nodes; what differs between them is what
follows the sequence length. From them, and from a trace at the maximum context for the filters:

* every FFT convolution becomes a state (:mod:`.graph_states`): a modal one when its filter at the
  maximum context is modal to 1e-5 with at most 16 modes, or was distilled; else the site's last
  S-1 inputs (S: the filter's support) and one Conv of S taps per channel and chunk;
* every zero padding before the sequence (a ``Pad``, or a ``Conv``'s own ``pads``, on the time
  axis) becomes a cache of the padded tensor's last positions: ``Concat(cache, x)``;
* integer constants that follow the length (slice ends, reshape targets) become ``a*T + b`` of the
  chunk's length T;
* every other op must be position-wise (:mod:`.sequence_axes`): nothing reduces, gathers, splits,
  concatenates or flips along the time axis, no float constant follows the length (a positional
  table), no tensor has two time axes (attention), no positions are built from the length (``Range``).

What cannot be followed is refused in one line naming the op and its module; what is built is
verified against PyTorch full recompute by the caller, like every family's decode graph.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from hyena_deploy.distill.sites import distilled_graph
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.graph import (NodeBuilder, attribute, constant_value, dedupe_initializers, producers, remove_dead,
                                topological_sort)
from hyena_deploy.loaded import LoadedModel
from hyena_deploy.rewrite.layout import build_site
from hyena_deploy.rewrite.probe import Boundary
from hyena_deploy.rewrite.replace import MeasuredSite, measure_sites
from hyena_deploy.spectral import support
from hyena_deploy.stateful.fir import SHIFTED_SUM_TAPS
from hyena_deploy.stateful.graph_states import history_conv, modal_conv, modal_state_shape
from hyena_deploy.stateful.layout import INPUT_IDS, LOGITS, StateSpec
from hyena_deploy.stateful.sequence_axes import SequenceAxes, check_position_wise, refuse
from hyena_deploy.strategies.common import flatten_channels, restore
from hyena_deploy.strategies.modal import ModalPlan, NotModal, fit_plan
from hyena_deploy.trace import trace

Progress = Callable[[str], None]
TRACE_LENGTHS = (23, 29)  # short, odd, unlike any channel count; shorter contexts use smaller ones
HISTORY, MODAL, CACHE = "history", "modal_complex", "fir"
PREFIX = "hd_stream"
STATE_MODAL_TOL = 1e-5  # filter relative L2 of a modal state: PyTorch's own fp32 filter carries ~1e-6
STATE_MODES = 16        # complex modes per channel at most (a real state of 32 values)
INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True)
class TracedStateful:
    """The decode graph (``input_ids`` and states in, ``logits`` and new states out) and its state table."""

    model: onnx.ModelProto
    specs: list[StateSpec]
    vocab_size: int
    notes: list[str]
    reference: onnx.ModelProto | None = None  # what decoding must equal when it is not PyTorch (distilled)


def trace_lengths(max_context: int) -> tuple[int, int]:
    """Two short odd lengths at most ``max_context``."""
    if max_context >= TRACE_LENGTHS[1]:
        return TRACE_LENGTHS
    if max_context < 5:
        raise HyenaDeployError(f"--max-context {max_context} is too short to trace a stateful form (at least 5)")
    return max_context - 2 - (max_context % 2 == 0), max_context - (max_context % 2 == 0)


def _require_same_nodes(first: onnx.ModelProto, second: onnx.ModelProto, lengths: tuple[int, ...]) -> None:
    a, b = first.graph.node, second.graph.node
    same = len(a) == len(b) and all((x.op_type, x.input, x.output) == (y.op_type, y.input, y.output)
                                    for x, y in zip(a, b))
    if not same:
        raise HyenaDeployError(f"no streaming form: the traced graph changes structure with the sequence length "
                               f"(lengths {', '.join(map(str, lengths))}); the model branches on its length")


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].type == onnx.AttributeProto.TENSOR:
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def traced_stateful(loaded: LoadedModel, max_context: int, opset: int, progress: Progress = lambda _: None,
                    distilled: dict[Boundary, ModalPlan] | None = None) -> TracedStateful:
    """The decode graph of ``loaded`` derived from its traced graph (see the module docstring).

    With ``distilled`` (plans per site boundary, from ``distill``) every site gets the modal state of
    its plan, and ``reference`` is the traced graph with those filters: what the decode graph must equal.
    """
    _require_token_lm(loaded)
    lengths = trace_lengths(max_context)
    progress(f"tracing at lengths {lengths[0]} and {lengths[1]} (what follows the length) and {max_context}")
    first, second = (trace(loaded, n, None, opset) for n in lengths)
    _require_same_nodes(first, second, lengths)
    sites, skipped = measure_sites(first)
    if skipped:
        raise HyenaDeployError(f"no streaming form: {skipped[0]}")
    long_graph, long_sites, filters = _long_filters(loaded, sites, max_context, opset, progress)
    reference = None
    if distilled is not None:
        reference = distilled_graph(long_graph, long_sites, distilled, max_context)
        plans = [distilled[m.boundary] for m in sites]
    else:
        plans = [modal_plan(h) for h in filters]
    progress("deriving the decode graph")
    shapes = SequenceAxes(first, second, lengths)
    graph = onnx.ModelProto()
    graph.CopyFrom(first)
    builder = _StreamBuilder(graph, shapes)
    kinds = [builder.replace_site(measured, h, plan, max_context) for measured, h, plan in zip(sites, filters, plans)]
    builder.stream_paddings()
    vocab = int(shapes.one[graph.graph.output[0].name][-1])
    builder.finish(_constants(first), _constants(second))
    notes = [f"traced stateful form: {kinds.count(MODAL)} modal and {kinds.count(HISTORY)} history state(s) for "
             f"{len(sites)} FFT convolution(s), {sum(s.kind == CACHE for s in builder.specs)} cache(s) for padding "
             "before the sequence" + (" (filters from the distillation)" if distilled is not None else "")]
    return TracedStateful(graph, builder.specs, vocab, notes, reference)


def modal_plan(h: np.ndarray) -> ModalPlan | None:
    """The modal form of filters ``h`` (C, S) when every channel has one within STATE_MODAL_TOL, else None."""
    plan = fit_plan(np.asarray(h, np.float64), STATE_MODAL_TOL, STATE_MODES)
    return None if isinstance(plan, NotModal) else plan


def _require_token_lm(loaded: LoadedModel) -> None:
    inputs = loaded.example_inputs
    if len(inputs) != 1 or inputs[0].dtype.is_floating_point or inputs[0].dim() != 2:
        raise HyenaDeployError("no streaming form: a stateful export needs a language model taking one tensor of "
                               "token ids (B, L) and returning logits (B, L, V)")


def _long_filters(loaded: LoadedModel, sites: list[MeasuredSite], max_context: int, opset: int,
                  progress: Progress) -> tuple[onnx.ModelProto, list[MeasuredSite], list[np.ndarray]]:
    """The graph traced at ``max_context``, its measured sites, and each short-trace site's filter there
    (O, S), cut to its support and checked against the short trace."""
    progress(f"measuring the long filters at {max_context}")
    long_graph = trace(loaded, max_context, None, opset)
    long_sites, skipped = measure_sites(long_graph)
    by_boundary = {m.boundary: m for m in long_sites}
    filters = []
    for measured in sites:
        found = by_boundary.get(measured.boundary)
        if found is None or skipped:
            raise HyenaDeployError(f"no streaming form: the FFT convolution at {measured.site.inverse_dft} is not "
                                   f"measured the same way at length {max_context}"
                                   f"{': ' + str(skipped[0]) if skipped else ''}")
        short, long = measured.filter, found.filter
        if short.lead or long.lead:
            raise HyenaDeployError(f"no streaming form: the FFT convolution at {measured.site.inverse_dft} is "
                                   f"two-sided (it reads later positions)")
        n = short.length
        scale = max(float(np.abs(long.h).max()), 1e-30)
        if not np.array_equal(short.channel_map, long.channel_map) or \
                np.abs(short.h - long.h[:, :n]).max() / scale > 1e-5:
            raise HyenaDeployError(f"no streaming form: the filter of the FFT convolution at "
                                   f"{measured.site.inverse_dft} at length {n} is not the filter at {max_context} "
                                   "cut to those lags (it depends on the length)")
        filters.append(long.h[:, :support(long.h)])
    return long_graph, long_sites, filters


class _StreamBuilder:
    """Edits one traced graph into its decode graph, collecting the states it adds."""

    def __init__(self, model: onnx.ModelProto, shapes: SequenceAxes) -> None:
        self.graph, self.shapes = model.graph, shapes
        self.specs: list[StateSpec] = []
        self.ours: set[str] = set()  # names of nodes this builder wrote

    def _state(self, kind: str, shape: tuple[int, ...]) -> StateSpec:
        spec = StateSpec(kind, kind, len(self.specs), shape)
        self.specs.append(spec)
        return spec

    def _emit(self, nb: NodeBuilder) -> None:
        self.graph.node.extend(nb.nodes)
        self.graph.initializer.extend(nb.initializers)
        self.ours.update(n.name for n in nb.nodes)

    def replace_site(self, measured: MeasuredSite, h: np.ndarray, plan: ModalPlan | None, max_context: int) -> str:
        """The site's output from a state: modal with ``plan``, else its input history. Returns the state kind."""
        output = measured.boundary.output
        old = producers(self.graph)[output]
        old.output[list(old.output).index(output)] = f"{output}__replaced"

        def build(nb: NodeBuilder, signal: str, out: str, taps: np.ndarray) -> None:
            flat = flatten_channels(nb, signal, taps)
            if plan is not None:
                y = modal_conv(nb, flat.x, plan, self._state(MODAL, modal_state_shape(plan)), max_context)
            else:
                state = self._state(HISTORY, (flat.channels, h.shape[-1] - 1)) if h.shape[-1] > 1 else None
                y = history_conv(nb, flat.x, h.reshape(flat.channels, -1), state)
            restore(nb, y, flat, out)

        nb = NodeBuilder(f"{PREFIX}/site{len(self.specs)}")
        build_site(nb, build, measured.boundary.signal, output, dataclasses.replace(measured.filter, h=h))
        self._emit(nb)
        return HISTORY if plan is None else MODAL

    def stream_paddings(self) -> None:
        """Zero padding before the sequence becomes a cache of the padded tensor's last positions."""
        for node in list(self.graph.node):
            if node.name in self.ours or not node.input or not self.shapes.known(node.input[0]):
                continue
            if node.op_type == "Pad":
                self._stream_pad(node)
            elif node.op_type == "Conv":
                self._stream_conv(node)

    def _require_whole_sequence(self, node: onnx.NodeProto) -> None:
        """A cache continues a tensor chunk after chunk only if each chunk's tensor holds exactly its positions."""
        if not self.shapes.follows_length_exactly(node.input[0]):
            raise refuse(node, "pads the start of a tensor that is not exactly the sequence (its time axis is "
                                "not the input's length)")

    def _cache(self, node: onnx.NodeProto, nb: NodeBuilder, axis: int, positions: int) -> str:
        """``Concat(cache, x)`` along ``axis``; the new cache is its last ``positions`` steps."""
        x = node.input[0]
        shape = self.shapes.state_shape(x, positions)
        if shape is None:
            raise refuse(node, "pads a tensor whose batch is not axis 0 alone")
        spec = self._state(CACHE, shape)
        joined = nb.op("Concat", [spec.input, x], axis=axis)
        nb.op("Slice", [joined, nb.const([-positions]), nb.const([INT64_MAX]), nb.const([axis])], output=spec.output)
        return joined

    def _stream_pad(self, node: onnx.NodeProto) -> None:
        x = node.input[0]
        axis = self.shapes.time_axis(x)
        if axis is None:
            return
        rank = len(self.shapes.one[x])
        pads = constant_value(self.graph, node.input[1]) if len(node.input) > 1 and node.input[1] else None
        if pads is None:
            raise refuse(node, "pads the sequence by a computed amount")
        pads = np.asarray(pads, np.int64)
        axes = list(range(rank))
        if len(node.input) > 3 and node.input[3]:
            given = constant_value(self.graph, node.input[3])
            if given is None:
                raise refuse(node, "pads axes that are computed")
            axes = [int(a) % rank for a in np.asarray(given).ravel()]
        if axis not in axes:
            return
        slot = axes.index(axis)
        begin = int(pads[slot])
        if begin <= 0:
            return
        mode = attribute(node, "mode", b"constant").decode()
        fill = constant_value(self.graph, node.input[2]) if len(node.input) > 2 and node.input[2] else 0
        if mode != "constant" or fill is None or np.any(fill):
            raise refuse(node, f"pads the start of the sequence with {mode} values, not zeros")
        self._require_whole_sequence(node)
        nb = NodeBuilder(f"{PREFIX}/pad{len(self.specs)}")
        joined = self._cache(node, nb, axis, begin)
        rest = pads.copy()
        rest[slot] = 0
        if np.any(rest):
            inputs = [joined, nb.const(rest), *node.input[2:]]
            nb.op("Pad", inputs, output=node.output[0], mode="constant")
        else:
            nb.op("Identity", [joined], output=node.output[0])
        self.graph.node.remove(node)
        self._emit(nb)

    def _stream_conv(self, node: onnx.NodeProto) -> None:
        x = node.input[0]
        axis = self.shapes.time_axis(x)
        rank = len(self.shapes.one[x])
        if axis is None:
            return
        if axis != rank - 1:
            raise refuse(node, "convolves a tensor whose time axis is not its last")
        if attribute(node, "auto_pad", b"NOTSET") not in (b"", b"NOTSET"):
            raise refuse(node, "uses auto_pad; export the model with explicit padding")
        spatial = rank - 2
        if attribute(node, "strides", [1] * spatial)[-1] != 1:
            raise refuse(node, "strides along the sequence")
        pads = list(attribute(node, "pads", [0] * (2 * spatial)))
        begin = pads[spatial - 1]
        if begin <= 0:
            return
        self._require_whole_sequence(node)
        nb = NodeBuilder(f"{PREFIX}/conv{len(self.specs)}")
        joined = self._cache(node, nb, axis, begin)
        pads[spatial - 1] = 0
        if not self._shifted_sum(nb, node, joined, pads):
            kept = [a for a in node.attribute if a.name != "pads"]
            conv = helper.make_node("Conv", [joined, *node.input[1:]], list(node.output), name=node.name)
            conv.attribute.extend(kept)
            conv.attribute.append(helper.make_attribute("pads", pads))
            nb.nodes.append(conv)
        self.graph.node.remove(node)
        self._emit(nb)

    def _shifted_sum(self, nb: NodeBuilder, node: onnx.NodeProto, joined: str, pads: list[int]) -> bool:
        """A short depthwise 1-D Conv as ``Σ_k w[:, k] z[..., k : k + n]`` (ONNX Runtime's grouped Conv is slow
        on the few columns of a decode step); False, changing nothing, for any other Conv."""
        weight = constant_value(self.graph, node.input[1])
        bias = constant_value(self.graph, node.input[2]) if len(node.input) > 2 and node.input[2] else None
        group = attribute(node, "group", 1)
        dilations = list(attribute(node, "dilations", [1]))
        if (weight is None or weight.ndim != 3 or weight.shape[1] != 1 or group != weight.shape[0]
                or weight.shape[2] > SHIFTED_SUM_TAPS or dilations != [1] or pads[0]
                or (len(node.input) > 2 and node.input[2] and bias is None)):
            return False
        taps = weight.shape[2]
        z = joined if not pads[1] else nb.op("Pad", [joined, nb.const([0, 0, 0, 0, 0, pads[1]])])
        ends = [k + 1 - taps if k < taps - 1 else INT64_MAX for k in range(taps)]  # every slice n columns long
        terms = [nb.op("Mul", [nb.op("Slice", [z, nb.const([k]), nb.const([end]), nb.const([-1])]),
                               nb.const(weight[:, :, k].astype(np.float32))]) for k, end in enumerate(ends)]
        if bias is not None:
            terms.append(nb.const(bias.reshape(-1, 1).astype(np.float32)))
        total = terms[0]
        for term in terms[1:]:
            total = nb.op("Add", [total, term])
        nb.op("Identity", [total], output=node.output[0])
        return True

    def finish(self, first: dict[str, np.ndarray], second: dict[str, np.ndarray]) -> None:
        """Graph I/O of the decode contract, constants that follow the length, the position-wise check."""
        graph = self.graph
        ids, logits = graph.input[0], graph.output[0]
        del graph.output[1:]
        graph.input.extend(helper.make_tensor_value_info(s.input, onnx.TensorProto.FLOAT, ["batch", *s.shape])
                           for s in self.specs)
        graph.output.extend(helper.make_tensor_value_info(s.output, onnx.TensorProto.FLOAT, ["batch", *s.shape])
                            for s in self.specs)
        del graph.value_info[:]
        remove_dead(graph)
        self._follow_length(ids.name, first, second)
        self._check_position_wise()
        _rename(graph, ids.name, INPUT_IDS)
        _rename(graph, logits.name, LOGITS)
        for vi in (ids, logits):
            for dim, name in zip(vi.type.tensor_type.shape.dim, ["batch", "tokens"]):
                dim.Clear()
                dim.dim_param = name
        dedupe_initializers(graph)
        topological_sort(graph)

    def _follow_length(self, ids: str, first: dict[str, np.ndarray], second: dict[str, np.ndarray]) -> None:
        """Integer constants that differ between the traces become ``a*T + b``; float ones are refused."""
        graph = self.graph
        used = {i for node in graph.node for i in node.input}
        length_of: str | None = None
        nb = NodeBuilder(f"{PREFIX}/length")
        l1, l2 = self.shapes.lengths
        for name in sorted(used):
            if name not in first or name not in second:
                continue
            a, b = first[name], second[name]
            if a.shape == b.shape and np.array_equal(a, b):
                continue
            reader = next(n for n in graph.node if name in n.input)
            if a.dtype.kind not in "iu" or a.shape != b.shape:
                raise refuse(reader, f"reads a constant {name} of shape {a.shape} that depends on the sequence "
                                      "length (a positional table or mask?)")
            slope, rem = np.divmod(b.astype(np.int64) - a.astype(np.int64), l2 - l1)
            if np.any(rem):
                raise refuse(reader, f"reads a constant {name} that is not an affine function of the length")
            if length_of is None:
                length_of = nb.op("Shape", [ids], start=1, end=2)
                length_scalar = nb.op("Squeeze", [length_of, nb.const([0])])
            t = length_scalar if a.ndim == 0 else nb.op("Reshape", [length_of, nb.const([1] * a.ndim)])
            value = nb.op("Add", [nb.const(a.astype(np.int64) - slope * l1), nb.op("Mul", [nb.const(slope), t])])
            if a.dtype != np.int64:
                value = nb.op("Cast", [value], to=helper.np_dtype_to_tensor_dtype(a.dtype))
            nb.op("Identity", [value], output=name)
            _drop_constant(graph, name)
        self._emit(nb)

    def _check_position_wise(self) -> None:
        for node in self.graph.node:
            if node.name not in self.ours:
                check_position_wise(node, self.graph, self.shapes)


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    for vi in [*graph.input, *graph.output]:
        if vi.name == old:
            vi.name = new
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]


def _drop_constant(graph: onnx.GraphProto, name: str) -> None:
    for i, init in enumerate(graph.initializer):
        if init.name == name:
            del graph.initializer[i]
            return
    node = next(n for n in graph.node if n.op_type == "Constant" and n.output[0] == name)
    graph.node.remove(node)
