"""ONNX Runtime: the runtime of the ``onnxruntime`` targets, and the candidate of every export's parity check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from hyena_deploy.runtime import OrtModel
from hyena_deploy.runtime.sessions import PROVIDERS


class OrtRunner:
    """An ONNX graph (proto or file) in an ONNX Runtime session; ``extra_outputs`` marks intermediate tensors as
    graph outputs too (Polygraphy's per-layer comparison), appended after the graph's own outputs."""

    name = "onnxruntime"

    def __init__(self, model: onnx.ModelProto | Path, threads: int | None = None,
                 extra_outputs: tuple[str, ...] = (), providers: tuple[str, ...] = PROVIDERS) -> None:
        if extra_outputs:
            proto = onnx.load(str(model)) if isinstance(model, Path) else model
            model = with_outputs(proto, extra_outputs)
        self.model = OrtModel(model, threads, providers)
        self.input_names = self.model.input_names
        self.output_names = self.model.output_names

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self.model.run(inputs)


def with_outputs(model: onnx.ModelProto, names: tuple[str, ...]) -> onnx.ModelProto:
    """A copy of ``model`` that also outputs the tensors ``names`` (types left to the runtime to infer)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    have = {o.name for o in out.graph.output}
    out.graph.output.extend(onnx.ValueInfoProto(name=name) for name in names if name not in have)
    return out
