"""Locate FFT convolutions in an ONNX graph: a signal DFT, a spectral product, an inverse DFT.

A site is described by its boundary only: the time-domain ``signal`` tensor (B, ..., L) that enters
the forward transform and the ``output`` tensor (B, ..., L) left after the inverse transform and the
causal crop. What lies between (padding, complex products written as real arithmetic, filter
branches, normalisations) is never matched op by op: :mod:`probe` measures it as a linear operator.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from hyena_deploy.graph import consumers, producers, value_dependent

# Ops that only pad or re-label the signal before the forward DFT.
_SIGNAL_PREP = {"Pad", "Unsqueeze", "Cast", "Identity"}
# Ops that may follow the inverse DFT inside the convolution (real part, crop, normalisation).
_OUTPUT_POST = {"Slice", "Gather", "Squeeze", "Cast", "Identity", "Mul", "Div", "Reshape"}


@dataclass(frozen=True)
class FFTConvSite:
    """One FFT convolution: ``output = causal_conv(signal, h)`` for some input-independent ``h``."""

    signal: str
    output: str
    inverse_dft: str


def _walk_to_signal(name: str, graph: onnx.GraphProto, made_by: dict) -> str:
    node = made_by.get(name)
    while node is not None and node.op_type in _SIGNAL_PREP:
        name = node.input[0]
        node = made_by.get(name)
    return name


def _walk_to_output(name: str, graph: onnx.GraphProto, read_by: dict, dynamic: set[str],
                    graph_outputs: set[str]) -> str:
    while name not in graph_outputs:
        readers = [r for r in read_by.get(name, []) if r.op_type not in ("Shape", "Size")]
        if len(readers) != 1 or readers[0].op_type not in _OUTPUT_POST:
            break
        node = readers[0]
        if node.input[0] != name or any(other in dynamic for other in node.input[1:]):
            break
        name = node.output[0]
    return name


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


def _is_inverse(node: onnx.NodeProto) -> bool:
    return any(a.name == "inverse" and a.i == 1 for a in node.attribute)


def find_fftconv_sites(model: onnx.ModelProto) -> list[FFTConvSite]:
    """Every inverse DFT fed by exactly one value-dependent forward DFT, as a site."""
    graph = model.graph
    made_by, read_by = producers(graph), consumers(graph)
    dynamic = value_dependent(graph)
    outputs = {o.name for o in graph.output}
    sites = []
    for node in graph.node:
        if node.op_type != "DFT" or not _is_inverse(node) or node.input[0] not in dynamic:
            continue
        forward = _dynamic_forward_dfts(node.input[0], made_by, dynamic)
        if len(forward) != 1:
            continue
        signal = _walk_to_signal(forward[0].input[0], graph, made_by)
        output = _walk_to_output(node.output[0], graph, read_by, dynamic, outputs)
        sites.append(FFTConvSite(signal=signal, output=output, inverse_dft=node.name or node.output[0]))
    return sites
