"""PyTorch -> ONNX with the dynamo exporter (the only one that exports torch.fft)."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

import numpy as np
import onnx
import torch

from hyena_deploy.errors import HyenaDeployError, first_line
from hyena_deploy.loaded import LoadedModel

IR_VERSION = 10  # what torch writes; onnxruntime >= 1.20 reads it (onnx 1.23 would write 14)
MIN_OPSET = 20   # DFT with the axis as an input and IRFFT semantics


def trace(loaded: LoadedModel, seq_len: int, batch: int | None, opset: int) -> onnx.ModelProto:
    """Export at a static sequence length; batch is dynamic unless ``batch`` is given.

    Exporter chatter is captured and only shown (its last line) when the export fails. The
    exporter's ``value_info`` is dropped: for dynamic shapes it is known to be wrong around IRFFT.
    """
    if opset < MIN_OPSET:
        raise HyenaDeployError(f"--opset {opset} is too old: FFT export needs opset >= {MIN_OPSET}")
    example = loaded.make_inputs(batch or 2, seq_len, np.random.default_rng(0))
    dynamic_shapes = None
    if batch is None:
        dim = torch.export.Dim("batch", min=1, max=4096)
        dynamic_shapes = tuple({0: dim} for _ in example)
    log = io.StringIO()
    torch_log = logging.getLogger("torch")
    level = torch_log.level
    try:
        torch_log.setLevel(logging.ERROR)
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(loaded.module, example, dynamo=True, opset_version=opset,
                                        dynamic_shapes=dynamic_shapes, output_names=loaded.output_names,
                                        optimize=True, verbose=False, report=False)
    except Exception as exc:  # the exporter raises many types; the user needs the first line
        raise HyenaDeployError(f"torch.onnx could not export the model: {first_line(exc)}") from None
    finally:
        torch_log.setLevel(level)
    model = program.model_proto
    del model.graph.value_info[:]
    model.ir_version = IR_VERSION
    return model
