"""FFT convolution with ONNX DFT nodes at a power-of-two size (ONNX Runtime CPU, TensorRT >= 11.2)."""

from __future__ import annotations

import numpy as np

from hyena_deploy.graph import NodeBuilder
from hyena_deploy.spectral import fft_size_for
from hyena_deploy.strategies.common import circular_filter, flatten_channels, restore, signal_length, zero_pad_time


def build(nb: NodeBuilder, signal: str, output: str, h: np.ndarray, lead: int = 0) -> None:
    """Replace ``output = conv(signal, h)`` (lags ``-lead..``) by rfft -> complex product -> irfft."""
    n = fft_size_for(signal_length(h, lead))
    flat = flatten_channels(nb, signal, h)
    c = nb.const
    spectrum = np.fft.rfft(circular_filter(h.reshape(flat.channels, h.shape[-1]), lead, n), n)  # inverse DFT applies 1/N
    x = nb.op("Unsqueeze", [zero_pad_time(nb, flat, n), c([-1])])
    axis = c(np.array(-2, np.int64))
    xf = nb.op("DFT", [x, "", axis], onesided=1)                      # (B, C, N/2+1, 2)
    x_re = nb.op("Slice", [xf, c([0]), c([1]), c([-1])])
    x_im = nb.op("Slice", [xf, c([1]), c([2]), c([-1])])
    k_re = c(spectrum.real[..., None], "filter_spectrum_re")
    k_im = c(spectrum.imag[..., None], "filter_spectrum_im")
    y_re = nb.op("Sub", [nb.op("Mul", [x_re, k_re]), nb.op("Mul", [x_im, k_im])])
    y_im = nb.op("Add", [nb.op("Mul", [x_re, k_im]), nb.op("Mul", [x_im, k_re])])
    yf = nb.op("Concat", [y_re, y_im], axis=-1)
    y = nb.op("DFT", [yf, c(np.array(n, np.int64)), axis], inverse=1, onesided=1)        # (B, C, N, 1)
    y = nb.op("Slice", [y, c([0]), c([1]), c([-1])])
    y = nb.op("Squeeze", [y, c([-1])])
    restore(nb, y, flat, output)
