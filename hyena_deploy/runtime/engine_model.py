"""A TensorRT engine behind the Backend interface; TensorRT is imported only when an engine loads."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx


class EngineModel:
    """A TensorRT engine run positionally (needs the ``gpu`` extra: tensorrt and a CUDA GPU).

    Input/output order is the ONNX graph's when ``onnx_model`` (the graph it was built from) is given (so feeds line up with an
    :class:`OrtModel` of the same graph), else the engine's own I/O tensor order.
    """

    def __init__(self, engine: str | os.PathLike, onnx_model: onnx.ModelProto | None = None,
                 plugin_libs: tuple[str, ...] | None = None) -> None:
        from hyena_deploy.tensorrt.trt_api import TensorRTRunner

        self.runner = TensorRTRunner(engine, plugin_libs)
        if onnx_model is None:
            self.input_names, self.output_names = list(self.runner.inputs), list(self.runner.outputs)
        else:
            inits = {i.name for i in onnx_model.graph.initializer}
            self.input_names = [i.name for i in onnx_model.graph.input if i.name not in inits]
            self.output_names = [o.name for o in onnx_model.graph.output]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        outputs = self.runner.run(dict(zip(self.input_names, inputs)))
        return [outputs[name] for name in self.output_names]
