"""Which axis of each traced tensor is the sequence, and which ops treat every position alike and on its own.

The axes come from running the traced graph: every tensor's shape at (batch 1, L1), (batch 2, L1)
and, in the graph traced at L2, (batch 1, L2); an axis whose size differs between L1 and L2 follows
the sequence. :func:`check_position_wise` refuses, in one line naming the op and its module, every
op that mixes positions: the decode graph of :mod:`hyena_deploy.stateful.traced` runs a chunk of
the sequence through them, so they must not care which positions the chunk holds.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from hyena_deploy.errors import HyenaDeployError, first_line
from hyena_deploy.graph import attribute, constant_value
from hyena_deploy.rewrite.find import module_path
from hyena_deploy.rewrite.replace import dummy_feeds

ELEMENTWISE = {
    "Abs", "Add", "And", "BatchNormalization", "BitShift", "Cast", "CastLike", "Ceil", "Clip", "Cos", "Div", "Dropout",
    "Elu", "Equal", "Erf", "Exp", "Floor", "Gelu", "Greater", "GreaterOrEqual", "HardSigmoid", "HardSwish",
    "Identity", "IsInf", "IsNaN", "LeakyRelu", "Less", "LessOrEqual", "Log", "Max", "Min", "Mish", "Mod", "Mul",
    "Neg", "Not", "Or", "Pow", "PRelu", "Reciprocal", "Relu", "Round", "Selu", "Sigmoid", "Sign", "Sin", "Sinh",
    "Softplus", "Softsign", "Sqrt", "Sub", "Tan", "Tanh", "Where", "Xor", "Expand"}
RELABEL = {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten"}
# An output that still has the time axis shows the reduction left it alone.
REDUCE = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
           "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin"}
FROM_LENGTH_ALONE = {"ConstantOfShape", "Expand"}  # constant along time: fine without a time input


class SequenceAxes:
    """Every tensor's shape at (batch 1, L1), (batch 2, L1) and (batch 1, L2): which axes are time and batch."""

    def __init__(self, first: onnx.ModelProto, second: onnx.ModelProto, lengths: tuple[int, int]) -> None:
        self.lengths = lengths
        self.one = _all_shapes(first, dummy_feeds(first, lengths[0], 1))
        self.two = _all_shapes(first, dummy_feeds(first, lengths[0], 2))
        self.long = _all_shapes(second, dummy_feeds(second, lengths[1], 1))

    def known(self, name: str) -> bool:
        return name in self.one and name in self.long

    def time_axes(self, name: str) -> list[int]:
        """Axes whose size follows the length (empty for constants and shape values)."""
        if not self.known(name):
            return []
        a, b = self.one[name], self.long[name]
        return [i for i in range(len(a)) if a[i] != b[i]] if len(a) == len(b) else [-1]

    def time_axis(self, name: str) -> int | None:
        axes = self.time_axes(name)
        return axes[0] if axes else None

    def follows_length_exactly(self, name: str) -> bool:
        """Its time axis holds exactly the sequence: L1 positions at L1, L2 at L2."""
        axis = self.time_axis(name)
        return axis is not None and (self.one[name][axis], self.long[name][axis]) == self.lengths

    def state_shape(self, name: str, positions: int) -> tuple[int, ...] | None:
        """The shape without batch of ``positions`` time steps of ``name``; None unless batch is axis 0 alone."""
        one, two = self.one[name], self.two[name]
        if [i for i in range(len(one)) if one[i] != two[i]] != [0]:
            return None
        shape = list(one[1:])
        shape[self.time_axis(name) - 1] = positions
        return tuple(int(d) for d in shape)


def _all_shapes(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    """Shape of every node output and graph input when ONNX Runtime runs ``model`` on ``feeds``."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    names = [o for node in probe.graph.node for o in node.output if o]
    del probe.graph.output[:]
    probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
        values = session.run(names, feeds)
    except Exception as exc:  # ORT's own error types; the user needs its first line
        raise HyenaDeployError(f"ONNX Runtime cannot run the traced graph: {first_line(exc)}") from None
    shapes = {n: tuple(np.shape(v)) for n, v in zip(names, values)}
    shapes.update({n: tuple(v.shape) for n, v in feeds.items()})
    return shapes


def refuse(node: onnx.NodeProto, why: str) -> HyenaDeployError:
    where = module_path(node)
    return HyenaDeployError(f"no streaming form: {node.op_type} {node.name}{' in ' + where if where else ''} {why}")


def _ints(graph: onnx.GraphProto, node: onnx.NodeProto, index: int) -> list[int] | None:
    if len(node.input) <= index or not node.input[index]:
        return None
    value = constant_value(graph, node.input[index])
    return None if value is None else [int(v) for v in np.asarray(value).ravel()]


def check_position_wise(node: onnx.NodeProto, graph: onnx.GraphProto, shapes: SequenceAxes) -> None:
    """Refuse ``node`` unless it treats every position alike and on its own (see the module docstring)."""
    op = node.op_type
    times = {name: shapes.time_axes(name) for name in [*node.input, *node.output] if name}
    if any(len(axes) > 1 for axes in times.values()):
        raise refuse(node, "makes a tensor with two sequence axes (attention over positions has no state here)")
    inputs = {n: times[n][0] for n in node.input if n and times.get(n)}
    outputs_have_time = all(times.get(o) for o in node.output if o)
    if not inputs:
        if any(times.get(o) for o in node.output if o) and op not in FROM_LENGTH_ALONE:
            raise refuse(node, "builds values along the sequence from its length alone (positions)")
        return
    if op in ("Shape", "Size"):
        return
    if not outputs_have_time:
        raise refuse(node, "reduces or selects along the sequence axis")
    axis = inputs.get(node.input[0])
    rank = len(shapes.one[node.input[0]]) if shapes.known(node.input[0]) else 0
    if op in ELEMENTWISE or op in RELABEL or op in REDUCE:
        return
    if op == "MatMul":
        a, b = node.input
        if inputs.get(a) == len(shapes.one[a]) - 1 or (b in inputs and inputs[b] == len(shapes.one[b]) - 2):
            raise refuse(node, "contracts the sequence axis")
        return
    if op == "Gemm":
        if (axis == (0 if attribute(node, "transA", 0) else 1)) or node.input[1] in inputs:
            raise refuse(node, "contracts the sequence axis")
        return
    if op == "Einsum":
        _check_einsum(node, inputs, shapes)
        return
    if op in ("Softmax", "LogSoftmax", "Hardmax", "Concat", "Split", "Gather", "LpNormalization"):
        default = {"Softmax": -1, "LogSoftmax": -1, "Hardmax": -1, "LpNormalization": -1}.get(op, 0)
        along = attribute(node, "axis", default) % max(rank, 1)
        data_axis = inputs.get(node.input[0]) if op != "Concat" else next(iter(inputs.values()))
        if op == "Gather" and node.input[0] not in inputs:
            return  # an embedding table read at token positions
        if along == data_axis:
            raise refuse(node, "works along the sequence axis")
        return
    if op in ("LayerNormalization", "RMSNormalization", "SimplifiedLayerNormalization"):
        if axis >= attribute(node, "axis", -1) % rank:
            raise refuse(node, "normalizes over the sequence axis")
        return
    if op == "Slice":
        _check_slice(node, graph, axis, rank)
        return
    if op == "Pad":
        pads = _ints(graph, node, 1)
        if pads is None or pads[axis] or attribute(node, "mode", b"constant") != b"constant":
            raise refuse(node, "pads the sequence in a way that has no streaming form")
        return
    if op == "Conv":
        if node.input[1] in inputs or axis != rank - 1:
            raise refuse(node, "convolves with a weight that follows the sequence, or not along its last axis")
        return
    raise refuse(node, "has no streaming rule for a tensor along the sequence")


def _check_slice(node: onnx.NodeProto, graph: onnx.GraphProto, axis: int, rank: int) -> None:
    starts, axes, steps = _ints(graph, node, 1), _ints(graph, node, 3), _ints(graph, node, 4)
    axes = list(range(len(starts or []))) if axes is None else [a % rank for a in axes]
    if axis not in axes:
        return
    slot = axes.index(axis)
    if starts is None or starts[slot] < 0 or (steps is not None and steps[slot] != 1):
        raise refuse(node, "slices the sequence from its end or backwards")


def _check_einsum(node: onnx.NodeProto, inputs: dict[str, int], shapes: SequenceAxes) -> None:
    equation = attribute(node, "equation", b"").decode()
    lhs, _, rhs = equation.replace(" ", "").partition("->")
    terms = lhs.split(",")
    if "..." in equation or not rhs:
        raise refuse(node, "is an einsum with ellipsis or implicit output")
    for name, term in zip(node.input, terms):
        if name in inputs and term[inputs[name]] not in rhs:
            raise refuse(node, "sums over the sequence axis")
