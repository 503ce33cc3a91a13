"""TensorRT engines (needs tensorrt and a CUDA GPU; imported only when used)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from hyena_deploy.runtime import EngineModel


class TrtRunner:
    """An engine built from ``graph``, with the graph's input and output names."""

    name = "tensorrt"

    def __init__(self, engine: Path, graph: onnx.ModelProto, plugin_libs: tuple[str, ...] | None = None) -> None:
        self.model = EngineModel(engine, graph, plugin_libs)
        self.input_names = self.model.input_names
        self.output_names = self.model.output_names

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self.model.run(inputs)
