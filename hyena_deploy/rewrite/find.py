"""Locate FFT convolutions in an ONNX graph: a signal DFT, a spectral product, an inverse DFT.

A site is described by its boundary only, and the boundary is not fixed here: the walk from the
forward DFT back to the signal (through casts, constant scalings, axis relabelling and zero
padding) and from the inverse DFT on to the output (through crops, scalings and relabelling)
gives ordered *candidates*, widest first. :mod:`probe` measures each candidate region as a linear
operator and keeps the widest one that is exactly a convolution, so an op the walk passes that is
not (a time-varying Div, a flip) only narrows the site instead of being folded into it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from hyena_deploy.graph import constant_value, consumers, module_scopes, producers, value_dependent

# Unary ops that relabel, pad, cast or scale the signal before the forward DFT.
_SIGNAL_PREP = {"Pad", "Unsqueeze", "Reshape", "Transpose", "Cast", "Identity", "Mul", "Div", "Concat", "Squeeze"}
# Ops that may follow the inverse DFT inside the convolution (real part, crop, scaling, relabelling).
_OUTPUT_POST = {"Slice", "Split", "Gather", "Squeeze", "Unsqueeze", "Cast", "Identity", "Mul", "Div", "Reshape",
                "Transpose"}


@dataclass(frozen=True)
class FFTConvSite:
    """One inverse DFT of a value-dependent spectrum and the boundaries a convolution may have.

    ``signals`` run from the widest (farthest before the forward DFT) to the DFT's own input;
    ``outputs`` from the widest (farthest after the inverse DFT) to its own output.
    """

    inverse_dft: str
    forward_dft: str
    signals: tuple[str, ...]
    outputs: tuple[str, ...]
    module: str


@dataclass(frozen=True)
class SkippedSite:
    """An inverse DFT (or a site) left exactly as traced, and why, in terms a user can act on."""

    node_name: str
    module: str
    reason: str

    def __str__(self) -> str:
        where = f" in {self.module}" if self.module else ""
        return f"FFT convolution at {self.node_name}{where} left as traced: {self.reason}"


def module_path(node: onnx.NodeProto) -> str:
    """The PyTorch module path a dynamo-traced node came from (``blocks.0.filter``), or ""."""
    scopes = module_scopes(node)
    return scopes[-1] if scopes else ""


def _is_inverse(node: onnx.NodeProto) -> bool:
    return any(a.name == "inverse" and a.i == 1 for a in node.attribute)


def _is_zeros(graph: onnx.GraphProto, name: str, made_by: dict) -> bool:
    """True when ``name`` is statically all zeros (a constant, or ConstantOfShape/Expand of zero)."""
    value = constant_value(graph, name)
    if value is not None:
        return not np.any(value)
    node = made_by.get(name)
    if node is None:
        return False
    if node.op_type == "ConstantOfShape":
        attr = next((a for a in node.attribute if a.name == "value"), None)
        return attr is None or not np.any(onnx.numpy_helper.to_array(attr.t))
    if node.op_type in ("Expand", "Cast", "Identity"):
        return _is_zeros(graph, node.input[0], made_by)
    return False


def _data_input(node: onnx.NodeProto, graph: onnx.GraphProto, made_by: dict, dynamic: set[str]) -> str | None:
    """The one value-dependent input a signal-side op passes on, or None if the op is not a relabel/pad/scale."""
    live = [i for i in node.input if i in dynamic]
    if len(live) != 1:
        return None
    data = live[0]
    if node.op_type == "Concat":
        return data if all(_is_zeros(graph, i, made_by) for i in node.input if i != data) else None
    if node.op_type == "Div" and node.input[0] != data:
        return None
    if node.op_type not in ("Mul", "Div") and node.input[0] != data:
        return None
    if node.op_type == "Pad":
        mode = next((a.s for a in node.attribute if a.name == "mode"), b"constant")
        if mode != b"constant" or (len(node.input) > 2 and node.input[2] and not _is_zeros(graph, node.input[2], made_by)):
            return None
    return data


def _signal_candidates(dft: onnx.NodeProto, graph: onnx.GraphProto, made_by: dict, dynamic: set[str]) -> list[str]:
    chain = [dft.input[0]]
    node = made_by.get(chain[-1])
    while node is not None and node.op_type in _SIGNAL_PREP:
        data = _data_input(node, graph, made_by, dynamic)
        if data is None:
            break
        chain.append(data)
        node = made_by.get(data)
    return chain[::-1]


def _reverses(node: onnx.NodeProto, graph: onnx.GraphProto) -> bool:
    """A Slice with a negative step (``torch.flip``) reverses time; the convolution ends before it."""
    if node.op_type != "Slice" or len(node.input) < 5 or not node.input[4]:
        return False
    steps = constant_value(graph, node.input[4])
    return steps is None or bool((steps < 0).any())


def _output_candidates(idft: onnx.NodeProto, graph: onnx.GraphProto, read_by: dict, dynamic: set[str]) -> list[str]:
    graph_outputs = {o.name for o in graph.output}
    chain = [idft.output[0]]
    while chain[-1] not in graph_outputs:
        name = chain[-1]
        readers = [r for r in read_by.get(name, []) if r.op_type not in ("Shape", "Size")]
        if len(readers) != 1 or readers[0].op_type not in _OUTPUT_POST or _reverses(readers[0], graph):
            break
        node = readers[0]
        others = [i for i in node.input if i and i != name]
        if any(i in dynamic for i in others) or (node.op_type == "Div" and node.input[0] != name):
            break
        used = [o for o in node.output if o in read_by or o in graph_outputs]
        if len(used) != 1:
            break
        chain.append(used[0])
    return chain[::-1]


def _dynamic_forward_dfts(start: str, made_by: dict, dynamic: set[str]) -> list[onnx.NodeProto]:
    """Forward DFT nodes with value-dependent input among the ancestors of ``start``."""
    found, seen, stack = [], set(), [start]
    while stack:
        name = stack.pop()
        node = made_by.get(name)
        if node is None or id(node) in seen or name not in dynamic:
            continue
        seen.add(id(node))
        if node.op_type == "DFT" and not _is_inverse(node):
            found.append(node)
            continue
        stack.extend(i for i in node.input if i)
    return found


def find_sites(model: onnx.ModelProto) -> tuple[list[FFTConvSite], list[SkippedSite]]:
    """Every inverse DFT fed by exactly one value-dependent forward DFT as a site; the others with a reason."""
    graph = model.graph
    made_by, read_by = producers(graph), consumers(graph)
    dynamic = value_dependent(graph)
    sites, skipped = [], []
    for node in graph.node:
        if node.op_type != "DFT" or not _is_inverse(node) or node.input[0] not in dynamic:
            continue
        name, module = node.name or node.output[0], module_path(node)
        forward = _dynamic_forward_dfts(node.input[0], made_by, dynamic)
        if len(forward) != 1:
            reason = ("its spectrum comes from no forward DFT of the input" if not forward else
                      f"its spectrum is a product of {len(forward)} input-dependent forward DFTs "
                      "(not a fixed filter applied to one signal)")
            skipped.append(SkippedSite(name, module, reason))
            continue
        sites.append(FFTConvSite(inverse_dft=name, forward_dft=forward[0].name or forward[0].output[0],
                                 signals=tuple(_signal_candidates(forward[0], graph, made_by, dynamic)),
                                 outputs=tuple(_output_candidates(node, graph, read_by, dynamic)),
                                 module=module))
    return sites, skipped
