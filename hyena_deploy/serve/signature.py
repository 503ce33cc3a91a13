"""What a model to be served exposes: its input and output tensors (name, element type, dims).

Read from the ONNX graph without its weights (external data stays on disk). A TensorRT engine is
described by the ONNX graph it was built from (named in its sidecar) plus the sidecar's profile,
which bounds every dimension the engine accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx

from hyena_deploy.errors import HyenaDeployError, first_line
from hyena_deploy.tensorrt.engine_meta import EngineMeta, read_sidecar, sidecar_path


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output; ``dims`` None where a dimension is dynamic."""

    name: str
    type_name: str  # ONNX element type name: FLOAT, INT64, ...
    dims: tuple[int | None, ...]


@dataclass(frozen=True)
class Signature:
    """A graph's inputs and outputs in graph order; ``profile`` maps input names to (min, max) shapes for engines."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    profile: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] | None = None

    def input(self, name: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorSpec | None:
        return next((t for t in self.outputs if t.name == name), None)


def load_graph(path: Path) -> onnx.ModelProto:
    """The graph structure of an ONNX file, weights left on disk; one-line errors."""
    if not path.is_file():
        raise HyenaDeployError(f"{path}: file not found")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise HyenaDeployError(f"{path}: not a readable ONNX model ({first_line(exc)})") from None


def external_data_files(model: onnx.ModelProto) -> list[str]:
    """Relative locations of the external-data files the graph's initializers point at."""
    found: list[str] = []
    for tensor in _all_tensors(model.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = next(e.value for e in tensor.external_data if e.key == "location")
            if location not in found:
                found.append(location)
    return found


def graph_signature(model: onnx.ModelProto) -> Signature:
    """Inputs (initializers excluded) and outputs of a graph."""
    inits = {i.name for i in model.graph.initializer}
    return Signature(tuple(_spec(v) for v in model.graph.input if v.name not in inits),
                     tuple(_spec(v) for v in model.graph.output))


def engine_signature(engine: Path) -> tuple[Signature, EngineMeta]:
    """An engine's signature: its source graph's tensors with the sidecar's profile attached."""
    sidecar = read_sidecar(sidecar_path(engine))
    source = Path(sidecar.source_onnx)
    if not source.is_file():
        raise HyenaDeployError(f"{engine}: its source graph {source} (named in the sidecar) is missing; the "
                               "config is derived from it")
    signature = graph_signature(load_graph(source))
    profile = {shape.name: (tuple(shape.min), tuple(shape.max)) for shape in sidecar.profile}
    return Signature(signature.inputs, signature.outputs, profile), sidecar


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor = value.type.tensor_type
    if not value.type.HasField("tensor_type"):
        raise HyenaDeployError(f"graph tensor {value.name!r} is not a tensor; Triton serves tensors only")
    dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
    return TensorSpec(value.name, onnx.TensorProto.DataType.Name(tensor.elem_type), dims)


def _all_tensors(graph: onnx.GraphProto):
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            for sub in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
                yield from _all_tensors(sub)
