"""Dynamic sequence length by exact right-padding of a graph traced at the maximum length.

Inputs of length L <= L_max are padded on axis 1 with zeros up to L_max and every output is cut
back to L. This is exact for models that are causal along axis 1, which
:func:`check_right_padding` verifies on the PyTorch model before anything is exported; in front of
each two-sided FFT-convolution site the padded positions are zeroed, so that sites whose filters
do not change with the length stay exact too.
"""

from __future__ import annotations

import numpy as np
import onnx

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.graph import NodeBuilder, axis1_length, topological_sort
from hyena_deploy.loaded import LoadedModel
from hyena_deploy.names import PADDING_PREFIX
from hyena_deploy.rewrite.layout import VALID_POSITIONS
from hyena_deploy.runners.torch_runner import TorchRunner
from hyena_deploy.verify.metrics import Tolerance, compare_output

CAUSALITY_TOLERANCE = 1e-5  # relative L2 between m(x[:, :L]) and m(x)[:, :L]


def probe_lengths(max_len: int) -> list[int]:
    """Lengths to check a dynamic model at: 1, a small odd one, an odd one past the middle, the max."""
    return sorted({1, min(17, max_len), max(1, (max_len // 2) | 1), max_len})


class NotCausal(HyenaDeployError):
    """The model's outputs at a length are not the prefix of its outputs at the maximum."""


def check_right_padding(loaded: LoadedModel, max_len: int, rng: np.random.Generator) -> None:
    """Refuse models whose outputs at length L are not the first L positions of outputs at L_max.

    The model runs in float64 where it can (fp32 FFTs of 2 L_max points alone differ from those of 2 L by ~1e-5 at
    16k tokens: rounding, not a causality defect), else in its own precision.
    """
    full_inputs = loaded.make_inputs(2, max_len, rng)
    runner = TorchRunner(loaded, float64=True)
    try:
        runner.run_tensors(tuple(x[:, :1] for x in full_inputs))
    except (RuntimeError, TypeError):  # a model that pins float32 inside (custom kernels, explicit casts)
        runner = TorchRunner(loaded)
    full = runner.run_tensors(full_inputs)
    for length in probe_lengths(max_len)[:-1]:
        part = runner.run_tensors(tuple(x[:, :length] for x in full_inputs))
        for index, (whole, cut) in enumerate(zip(full, part)):
            if whole.ndim < 2 or whole.shape[1] != max_len or cut.shape != (*whole.shape[:1], length, *whole.shape[2:]):
                raise HyenaDeployError(
                    f"output {index} has shape {cut.shape} at length {length} and {whole.shape} at {max_len}: "
                    "it has no sequence axis 1, so a dynamic length is not possible; export with --seq-len")
            err = compare_output(f"output {index}", f"L={length}", whole[:, :length], cut, Tolerance()).rel_l2
            if not err <= CAUSALITY_TOLERANCE:
                raise NotCausal(
                    f"the model is not causal along axis 1 (output {index} at length {length} differs from the "
                    f"prefix of the full-length output by {err:.1e}): right-padding would change results; "
                    "export with --seq-len")


def make_length_dynamic(model: onnx.ModelProto, max_len: int) -> None:
    """Turn a graph traced at ``max_len`` into one taking any 1 <= L <= max_len, in place."""
    graph = model.graph
    nb = NodeBuilder(PADDING_PREFIX)
    seq_inputs = [vi for vi in graph.input if axis1_length(vi) == max_len]
    if not seq_inputs:
        raise HyenaDeployError(f"no graph input has length {max_len} on axis 1")
    length = nb.op("Shape", [seq_inputs[0].name], start=1, end=2)
    renames = {}
    for vi in seq_inputs:
        padded = f"{vi.name}__padded"
        renames[vi.name] = padded
        width = nb.op("Sub", [nb.const([max_len]), length])
        shape = nb.op("Concat", [nb.op("Shape", [vi.name], start=0, end=1), width,
                                 nb.op("Shape", [vi.name], start=2)], axis=0)
        zero = onnx.helper.make_tensor("zero", vi.type.tensor_type.elem_type, [1], [0])
        # ConstantOfShape fails on a negative width, so an input longer than max_len is an error.
        zeros = nb.op("ConstantOfShape", [shape], value=zero)
        nb.op("Concat", [vi.name, zeros], output=padded, axis=1)
        vi.type.tensor_type.shape.dim[1].dim_param = "seq"
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
    for vi in graph.output:
        if axis1_length(vi) != max_len:
            raise HyenaDeployError(f"output {vi.name} has no sequence axis of length {max_len}")
        full = f"{vi.name}__full"
        for node in graph.node:
            for i, name in enumerate(node.output):
                if name == vi.name:
                    node.output[i] = full
            for i, name in enumerate(node.input):
                if name == vi.name:
                    node.input[i] = full
        nb.op("Slice", [full, nb.const([0]), length, nb.const([1])], output=vi.name)
        vi.type.tensor_type.shape.dim[1].dim_param = "seq"
    _mask_padding_before_two_sided_sites(graph, nb, length)
    graph.node.extend(nb.nodes)
    graph.initializer.extend(nb.initializers)
    topological_sort(graph)


def _mask_padding_before_two_sided_sites(graph: onnx.GraphProto, nb: NodeBuilder, length: str) -> None:
    """Each two-sided site's mask of ones (see ``rewrite.layout``) becomes ``t < L``, in place.

    Positions past the input's length then reach such a site as zeros, so its outputs at t < L see
    only the valid signal: exact when the model at length L is that convolution of its first L
    positions (verification at several lengths checks it).
    """
    for node in [n for n in graph.node if n.output and n.output[0].endswith(f"/{VALID_POSITIONS}")]:
        shape = node.input[0]                                     # ones except the site's time length
        positions = nb.op("Range", [nb.const(np.array(0, np.int64)), nb.op("ReduceMax", [shape], keepdims=0),
                                    nb.const(np.array(1, np.int64))])
        valid = nb.op("Cast", [nb.op("Less", [positions, length])], to=onnx.TensorProto.FLOAT)
        graph.node.remove(node)
        nb.op("Reshape", [valid, shape], output=node.output[0])
