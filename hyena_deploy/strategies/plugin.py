"""FFT convolution as one fused custom node ``hyena_deploy::FFTConv`` (TensorRT plugin, ORT PyOp).

The graph model must import opset ``(hyena_deploy.plugins.schema.DOMAIN, VERSION)``; TensorRT needs
``libhyena_fftconv_plugin.so`` (``plugins/tensorrt_fftconv``), ONNX Runtime
:func:`hyena_deploy.plugins.ort_fftconv.session_options_for`.
"""

from __future__ import annotations

import numpy as np

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.graph import NodeBuilder
from hyena_deploy.plugins.schema import DOMAIN, OP_TYPE, PLUGIN_NAMESPACE, PLUGIN_VERSION, register_schema
from hyena_deploy.spectral import fft_size_for
from hyena_deploy.strategies.common import flatten_channels, restore


def filter_spectrum(h: np.ndarray, n: int) -> np.ndarray:
    """(C, N/2+1, 2) float32 real/imag of ``rfft(h, N) / N`` for filters h (C, L_max)."""
    spectrum = np.fft.rfft(h.astype(np.float64), n) / n
    return np.stack([spectrum.real, spectrum.imag], axis=-1).astype(np.float32)


def add_fftconv(nb: NodeBuilder, x: str, spectrum: str, fft_size: int, skip: str = "",
                pregate: str = "", postgate: str = "") -> str:
    """Append one FFTConv node on (B, C, L) ``x``; absent optional inputs are "" (trailing ones dropped)."""
    inputs = [x, spectrum, skip, pregate, postgate]
    while not inputs[-1]:
        inputs.pop()
    register_schema()
    node = nb.op(OP_TYPE, inputs, fft_size=fft_size, plugin_namespace=PLUGIN_NAMESPACE,
                 plugin_version=PLUGIN_VERSION)
    nb.nodes[-1].domain = DOMAIN
    return node


def build(nb: NodeBuilder, signal: str, output: str, h: np.ndarray, lead: int = 0) -> None:
    """Replace ``output = causal_conv(signal, h)`` by a single FFTConv node (causal filters only)."""
    if lead:
        raise HyenaDeployError(f"the FFTConv plugin takes causal filters only (this one has {lead} negative lags): "
                               "use --fftconv monarch, dft or direct")
    n = fft_size_for(h.shape[-1])
    flat = flatten_channels(nb, signal, h)
    spectrum = nb.const(filter_spectrum(h.reshape(flat.channels, h.shape[-1]), n), "filter_spectrum")
    restore(nb, add_fftconv(nb, flat.x, spectrum, n), flat, output)
