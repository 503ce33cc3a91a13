"""The TensorRT FFTConv plugin's algorithm in PyTorch, step for step (CPU or CUDA tensors).

Each step names the CUDA kernel or cuFFT call of ``plugins/tensorrt_fftconv`` it mirrors; the math
runs in float32 whatever the I/O type, and the result is cast back to the signal's dtype.
"""

from __future__ import annotations

import torch


def fftconv_plugin_reference(u: torch.Tensor, spectrum: torch.Tensor, skip: torch.Tensor | None = None,
                             pregate: torch.Tensor | None = None, postgate: torch.Tensor | None = None,
                             *, fft_size: int) -> torch.Tensor:
    """``postgate * (causal_conv(x, h) + skip[c] * x)``, ``x = pregate * u``, for u (B, C, L) and
    ``spectrum`` (C, N/2+1, 2) = rfft(h, N) / N; see :mod:`hyena_deploy.plugins.schema`."""
    n = fft_size
    batch, channels, length = u.shape
    if spectrum.shape != (channels, n // 2 + 1, 2) or length > n // 2:
        raise ValueError(f"FFTConv: u {tuple(u.shape)}, spectrum {tuple(spectrum.shape)}, fft_size {n}")
    # launchFFTConvPad: x = pregate * u in float32, zero-padded to N (rows of N + 2 floats there).
    x = u.float() if pregate is None else u.float() * pregate.float()
    padded = torch.nn.functional.pad(x, (0, n - length)).reshape(batch * channels, n)
    # cufftExecR2C, unnormalized.
    xf = torch.fft.rfft(padded, n=n)
    # launchFFTConvMultiply: complex product with the channel's spectrum, broadcast over batch.
    k = torch.view_as_complex(spectrum.float().contiguous())
    xf = (xf.reshape(batch, channels, -1) * k).reshape(batch * channels, -1)
    # cufftExecC2R, unnormalized: the 1/N is already in the spectrum.
    y = torch.fft.irfft(xf, n=n, norm="forward").reshape(batch, channels, n)
    # launchFFTConvFinish: crop to L, skip, post-gate, cast.
    y = y[..., :length]
    if skip is not None:
        y = y + skip.float()[:, None] * x
    if postgate is not None:
        y = y * postgate.float()
    return y.to(u.dtype)
