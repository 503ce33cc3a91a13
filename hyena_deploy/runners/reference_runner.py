"""ONNX's reference evaluator: slow, but its DFT is exact at every size (ONNX Runtime's is not)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator

from hyena_deploy.graph import graph_input_names


class ReferenceRunner:
    """An ONNX graph in ``onnx.reference``: the reference for graphs that have no PyTorch source (``rewrite``)."""

    name = "onnx-reference"

    def __init__(self, model: onnx.ModelProto) -> None:
        proto = onnx.ModelProto()
        proto.CopyFrom(model)
        del proto.graph.value_info[:]  # stock dynamic exports carry wrong IRFFT shapes
        self.evaluator = ReferenceEvaluator(proto)
        self.input_names = graph_input_names(proto)
        self.output_names = [o.name for o in proto.graph.output]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(x) for x in self.evaluator.run(None, dict(zip(self.input_names, inputs)))]
