"""Mixed precision by graph rewrite: weights and activations in fp16/bf16, FFT convolutions in fp32.

TensorRT 11 is strongly typed (no builder precision flags): the types written in the graph are the
types that run. :func:`apply_precision` therefore retypes the graph itself, as ModelOpt AutoCast does:

* a node computes in the low precision when its op type is in :data:`LOW_PRECISION_OPS` and its
  ONNX schema at the model's opset admits the type (Conv has no bf16 before opset 22); every other
  node computes in fp32. As in ``torch.autocast``, matmuls and convolutions go low and reductions and
  range-sensitive ops stay fp32 (LayerNormalization, ReduceMean/Sum, Softmax, Exp, Log, Pow, Sqrt,
  Div, Reciprocal): sums over a whole axis lose most of fp16's 10 or bf16's 7 mantissa bits, and
  squares, exponentials and quotients leave fp16's range (65504) where fp32 does not. Pointwise and
  data-movement ops also go low, so activations stay low between matmuls;
* every FFT-convolution island (node names starting with :data:`FFTCONV_PREFIX`) stays fp32 with its
  filter spectra: the unnormalized DC bin is a sum over the sequence;
* the padding wrapper of dynamic-length graphs (:data:`PADDING_PREFIX`) runs in the I/O type;
* only FLOAT tensors are retyped: token ids, shapes and indices keep their integer types;
* float initializers read by low-precision nodes are converted once (fp16 nodes whose constants
  exceed 65504 stay fp32 instead); a Cast is inserted wherever an activation crosses between fp32
  and low-precision nodes, once per tensor and type.

ONNX Runtime's CPU provider has few low-precision kernels (:data:`ORT_CPU_KERNELS`), so parity runs
go through :func:`for_onnxruntime`.
"""

from __future__ import annotations

import functools

import ml_dtypes
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hyena_deploy import metadata
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.graph import remove_dead, topological_sort
from hyena_deploy.plugins.schema import register_schema
from hyena_deploy.names import CAST_PREFIX, FFTCONV_PREFIX, PADDING_PREFIX
from hyena_deploy.verify.metrics import PRECISIONS

LOW_TYPES = {"fp16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}
FP16_MAX = float(np.finfo(np.float16).max)

_DATA_MOVEMENT = frozenset({"Concat", "ConstantOfShape", "Expand", "Flatten", "Gather", "Identity", "Pad",
                            "Reshape", "Slice", "Split", "Squeeze", "Tile", "Transpose", "Unsqueeze", "Where"})
_ARITHMETIC = frozenset({"Abs", "Add", "Clip", "Conv", "Erf", "Gelu", "Gemm", "MatMul", "Max", "Min", "Mul",
                         "Neg", "Relu", "Sigmoid", "Sub", "Tanh"})
# Op types (default domain) computed in the low precision; each has one float type constraint T.
LOW_PRECISION_OPS = {"fp16": _DATA_MOVEMENT | _ARITHMETIC, "bf16": _DATA_MOVEMENT | _ARITHMETIC}

# Op types with an ONNX Runtime CPU kernel for the type (measured: onnxruntime 1.32, x86-64; no
# arithmetic at all in bf16, and in fp16 ORT inserts Casts to fp32 around MatMul, Conv, Add, Mul, ...).
_ORT_MOVEMENT = frozenset({"Cast", "Concat", "ConstantOfShape", "Flatten", "Gather", "Identity", "LayerNormalization",
                           "Reshape", "Shape", "Size", "Slice", "Split", "Squeeze", "Transpose", "Unsqueeze"})
ORT_CPU_KERNELS = {TensorProto.FLOAT16: _ORT_MOVEMENT | {"Clip", "Expand", "Max", "Min"},
                   TensorProto.BFLOAT16: _ORT_MOVEMENT}

# Ops that read a float input at any type (outside the islands, no Cast is needed in front of them).
_ANY_INPUT_TYPE = frozenset({"Cast", "Shape", "Size"})
_SUFFIX = {TensorProto.FLOAT: "fp32", TensorProto.FLOAT16: "fp16", TensorProto.BFLOAT16: "bf16"}
_NUMPY = {TensorProto.FLOAT16: np.float16, TensorProto.BFLOAT16: ml_dtypes.bfloat16}
_TYPE_STR = {TensorProto.FLOAT16: "tensor(float16)", TensorProto.BFLOAT16: "tensor(bfloat16)"}


def apply_precision(model: onnx.ModelProto, precision: str, keep_io_types: bool = True,
                    notes: list[str] | None = None) -> onnx.ModelProto:
    """A copy of ``model`` computing in ``precision``; FFT-conv islands and sensitive ops stay fp32.

    ``keep_io_types=False`` also gives the float graph inputs and outputs the low type. Nodes kept
    in fp32 because a constant is out of fp16 range are reported in ``notes``. Writes
    ``metadata.PRECISION``.
    """
    _check(precision)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    if precision != "fp32":
        _Lowering(out, LOW_TYPES[precision], LOW_PRECISION_OPS[precision], keep_io_types, notes).run()
    metadata.write(out, {metadata.PRECISION: precision})
    return out


def for_onnxruntime(model: onnx.ModelProto) -> onnx.ModelProto:
    """The parity view of a lowered graph, which ONNX Runtime's CPU provider runs.

    Each low-precision node without a CPU kernel for its type computes in fp32 between Casts, so every
    tensor is still rounded to its graph type (arithmetic in fp32, like TensorRT's fp32 accumulation);
    low-precision graph inputs and outputs become fp32. ORT refuses such bf16 nodes; fp16 ones it
    runs by itself but drops the rounding inside chains of them (errors ~2x smaller than the graph's).
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    types = elem_types(out)
    del graph.value_info[:]
    added: list[onnx.NodeProto] = []

    def cast(source: str, target: str, to: int) -> None:
        added.append(helper.make_node("Cast", [source], [target], name=f"{CAST_PREFIX}/{target}", to=to))

    for vi in graph.input:
        io_type = vi.type.tensor_type.elem_type
        if io_type in ORT_CPU_KERNELS:
            _rename_reads(graph, vi.name, f"{vi.name}__io")
            cast(vi.name, f"{vi.name}__io", io_type)
            types[f"{vi.name}__io"] = io_type
            vi.type.tensor_type.elem_type = TensorProto.FLOAT
    for vi in graph.output:
        io_type = vi.type.tensor_type.elem_type
        if io_type in ORT_CPU_KERNELS:
            _rename_writes(graph, vi.name, f"{vi.name}__io")
            cast(f"{vi.name}__io", vi.name, TensorProto.FLOAT)
            types[f"{vi.name}__io"] = io_type
            vi.type.tensor_type.elem_type = TensorProto.FLOAT
    widened: dict[str, str] = {}
    for node in list(graph.node):
        low_types = {types.get(t) for t in (*node.input, *node.output)} & set(ORT_CPU_KERNELS)
        if node.domain not in ("", "ai.onnx") or all(node.op_type in ORT_CPU_KERNELS[t] for t in low_types):
            continue
        for i, name in enumerate(node.input):
            if types.get(name) in ORT_CPU_KERNELS:
                if name not in widened:
                    widened[name] = f"{name}__ort_fp32"
                    cast(name, widened[name], TensorProto.FLOAT)
                node.input[i] = widened[name]
        for i, name in enumerate(node.output):
            if types.get(name) in ORT_CPU_KERNELS:
                node.output[i] = f"{name}__ort_unrounded"
                cast(node.output[i], name, types[name])
    graph.node.extend(added)
    topological_sort(graph)
    return out


def elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor shape inference can type (the fused FFTConv schema registered)."""
    register_schema()
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types = {vi.name: vi.type.tensor_type.elem_type for vi in (*graph.input, *graph.value_info, *graph.output)}
    types.update({t.name: t.data_type for t in graph.initializer})
    return types


def _check(precision: str) -> None:
    if precision not in PRECISIONS:
        raise HyenaDeployError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")


def _rename_reads(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]


def _rename_writes(graph: onnx.GraphProto, old: str, new: str) -> None:
    _rename_reads(graph, old, new)
    for node in graph.node:
        node.output[:] = [new if name == old else name for name in node.output]


@functools.cache
def _schema_allows(op_type: str, opset: int, low: int) -> bool:
    """Whether every float type constraint of the op at ``opset`` admits ``low`` (Conv has no bf16 before 22)."""
    schema = onnx.defs.get_schema(op_type, opset, "")
    return all(_TYPE_STR[low] in c.allowed_type_strs for c in schema.type_constraints
               if "tensor(float)" in c.allowed_type_strs)


def _convert(value: onnx.TensorProto, to: int, name: str) -> onnx.TensorProto:
    return numpy_helper.from_array(numpy_helper.to_array(value).astype(_NUMPY[to]), name)


class _Lowering:
    """One pass over a topologically sorted graph: choose each node's compute type, retype, insert Casts."""

    def __init__(self, model: onnx.ModelProto, low: int, ops: frozenset[str], keep_io_types: bool,
                 notes: list[str] | None) -> None:
        self.graph = model.graph
        self.low, self.ops, self.notes = low, ops, notes
        self.io = TensorProto.FLOAT if keep_io_types else low
        self.opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        self.types = elem_types(model)
        self.outputs = {vi.name for vi in self.graph.output if vi.type.tensor_type.elem_type == TensorProto.FLOAT}
        self.constants = {t.name: t for t in self.graph.initializer if t.data_type == TensorProto.FLOAT}
        for node in self.graph.node:
            value = _constant_value(node)
            if node.op_type == "Constant" and value is not None and value.data_type == TensorProto.FLOAT:
                self.constants[node.output[0]] = value
        self.held: dict[str, tuple[str, int]] = {}    # float tensor -> (name holding it, its type)
        self.copies: dict[tuple[str, int], str] = {}  # (float tensor, type) -> name of its converted copy
        self.added_nodes: list[onnx.NodeProto] = []
        self.added_initializers: list[onnx.TensorProto] = []

    def run(self) -> None:
        del self.graph.value_info[:]
        for vi in self.graph.input:
            if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
                vi.type.tensor_type.elem_type = self.io
                self.held[vi.name] = (vi.name, self.io)
        for name in self.constants:
            self.held[name] = (name, TensorProto.FLOAT)
        for node in list(self.graph.node):
            if not (node.op_type == "Constant" and node.output[0] in self.constants):
                self._retype(node)
        for vi in self.graph.output:
            if vi.name in self.outputs:
                self._read(vi.name, self.io)
                vi.type.tensor_type.elem_type = self.io
        self.graph.node.extend(self.added_nodes)
        self.graph.initializer.extend(self.added_initializers)
        remove_dead(self.graph)
        topological_sort(self.graph)

    def _compute_type(self, node: onnx.NodeProto) -> int:
        if node.name.startswith(FFTCONV_PREFIX):
            return TensorProto.FLOAT
        if node.name.startswith(PADDING_PREFIX):
            return self.io
        if node.domain not in ("", "ai.onnx") or node.op_type not in self.ops \
                or not _schema_allows(node.op_type, self.opset, self.low):
            return TensorProto.FLOAT
        values = [self.constants[t] for t in node.input if t in self.constants]
        values += [v for v in [self._fill(node)] if v is not None]
        if self.low == TensorProto.FLOAT16 and any(
                not np.all(np.abs(numpy_helper.to_array(v)) <= FP16_MAX) for v in values):
            if self.notes is not None:
                self.notes.append(f"{node.op_type} node {node.name!r} kept in fp32: a constant is past fp16's "
                                  f"range ({FP16_MAX:g})")
            return TensorProto.FLOAT
        return self.low

    def _fill(self, node: onnx.NodeProto) -> onnx.TensorProto | None:
        """The float fill value of a ConstantOfShape node (fp32 zero when not given)."""
        if node.op_type != "ConstantOfShape" or self.types.get(node.output[0]) != TensorProto.FLOAT:
            return None
        value = _constant_value(node)
        return value if value is not None else numpy_helper.from_array(np.zeros(1, np.float32))

    def _retype(self, node: onnx.NodeProto) -> None:
        compute = self._compute_type(node)
        untyped = [name for name in (*node.input, *node.output) if name and name not in self.types]
        if compute != TensorProto.FLOAT and untyped:
            raise HyenaDeployError(f"cannot lower {node.name or node.op_type} to {_SUFFIX[compute]}: shape "
                                   f"inference gives no type for {untyped[0]}")
        any_type = node.op_type in _ANY_INPUT_TYPE and not node.name.startswith(FFTCONV_PREFIX)
        for i, name in enumerate(node.input):
            if name in self.held:
                node.input[i] = self._read(name, self.held[name][1] if any_type else compute)
        for i, name in enumerate(node.output):
            if self.types.get(name) == TensorProto.FLOAT:
                if name in self.outputs and compute != self.io:
                    node.output[i] = f"{name}__{_SUFFIX[compute]}"
                self.held[name] = (node.output[i], compute)
        fill = self._fill(node)
        if fill is not None and compute != TensorProto.FLOAT:
            del node.attribute[:]
            node.attribute.append(helper.make_attribute("value", _convert(fill, compute, "value")))

    def _read(self, tensor: str, want: int) -> str:
        """Name of ``tensor`` at type ``want``: itself, a converted initializer, or a Cast (made once)."""
        name, have = self.held[tensor]
        if have == want:
            return name
        if (tensor, want) not in self.copies:
            target = tensor if tensor in self.outputs and want == self.io else f"{tensor}__{_SUFFIX[want]}"
            if tensor in self.constants:
                self.added_initializers.append(_convert(self.constants[tensor], want, target))
            else:
                self.added_nodes.append(helper.make_node("Cast", [name], [target], name=f"{CAST_PREFIX}/{target}",
                                                         to=want))
            self.copies[tensor, want] = target
        return self.copies[tensor, want]


def _constant_value(node: onnx.NodeProto) -> onnx.TensorProto | None:
    """The ``value`` attribute of a Constant or ConstantOfShape node."""
    if node.op_type in ("Constant", "ConstantOfShape"):
        for attr in node.attribute:
            if attr.name == "value":
                return attr.t
    return None
