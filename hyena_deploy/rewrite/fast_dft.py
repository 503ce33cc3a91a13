"""ONNX ``DFT`` for the reference evaluator with numpy's FFTs and fewer copies.

The probe runs each site's region several times at the model's full length (64k tokens, 128
channels); the stock reference kernel takes full complex FFTs of real signals and splits and
re-joins real and imaginary parts with concatenations. This kernel computes the same transforms
(scipy's pocketfft on every core) with ``rfft`` for real inputs and reads and writes the (re, im) pairs as complex
views, without copies.
"""

from __future__ import annotations

import numpy as np
from onnx.reference.ops.op_dft import DFT_20
from scipy import fft


class DFT(DFT_20):
    """Same semantics as opset 20's DFT: input (..., 1|2), ``axis`` an input, attributes inverse/onesided."""

    def _run(self, x: np.ndarray, dft_length: np.ndarray | None = None, axis: np.ndarray | int = -2,
             inverse: int = 0, onesided: int = 0) -> tuple[np.ndarray]:
        axis = int(axis) % x.ndim
        if dft_length is None:
            n = 2 * (x.shape[axis] - 1) if inverse and onesided else x.shape[axis]
        else:
            n = int(dft_length)
        real = x.shape[-1] == 1
        complex_type = np.result_type(x.dtype, np.complex64)
        z = x[..., 0] if real else np.ascontiguousarray(x).view(complex_type)[..., 0]
        if inverse:
            result = fft.irfft(z, n, axis=axis, workers=-1) if onesided else fft.ifft(z, n, axis=axis, workers=-1)
        elif real and onesided:
            result = fft.rfft(z, n, axis=axis, workers=-1)
        else:
            result = fft.fft(z, n, axis=axis, workers=-1)
            if onesided:
                result = np.take(result, np.arange(n // 2 + 1), axis=axis)
        if np.iscomplexobj(result):
            return (np.ascontiguousarray(result, dtype=complex_type)[..., None].view(x.dtype),)
        return (result[..., None].astype(x.dtype, copy=False),)
