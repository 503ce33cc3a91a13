"""Float64 numpy reference for causal convolution and the FFT size rule."""

from __future__ import annotations

import numpy as np


def next_pow2(n: int) -> int:
    """Smallest power of two >= n (and >= 1)."""
    return 1 << max(0, (int(n) - 1).bit_length())


def fft_size_for(max_len: int) -> int:
    """Power-of-two FFT size that makes a causal convolution of length ``max_len`` exact."""
    return max(next_pow2(2 * max_len), 4)


def causal_conv_reference(signal: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``y[..., t] = sum_s h[..., s] signal[..., t - s]`` in float64, broadcasting h over leading dims."""
    length = signal.shape[-1]
    n = fft_size_for(length)
    spec = np.fft.rfft(signal.astype(np.float64), n) * np.fft.rfft(h[..., :length].astype(np.float64), n)
    return np.fft.irfft(spec, n)[..., :length]


def support(h: np.ndarray) -> int:
    """Number of taps up to the last one that is non-zero in any channel (at least 1)."""
    nonzero = np.flatnonzero(h.reshape(-1, h.shape[-1]).any(axis=0))
    return int(nonzero[-1]) + 1 if nonzero.size else 1
