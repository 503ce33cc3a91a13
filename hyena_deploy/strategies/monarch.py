"""FFT convolution as dense DFT matrices (Cooley-Tukey / Monarch, N = N1 * N2) in real arithmetic.

Only MatMul, Mul, Add, Sub, Slice, Concat, Reshape and shape ops: no DFT, no complex tensors, no
control flow, so it builds on every TensorRT and runs on every ONNX Runtime provider.

Index maps: time ``n = N2*n1 + n2``, frequency ``k = k1 + N1*k2``. The forward transform is
``F_N1`` over n1, a twiddle ``w_N^(n2*k1)``, then ``F_N2`` over n2; the spectrum stays in (k1, k2)
order, the filter spectrum is stored permuted to match, and the inverse walks the same steps back,
so no transpose is ever needed. Two prunings are exact because the convolution is causal and
right-padded: the padded half of the input (n1 >= N1/2) is never multiplied, and only the first
half of the output rows (n1 < N1/2, i.e. n < N/2 >= L) is formed, real part only.
"""

from __future__ import annotations

import numpy as np

from hyena_deploy.graph import NodeBuilder
from hyena_deploy.spectral import fft_size_for
from hyena_deploy.strategies.common import flatten_channels, restore, zero_pad_time


def split_factors(n: int) -> tuple[int, int]:
    """N1 (outer, even) and N2 (inner) with N1 * N2 = n, N1 >= N2, both powers of two."""
    p = n.bit_length() - 1
    n2 = 1 << (p // 2)
    return n // n2, n2


def _complex_matrix(c: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Real (2n, 2m) matrix acting on [re | im] rows for the complex matrix ``c + i s`` (right-multiply)."""
    return np.block([[c, s], [-s, c]])


def monarch_constants(h: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """All constant tensors of the decomposition for filters ``h`` (C, L) at FFT size ``n``."""
    n1, n2 = split_factors(n)
    k1 = np.arange(n1)[:, None]
    n1_half = np.arange(n1 // 2)[None, :]
    angle1 = 2 * np.pi * k1 * n1_half / n1                      # (N1, N1/2)
    first = np.concatenate([np.cos(angle1), -np.sin(angle1)])   # rows: [Re; Im] of F_N1 (pruned cols)
    tw = 2 * np.pi * np.arange(n1)[:, None] * np.arange(n2)[None, :] / n
    tw_re, tw_im = np.cos(tw), -np.sin(tw)                      # w_N^(k1*n2)
    angle2 = 2 * np.pi * np.outer(np.arange(n2), np.arange(n2)) / n2
    # Right-multiplying [re | im] by this gives the forward F_N2 (w = exp(-i*angle)).
    forward2 = _complex_matrix(np.cos(angle2), -np.sin(angle2))
    inverse2 = _complex_matrix(np.cos(angle2), np.sin(angle2))
    angle_out = 2 * np.pi * np.arange(n1 // 2)[:, None] * np.arange(n1)[None, :] / n1
    last = np.concatenate([np.cos(angle_out), -np.sin(angle_out)], axis=1)  # Re(conj F) on [Hr; Hi]
    spectrum = np.fft.fft(h, n) / n                                 # 1/N folded into the filter
    spectrum = spectrum.reshape(*h.shape[:-1], n2, n1).swapaxes(-1, -2)  # (C, k1, k2)
    return {"first": first, "tw_re": tw_re, "tw_im": tw_im, "forward2": forward2,
            "inverse2": inverse2, "last": last, "k_re": spectrum.real, "k_im": spectrum.imag}


def build(nb: NodeBuilder, signal: str, output: str, h: np.ndarray) -> None:
    """Replace ``output = causal_conv(signal, h)`` by a Monarch FFT convolution."""
    n = fft_size_for(h.shape[-1])
    n1, n2 = split_factors(n)
    flat = flatten_channels(nb, signal, h)
    c = nb.const
    consts = monarch_constants(h.reshape(flat.channels, h.shape[-1]), n)
    x = zero_pad_time(nb, flat, n // 2)
    x = nb.op("Reshape", [x, c([0, flat.channels, n1 // 2, n2])])
    a = nb.op("MatMul", [c(consts["first"], "dft_n1"), x])                # (B, C, 2N1, N2)
    tw_re, tw_im = c(consts["tw_re"], "twiddle_re"), c(consts["tw_im"], "twiddle_im")
    a_re = nb.op("Slice", [a, c([0]), c([n1]), c([-2])])
    a_im = nb.op("Slice", [a, c([n1]), c([2 * n1]), c([-2])])
    b_re = nb.op("Sub", [nb.op("Mul", [a_re, tw_re]), nb.op("Mul", [a_im, tw_im])])
    b_im = nb.op("Add", [nb.op("Mul", [a_re, tw_im]), nb.op("Mul", [a_im, tw_re])])
    d = nb.op("MatMul", [nb.op("Concat", [b_re, b_im], axis=-1), c(consts["forward2"], "dft_n2")])
    d_re = nb.op("Slice", [d, c([0]), c([n2]), c([-1])])
    d_im = nb.op("Slice", [d, c([n2]), c([2 * n2]), c([-1])])
    k_re, k_im = c(consts["k_re"], "filter_spectrum_re"), c(consts["k_im"], "filter_spectrum_im")
    e_re = nb.op("Sub", [nb.op("Mul", [d_re, k_re]), nb.op("Mul", [d_im, k_im])])
    e_im = nb.op("Add", [nb.op("Mul", [d_re, k_im]), nb.op("Mul", [d_im, k_re])])
    g = nb.op("MatMul", [nb.op("Concat", [e_re, e_im], axis=-1), c(consts["inverse2"], "idft_n2")])
    g_re = nb.op("Slice", [g, c([0]), c([n2]), c([-1])])
    g_im = nb.op("Slice", [g, c([n2]), c([2 * n2]), c([-1])])
    h_re = nb.op("Add", [nb.op("Mul", [g_re, tw_re]), nb.op("Mul", [g_im, tw_im])])
    h_im = nb.op("Sub", [nb.op("Mul", [g_im, tw_re]), nb.op("Mul", [g_re, tw_im])])
    stacked = nb.op("Concat", [h_re, h_im], axis=-2)
    y = nb.op("MatMul", [c(consts["last"], "idft_n1"), stacked])          # (B, C, N1/2, N2)
    y = nb.op("Reshape", [y, c([0, flat.channels, n // 2])])
    restore(nb, y, flat, output)
