"""Backends that run an exported graph: ONNX Runtime (here) and TensorRT engines (when installed)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import onnx
import onnxruntime as ort

from hyena_deploy import metadata, onnx_io
from hyena_deploy.errors import HyenaDeployError, first_line
from hyena_deploy.plugins import session_options_for
from hyena_deploy.precision import for_onnxruntime


class Backend(Protocol):
    """Anything that runs positional inputs and names its outputs."""

    input_names: list[str]
    output_names: list[str]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]: ...


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """ONNX Runtime CPU options for every session hyena-deploy creates (benchmarks included).

    ``threads`` intra-op threads (ORT's default when None), one inter-op thread, sequential
    execution, all graph optimizations, and no memory pattern: the pattern pre-plans one block per
    activation and cost 1.7x the peak memory at 16K tokens (738 vs 423 MB, 4x128 LM) for no speed.
    """
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_mem_pattern = False
    return options


class OrtModel:
    """An exported graph in ONNX Runtime (CPU), refusing inputs longer than its maximum length."""

    def __init__(self, model: onnx.ModelProto | Path, threads: int | None = None) -> None:
        proto = onnx.load(str(model)) if isinstance(model, Path) else model
        meta = metadata.read(proto)
        self.max_seq_len = int(meta["max_seq_len"]) if "max_seq_len" in meta else None
        options = session_options(threads)
        if meta.get("precision", "fp32") != "fp32":
            proto = for_onnxruntime(proto)  # no bf16 arithmetic on ORT CPU; low-precision I/O fed as fp32
        options, proto = session_options_for(proto, options)  # registers hyena_deploy::FFTConv if used
        try:
            if proto.ByteSize() < onnx_io.PROTOBUF_LIMIT:
                self.session = ort.InferenceSession(proto.SerializeToString(), options,
                                                    providers=["CPUExecutionProvider"])
            else:
                with onnx_io.staged_external(proto) as path:
                    self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types
            raise HyenaDeployError(f"ONNX Runtime cannot load the model: {first_line(exc)}") from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Outputs for positional inputs (batch on axis 0, sequence on axis 1)."""
        if len(inputs) != len(self.input_names):
            raise HyenaDeployError(f"the model takes {len(self.input_names)} inputs, got {len(inputs)}")
        for array in inputs:
            if self.max_seq_len is not None and array.ndim > 1 and array.shape[1] > self.max_seq_len:
                raise HyenaDeployError(f"sequence length {array.shape[1]} exceeds the model's maximum "
                                       f"{self.max_seq_len}")
            if array.ndim > 1 and array.shape[1] == 0:
                raise HyenaDeployError("sequence length 0: inputs need at least one position")
        try:
            return self.session.run(None, dict(zip(self.input_names, inputs)))
        except Exception as exc:  # ORT raises its own exception types
            raise HyenaDeployError(f"ONNX Runtime failed: {first_line(exc)}") from None


class EngineModel:
    """A TensorRT engine behind the Backend interface (input/output names from its ONNX graph)."""

    def __init__(self, engine: Path, graph: onnx.ModelProto, plugin_libs: tuple[str, ...] | None = None) -> None:
        from hyena_deploy.tensorrt.trt_api import TensorRTRunner

        self.runner = TensorRTRunner(engine, plugin_libs)
        inits = {i.name for i in graph.initializer}
        self.input_names = [i.name for i in graph.input if i.name not in inits]
        self.output_names = [o.name for o in graph.output]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        outputs = self.runner.run(dict(zip(self.input_names, inputs)))
        return [outputs[name] for name in self.output_names]
