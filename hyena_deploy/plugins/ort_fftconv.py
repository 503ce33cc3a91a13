"""ONNX Runtime implementation of ``hyena_deploy::FFTConv``: an onnxruntime-extensions PyOp.

The PyOp is registered under its own domain (``op_type="hyena_deploy::FFTConv"``), so graphs run
unchanged, computed with numpy's FFT in float64 on the CPU (a reference, not fast). PyOps cannot have
optional inputs, so :func:`session_options_for` hands back a copy of the model in which every absent
optional input is an empty (0,) float32 initializer, which the kernel reads as "absent". float32 only.

Usage, wherever a session is created::

    options, model = session_options_for(model, options)
    session = ort.InferenceSession(model.SerializeToString(), options, providers=...)
"""

from __future__ import annotations

import logging
import weakref

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime_extensions import PyCustomOpDef, get_library_path, onnx_op

from hyena_deploy.plugins.schema import DOMAIN, INPUTS, OP_TYPE

ABSENT = "hyena_deploy/absent_optional_input"
_LOG = logging.getLogger(__name__)
_REGISTERED: weakref.WeakSet[ort.SessionOptions] = weakref.WeakSet()


def fftconv_numpy(signal: np.ndarray, spectrum: np.ndarray, skip: np.ndarray | None,
                  pregate: np.ndarray | None, postgate: np.ndarray | None, fft_size: int) -> np.ndarray:
    """The op in float64 (absent inputs: None or empty arrays); see :mod:`hyena_deploy.plugins.schema`."""
    n = int(fft_size)
    batch, channels, length = signal.shape
    if spectrum.shape != (channels, n // 2 + 1, 2):
        raise ValueError(f"FFTConv: spectrum {spectrum.shape} != {(channels, n // 2 + 1, 2)}")
    if length > n // 2:
        raise ValueError(f"FFTConv: length {length} > fft_size/2 = {n // 2}")
    x = signal.astype(np.float64)
    if pregate is not None and pregate.size:
        x = x * pregate
    k = spectrum[..., 0].astype(np.float64) + 1j * spectrum[..., 1]
    y = np.fft.irfft(np.fft.rfft(x, n) * k, n, norm="forward")[..., :length]  # 1/N is in k
    if skip is not None and skip.size:
        y = y + skip.astype(np.float64)[:, None] * x
    if postgate is not None and postgate.size:
        y = y * postgate
    return y


@onnx_op(op_type=f"{DOMAIN}::{OP_TYPE}", inputs=[PyCustomOpDef.dt_float] * len(INPUTS),
         outputs=[PyCustomOpDef.dt_float], attrs={"fft_size": PyCustomOpDef.dt_int64})
def _fftconv_pyop(signal, spectrum, skip, pregate, postgate, fft_size):
    # An exception escaping a PyOp aborts the process (std::terminate in onnxruntime-extensions), so
    # errors are logged and answered with an empty output, which the graph's restoring Reshape rejects.
    try:
        return fftconv_numpy(signal, spectrum, skip, pregate, postgate, fft_size).astype(np.float32)
    except Exception as error:  # noqa: BLE001
        _LOG.error("%s", error)
        return np.zeros(0, np.float32)


def _is_fftconv(node: onnx.NodeProto) -> bool:
    return node.op_type == OP_TYPE and node.domain == DOMAIN


def with_explicit_optional_inputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """Copy of ``model`` whose FFTConv nodes name all five inputs, absent ones as :data:`ABSENT`."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes = [n for n in out.graph.node if _is_fftconv(n)]
    for node in nodes:
        names = [*node.input, *[""] * (len(INPUTS) - len(node.input))]
        del node.input[:]
        node.input.extend(name or ABSENT for name in names)
    if ABSENT in {name for n in nodes for name in n.input}:
        out.graph.initializer.append(onnx.numpy_helper.from_array(np.zeros(0, np.float32), ABSENT))
    return out


def session_options_for(model: onnx.ModelProto, options: ort.SessionOptions | None = None,
                        ) -> tuple[ort.SessionOptions, onnx.ModelProto]:
    """Session options and the model to run: unchanged without FFTConv nodes; otherwise the PyOp
    library registered on ``options`` (once per options object) and the prepared copy of the model."""
    options = ort.SessionOptions() if options is None else options
    if not any(_is_fftconv(n) for n in model.graph.node):
        return options, model
    if options not in _REGISTERED:
        options.register_custom_ops_library(get_library_path())
        _REGISTERED.add(options)
    return options, with_explicit_optional_inputs(model)
