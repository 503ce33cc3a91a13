"""Small helpers over ONNX protobufs: building nodes, consumers, dead-code removal."""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable

import numpy as np
import onnx
from onnx import helper, numpy_helper

DTYPE_TO_ONNX = {np.dtype(np.float32): onnx.TensorProto.FLOAT, np.dtype(np.int64): onnx.TensorProto.INT64}


class NodeBuilder:
    """Collects nodes and initializers under one name prefix, giving every tensor a unique name."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}/{hint}_{self._count}"

    def const(self, value: np.ndarray | list[int] | int | float, hint: str = "c") -> str:
        """Add an initializer; python ints become int64, floats become float32."""
        array = np.asarray(value)
        if array.dtype.kind == "i":
            array = array.astype(np.int64)
        elif array.dtype.kind == "f":
            array = array.astype(np.float32)
        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: Iterable[str], output: str | None = None, **attrs) -> str:
        """Add one single-output node and return its output name."""
        out = output or self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=self._name(op_type), **attrs))
        return out


def input_specs(model: onnx.ModelProto, batch: int, length: int) -> dict[str, tuple[list[int], np.dtype]]:
    """Shape and dtype of every graph input, with ``batch`` on a dynamic axis 0, ``length`` on a dynamic axis 1
    (other dynamic axes 1)."""
    inits = {i.name for i in model.graph.initializer}
    specs = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else {0: batch, 1: length}.get(axis, 1)
                for axis, d in enumerate(vi.type.tensor_type.shape.dim)]
        specs[vi.name] = (dims, np.dtype(helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)))
    return specs


def graph_input_names(model: onnx.ModelProto) -> list[str]:
    """Names of the graph inputs a caller feeds (initializers listed as inputs excluded)."""
    inits = {i.name for i in model.graph.initializer}
    return [vi.name for vi in model.graph.input if vi.name not in inits]


def module_scopes(node: onnx.NodeProto) -> list[str]:
    """The PyTorch module paths a dynamo-traced node was traced inside, outermost first ('' is the model itself);
    empty for nodes without scope metadata (those hyena-deploy adds)."""
    text = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), None)
    try:
        names = ast.literal_eval(text) if text else []
    except (ValueError, SyntaxError):
        return []
    return [str(n) for n in names[:-1]] if isinstance(names, list) else []  # the last entry names the node itself


def axis1_length(vi: onnx.ValueInfoProto) -> int | None:
    """Static length of axis 1 (the sequence axis) of a graph input/output; None when dynamic or absent."""
    dims = vi.type.tensor_type.shape.dim
    return dims[1].dim_value if len(dims) > 1 and dims[1].HasField("dim_value") else None


def consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """Map each tensor name to the nodes that read it."""
    table: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            if name:
                table[name].append(node)
    return table


def producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    """Map each tensor name to the node that writes it."""
    return {out: node for node in graph.node for out in node.output}


def remove_dead(graph: onnx.GraphProto) -> None:
    """Drop nodes whose outputs nobody reads and initializers nobody uses, in place (any node order)."""
    made_by = producers(graph)
    needed: set[str] = set()
    live: set[int] = set()
    stack = [out.name for out in graph.output]
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        node = made_by.get(name)
        if node is not None and id(node) not in live:
            live.add(id(node))
            stack.extend(i for i in node.input if i)
    kept = [node for node in graph.node if id(node) in live]
    del graph.node[:]
    graph.node.extend(kept)
    live_inits = [init for init in graph.initializer if init.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(live_inits)


def dedupe_initializers(graph: onnx.GraphProto) -> None:
    """Keep one initializer per distinct (type, shape, bytes), in place: DFT matrices shared by sites."""
    canonical: dict[tuple, str] = {}
    rename: dict[str, str] = {}
    kept = []
    graph_inputs = {i.name for i in graph.input}
    for init in graph.initializer:
        key = (init.data_type, tuple(init.dims), numpy_helper.to_array(init).tobytes())
        if key in canonical and init.name not in graph_inputs:
            rename[init.name] = canonical[key]
        else:
            canonical.setdefault(key, init.name)
            kept.append(init)
    if not rename:
        return
    del graph.initializer[:]
    graph.initializer.extend(kept)
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = rename.get(name, name)


def topological_sort(graph: onnx.GraphProto) -> None:
    """Order nodes so every input is produced before it is read, in place (stable)."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        rest = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ValueError(f"graph has a cycle or a missing tensor near node {rest[0].name!r}")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def value_dependent(graph: onnx.GraphProto) -> set[str]:
    """Names of tensors whose values depend on the values of graph inputs (not only their shapes)."""
    dynamic = {i.name for i in graph.input} - {i.name for i in graph.initializer}
    for node in graph.node:
        if node.op_type in ("Shape", "Size"):
            continue
        if any(name in dynamic for name in node.input):
            dynamic.update(node.output)
    return dynamic


def constant_value(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    """Value of an initializer or Constant node output, or None."""
    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return numpy_helper.to_array(node.attribute[0].t) if node.attribute[0].name == "value" else None
    return None


def as_float64(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy computing in float64: float initializers, constants, casts, graph inputs and outputs widened."""
    wide = onnx.ModelProto()
    wide.CopyFrom(model)
    graph = wide.graph
    for vi in [*graph.input, *graph.output]:
        if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
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


def attribute(node: onnx.NodeProto, name: str, default=None):
    """The value of ``node``'s attribute ``name`` (bytes for strings, lists for repeated fields), or ``default``."""
    found = next((a for a in node.attribute if a.name == name), None)
    return default if found is None else helper.get_attribute_value(found)
