"""FFT convolution as mixed-radix Cooley-Tukey (Monarch) stages of dense DFT matrices, in real arithmetic.

Only MatMul, Mul, Reshape, Transpose, Slice, Concat and shape ops: no DFT, no complex tensors, no
control flow, so it builds on every TensorRT and runs on every ONNX Runtime provider.

With ``N = N1 * N2 * ... * NS``, time ``n = sum n_i * S_i`` (``S_i`` = product of the later digits)
and frequency ``k = sum k_i * T_i`` (``T_i`` = product of the earlier digits), stage ``i`` is one
DFT over digit ``n_i`` in which every twiddle ``w_N^(n_i * S_i * (k_1 T_1 + ... + k_(i-1) T_(i-1)))``
is folded into a per-batch matrix: no elementwise twiddle pass is left. Layout and arithmetic:

* channels last, ``(B, digits..., C)``, so every stage is one left MatMul whose columns are the
  channels (and later digits), and the real/imag parts ride as an axis next to the contracted digit
  (one MatMul per stage, no Slice/Concat between stages);
* the input is real and right-padded: stage 1 reads only ``n_1 < N1/2`` and, by Hermitian symmetry,
  forms only ``k_1 <= N1/2`` (about half the work of a complex transform in every stage);
* one broadcast Mul forms ``X * Re(H)`` and ``X * Im(H)`` and the first inverse MatMul combines
  them into ``X * H``; the inverse mirrors the stages and forms only the real output rows
  ``n < N/2``; 1/N is folded into the filter spectrum.

All constants are computed in float64 and rounded once, so the error stays at a few 1e-7 relative
to a float64 convolution even for a single position in a long graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np

from hyena_deploy.graph import NodeBuilder
from hyena_deploy.spectral import fft_size_for
from hyena_deploy.strategies.common import circular_filter, flatten_channels, signal_length, zero_pad_time

SINGLE_STAGE_MAX = 64  # up to this FFT size one dense stage is fastest


def radices(n: int) -> tuple[int, ...]:
    """Radices (N1, ..., NS) for FFT size ``n``: N1 = 32 or 64, the rest 4 to 16, non-increasing.

    A stage costs about ``N * N_i`` multiply-adds per column (half that for the pruned first one)
    plus two passes over memory (forward and inverse), so small radices win until the passes
    dominate; measured on CPU for N = 2K..128K (``benchmarks/crossover.py --radices``), these plans
    were the fastest or within 10% of it.
    """
    if n < 4 or n & (n - 1):
        raise ValueError(f"FFT size must be a power of two >= 4, got {n}")
    p = n.bit_length() - 1
    if n <= SINGLE_STAGE_MAX:
        return (n,)
    first = 5 if p < 12 else 6
    rest = p - first
    stages = max(1, round(rest / 3))
    exponents = [rest // stages + (i < rest % stages) for i in range(stages)]
    return tuple(1 << e for e in (first, *exponents))


@dataclass(frozen=True)
class MonarchPlan:
    """Constant tensors of one Monarch convolution (float64) and the shapes the graph reshapes to."""

    digits: tuple[int, ...]
    forward: list[np.ndarray]    # stage i: (batch_i, rows_i, cols_i); stage 1 without the batch axis
    inverse: list[np.ndarray]    # same order as forward (stage 1 first)
    spectrum: np.ndarray         # (batch_S, 2, 1, K_S * C): [Re; Im] of H/N at the last stage's bins
    batches: list[int]           # batch_i per stage (1 for stage 1)


def _dft(k_total: np.ndarray, n: np.ndarray, period: int) -> np.ndarray:
    """``exp(-2 pi i * n * k / period)`` as (..., K, Nin) for k_total (..., K) and n (Nin,), exact phases."""
    return np.exp(-2j * np.pi * ((k_total[..., :, None] * n) % period) / period)


def _rows(f: np.ndarray, real_input: bool, last: bool) -> np.ndarray:
    """Real matrix of the complex map ``f`` (..., K, Nin) on inputs (re/im, n), or on real inputs.

    Output rows are ordered (k, re/im), so that the next stage contracts (re/im, n) in one MatMul;
    the last stage orders them (re/im, k) for the product with the spectrum.
    """
    if real_input:
        re, im = f.real, f.imag
    else:
        re = np.concatenate([f.real, -f.imag], axis=-1)
        im = np.concatenate([f.imag, f.real], axis=-1)
    rows = np.stack([re, im], axis=-3 if last else -2)
    return rows.reshape(*f.shape[:-2], 2 * f.shape[-2], re.shape[-1])


def _inverse_rows(g: np.ndarray, last: bool) -> np.ndarray:
    """Real matrix of the complex map ``g`` (..., Nout, K) with rows (re/im, n).

    Inputs are ordered (k, re/im); for the last stage they are the spectrum products (q, re/im, k)
    with ``U = Z * Re(H)`` at q = 0 and ``V = Z * Im(H)`` at q = 1, so that
    ``Z * H = (U_re - V_im) + i (U_im + V_re)`` is summed inside this MatMul.
    """
    gr, gi = g.real, g.imag
    if last:
        re = np.stack([np.stack([gr, -gi], -2), np.stack([-gi, -gr], -2)], -3)   # (..., Nout, q, p, K)
        im = np.stack([np.stack([gi, gr], -2), np.stack([gr, -gi], -2)], -3)
    else:
        re, im = np.stack([gr, -gi], -1), np.stack([gi, gr], -1)                # (..., Nout, K, p)
    rows = np.stack([a.reshape(*g.shape[:-1], -1) for a in (re, im)], axis=-3)  # (..., re/im, Nout, inputs)
    return rows.reshape(*g.shape[:-2], 2 * g.shape[-2], -1)


def monarch_constants(h: np.ndarray, digits: tuple[int, ...]) -> MonarchPlan:
    """All constants for filters ``h`` (C, L) at FFT size ``prod(digits)`` (float64)."""
    n = prod(digits)
    n1, stages = digits[0], len(digits)
    k1 = np.arange(n1 // 2 + 1)
    first = _dft(k1, np.arange(n1 // 2), n1)                       # (K1, N1/2): real input, Hermitian half
    first_inverse = np.conj(first.T) * np.where((k1 == 0) | (k1 == n1 // 2), 1.0, 2.0)  # + the conjugate half
    forward = [_rows(first, real_input=True, last=stages == 1)]
    inverse = [_inverse_rows(first_inverse, last=stages == 1)[:n1 // 2]]  # real output: the Re rows only
    batches, before, stride = [1], k1, n1                          # before: k_1 T_1 + ... per batch
    for i, radix in enumerate(digits[1:], start=2):
        k_total = before[:, None] + stride * np.arange(radix)[None, :]          # (batch, K_i)
        f = _dft(k_total, np.arange(radix), stride * radix)                     # (batch, K_i, N_i)
        forward.append(_rows(f, real_input=False, last=i == stages))
        inverse.append(_inverse_rows(np.conj(np.swapaxes(f, -1, -2)), last=i == stages))
        batches.append(len(before))
        before, stride = k_total.reshape(-1), stride * radix
    bins = before.reshape(batches[-1] if stages > 1 else 1, -1)                # (batch_S, K_S)
    spec = np.fft.fft(h.astype(np.float64), n)[:, bins] / n                    # (C, batch_S, K_S)
    spectrum = np.stack([spec.real, spec.imag]).transpose(2, 0, 3, 1).reshape(len(bins), 2, 1, -1)
    return MonarchPlan(tuple(digits), forward, inverse, spectrum, batches)


def build(nb: NodeBuilder, signal: str, output: str, h: np.ndarray, digits: tuple[int, ...] | None = None,
          lead: int = 0) -> None:
    """Replace ``output = conv(signal, h)`` (lags ``-lead..``; 0 for causal) by a Monarch FFT convolution."""
    n = fft_size_for(signal_length(h, lead))
    digits = digits or radices(n)
    if prod(digits) != n:
        raise ValueError(f"radices {digits} do not multiply to the FFT size {n}")
    flat = flatten_channels(nb, signal, h)
    c = nb.const
    plan = monarch_constants(circular_filter(h.reshape(flat.channels, h.shape[-1]), lead, n), digits)
    x = nb.op("Transpose", [zero_pad_time(nb, flat, n // 2)], perm=[0, 2, 1])     # (B, N/2, C)
    x = nb.op("Reshape", [x, c([0, digits[0] // 2, -1])])
    x = nb.op("MatMul", [c(plan.forward[0], "dft_1"), x])
    for i, (radix, batch) in enumerate(zip(digits[1:], plan.batches[1:]), start=2):
        x = nb.op("Reshape", [x, c([0, batch, 2 * radix, -1])])
        x = nb.op("MatMul", [c(plan.forward[i - 1], f"dft_{i}"), x])
    batch_s, _, _, cols = plan.spectrum.shape
    x = nb.op("Reshape", [x, c([0, batch_s, 1, 2, cols])])
    x = nb.op("Mul", [x, c(plan.spectrum, "filter_spectrum")])                  # (B, batch_S, q, re/im, K_S*C)
    for i in range(len(digits), 1, -1):
        x = nb.op("Reshape", [x, c([0, plan.batches[i - 1], plan.inverse[i - 1].shape[-1], -1])])
        x = nb.op("MatMul", [c(plan.inverse[i - 1], f"idft_{i}"), x])
    x = nb.op("Reshape", [x, c([0, plan.inverse[0].shape[-1], -1])])
    x = nb.op("MatMul", [c(plan.inverse[0], "idft_1"), x])
    x = nb.op("Reshape", [x, c([0, n // 2, flat.channels])])
    x = nb.op("Slice", [x, c([0]), flat.length, c([1])])
    x = nb.op("Transpose", [x], perm=[0, 2, 1])
    nb.op("Reshape", [x, flat.shape], output=output)
