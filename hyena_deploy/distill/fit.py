"""Fit real modal filters ``h_t = Re sum_n R_n p_n^t (+ d at t = 0)`` to sampled filters, in float64.

Three ways to find the poles (the residues always come from one real least-squares solve over the
filter's full length, so every method is judged by the same error):

* ``hankel``: Ho-Kalman / ERA realisation. The rows of the Hankel matrix ``H[i, j] = h[i + j]`` of
  an order-d modal filter span a d-dimensional shift-invariant space; the poles are the
  eigenvalues of the shift on the top-d left singular vectors (scipy SVD). The singular values
  are the Hankel spectrum the report plots. Long smooth filters have slow poles within ~1/L of 1
  that a few hundred contiguous lags cannot tell apart, so the same is done on decimated copies
  ``h[::s]`` (s = 4, 16, ... while they keep 2 HANKEL_ROWS samples), whose poles ``q = p^s`` give
  ``p = q^(1/s)`` (principal root). Candidates: each stride's poles and the strongest of their
  union; the one whose residues fit the whole filter best wins.
* ``aaa``: scipy's AAA rational fit of ``F(x) = sum_t h_t x^t`` on an M-point grid of the unit
  circle with M dividing L. There ``x^L = 1``, so an order-d modal filter gives an exactly
  rational ``F`` with poles ``1 / p_n`` (``p = 1 / z``), whatever the truncation at L.
* ``prony``: linear prediction ``h[t + d] = -sum_k a_k h[t + k]`` by least squares; the poles are
  the roots of the prediction polynomial.

A real filter has poles in conjugate pairs or on the real axis: each pair is kept once (upper
half plane) and ``Re`` restores the pair, so the real state dimension (the *order*) is
``#real + 2 #pairs``. Poles on or outside the unit circle are pulled inside (|p| <= MAX_RADIUS)
before the residues are solved, so every fitted filter is stable.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.optimize
from scipy.interpolate import AAA

from hyena_deploy.errors import HyenaDeployError

METHODS = ("hankel", "aaa", "prony")
MAX_RADIUS = 1.0 - 1e-9      # stability margin for pulled-in poles
PAIR_TOL = 1e-6              # relative distance of a pole to the conjugate of its partner
NEAR_REAL = 1e-6             # an unpaired pole with |Im p| below this (relative to |p|) is real
HANKEL_ROWS = 256            # Hankel rows (lags) at most, unless max_order needs more
HANKEL_COLUMNS = 2048        # Hankel columns kept for long filters
PAD_POLE = 0.5               # pole of a padding mode (its residue is 0)
AAA_POINTS = 4096            # largest unit-circle grid for AAA (a divisor of L)
STRIDE_STEP = 4              # decimation strides of the wide Hankel search: 1, 4, 16, ...
MAX_GAIN = 100.0             # sum of the modes' norms over the filter's: fp32 rounds a fit to ~6e-8 x this


@dataclass(frozen=True)
class ModalFit:
    """One channel's modal filter: upper-half-plane poles (one per conjugate pair), residues, direct term."""

    poles: np.ndarray      # complex128 (N,), Im >= 0
    residues: np.ndarray   # complex128 (N,)
    direct: float          # added at t = 0 only
    error: float           # relative L2 against the fitted samples over their full length
    gain: float = 1.0      # sum over modes of ||R_n p_n^t|| / ||h||: large when modes cancel each other

    @property
    def fp32_safe(self) -> bool:
        """Whether float32 arithmetic (the exported graphs) keeps the fit: no mode cancelling out another."""
        return self.gain <= MAX_GAIN

    @property
    def order(self) -> int:
        """Real state dimension: 1 per real pole, 2 per conjugate pair."""
        return int(np.sum(np.where(self.poles.imag == 0, 1, 2)))

    def impulse(self, length: int) -> np.ndarray:
        """The filter at t = 0 .. length-1 in float64."""
        h = modal_impulse(self.poles[None], self.residues[None], length)[0]
        h[0] += self.direct
        return h


def powers(poles: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Re, Im) of ``p^t`` for poles (...,) and times (T,) as (..., T), in real arithmetic.

    ``|p|^t = exp(t log|p|)`` and angle ``t arg p`` in float64: several times faster than complex
    ``np.power`` and as accurate (p = 0 gives 1 at t = 0 and 0 after).
    """
    poles = np.asarray(poles, np.complex128)[..., None]
    magnitude = np.exp(t * np.log(np.maximum(np.abs(poles), 1e-300)))
    angle = t * np.angle(poles)
    return magnitude * np.cos(angle), magnitude * np.sin(angle)


def modal_impulse(poles: np.ndarray, residues: np.ndarray, length: int) -> np.ndarray:
    """``Re sum_n R[c, n] p[c, n]^t`` for t < length, (C, N) -> (C, length), float64, one mode at a time."""
    t = np.arange(length, dtype=np.float64)
    out = np.zeros((poles.shape[0], length))
    for n in range(poles.shape[1]):
        re, im = powers(poles[:, n], t)
        out += residues[:, n, None].real * re - residues[:, n, None].imag * im
    return out


def _stable_upper(poles: np.ndarray) -> np.ndarray:
    """Real-filter pole set: real poles and one of each conjugate pair (Im > 0), all inside the unit circle.

    Fitted poles of a real filter come in pairs only up to rounding (AAA's are approximate): a pole
    is paired with the nearest conjugate of the other half plane; an unpaired pole within
    NEAR_REAL of the real axis becomes real, any other one stands for its pair.
    """
    poles = np.asarray(poles, np.complex128)
    poles = poles[np.isfinite(poles)]
    lower = list(poles[poles.imag < 0].conj())
    kept = []
    for p in poles[poles.imag >= 0]:
        if p.imag > 0 and lower:
            j = int(np.argmin(np.abs(np.asarray(lower) - p)))
            if abs(lower[j] - p) <= PAIR_TOL * abs(p):
                p = (p + lower.pop(j)) / 2
        kept.append(p)
    kept += lower
    out = np.asarray(kept, np.complex128)
    near_real = np.abs(out.imag) <= NEAR_REAL * np.abs(out)
    out[near_real] = out[near_real].real
    radius = np.abs(out)
    outside = radius > MAX_RADIUS
    out[outside] = out[outside] / radius[outside] * np.minimum(1 / radius[outside], MAX_RADIUS)
    return np.sort_complex(out)


def _basis(poles: np.ndarray, length: int, direct: bool) -> np.ndarray:
    """Real columns: p^t for a real pole, Re p^t and -Im p^t for a pair, then the direct delta."""
    re, im = powers(poles, np.arange(length, dtype=np.float64))
    columns = []
    for k, p in enumerate(poles):
        columns += [re[k]] if p.imag == 0 else [re[k], -im[k]]
    if direct:
        delta = np.zeros(length)
        delta[0] = 1.0
        columns.append(delta)
    return np.stack(columns, axis=1) if columns else np.zeros((length, 0))


def solve_residues(h: np.ndarray, poles: np.ndarray, direct: bool = False) -> ModalFit:
    """Least-squares residues (and direct term) for fixed poles over the whole filter ``h`` (L,)."""
    basis = _basis(poles, h.shape[-1], direct)
    coef = scipy.linalg.lstsq(basis, h, lapack_driver="gelsy")[0] if basis.shape[1] else np.zeros(0)
    residues, k = [], 0
    for p in poles:
        if p.imag == 0:
            residues.append(complex(coef[k]))
            k += 1
        else:
            residues.append(complex(coef[k], coef[k + 1]))
            k += 2
    d = float(coef[k]) if direct else 0.0
    norm = np.linalg.norm(h)
    error = float(np.linalg.norm(h - basis @ coef) / norm) if norm > 0 else 0.0
    gain = float(np.abs(coef) @ np.linalg.norm(basis, axis=0) / norm) if norm > 0 and coef.size else 0.0
    return ModalFit(poles, np.asarray(residues, np.complex128), d, error, gain)


def hankel_matrix(h: np.ndarray, rows: int) -> np.ndarray:
    """``H[i, j] = h[i + j]`` with ``rows`` rows and the first (at most HANKEL_COLUMNS) contiguous columns.

    Contiguous columns keep distinct poles distinguishable (strided ones alias poles with equal
    ``p^stride``); the residues are solved over the whole filter afterwards.
    """
    width = min(h.shape[-1] - rows + 1, HANKEL_COLUMNS)
    return h[np.arange(rows)[:, None] + np.arange(width)[None, :]]


def hankel_rows(length: int, max_order: int, wide: bool = True) -> int:
    """Hankel rows: up to HANKEL_ROWS when ``wide`` (more lags see slow modes of filters that are not
    exactly modal), else 4 max_order + 2 (twice what an exactly modal filter needs, so that the top
    singular vectors stay well conditioned at the highest order); never more than half the filter."""
    return max(2, min(length // 2, max(HANKEL_ROWS if wide else 0, 4 * max_order + 2)))


def _left_svd(matrix: np.ndarray, compute_u: bool = True) -> np.ndarray:
    """Left singular vectors (or the singular values) of a wide ``matrix``, by the SVD of its R factor.

    ``A^T = Q R`` gives ``A = R^T Q^T``: the same left singular vectors and singular values from a
    rows x rows SVD after one QR (several times faster than the SVD of a 256 x 2048 Hankel matrix).
    """
    if matrix.shape[0] < matrix.shape[1]:
        matrix = scipy.linalg.qr(matrix.T, mode="r")[0][:matrix.shape[0]].T
    if not compute_u:
        return scipy.linalg.svd(matrix, compute_uv=False)
    return scipy.linalg.svd(matrix, full_matrices=False)[0]


def hankel_singular_values(h: np.ndarray, max_order: int) -> np.ndarray:
    """Singular values of the filter's Hankel matrix (the decay shows how far it compresses)."""
    return _left_svd(hankel_matrix(h, hankel_rows(h.shape[-1], max_order)), compute_u=False)


def hankel_strides(length: int, wide: bool) -> list[int]:
    """Decimation strides 1, STRIDE_STEP, ... whose decimated filter still has 2 HANKEL_ROWS samples (1 only if not wide)."""
    strides = [1]
    while wide and length // (strides[-1] * STRIDE_STEP) >= 2 * HANKEL_ROWS:
        strides.append(strides[-1] * STRIDE_STEP)
    return strides


def _shift_poles(left: np.ndarray, order: int, stride: int) -> np.ndarray:
    """Poles of the shift on the top ``order`` left singular vectors, as poles of the undecimated filter."""
    u = left[:, :min(order, left.shape[1] - 1)]
    poles = scipy.linalg.eigvals(scipy.linalg.lstsq(u[:-1], u[1:])[0])
    if stride == 1:
        return poles
    with np.errstate(divide="ignore"):
        return np.exp(np.log(poles.astype(np.complex128)) / stride)


class _PoleFinder:
    """Candidate pole sets of one filter for any order; the expensive part computed once where possible."""

    def __init__(self, h: np.ndarray, method: str, max_order: int, wide: bool = True) -> None:
        if method not in METHODS:
            raise HyenaDeployError(f"unknown fitting method {method!r} (choose from {', '.join(METHODS)})")
        self.h, self.method, self.max_order, self.wide = h, method, max_order, wide
        if method == "hankel":
            self.lefts: dict[int, np.ndarray] = {}  # per stride, computed when first needed
        elif method == "aaa":
            length = h.shape[-1]
            points = max(m for m in range(1, min(length, AAA_POINTS) + 1) if length % m == 0)
            points = points if points > 2 * max_order + 2 else length
            folded = np.zeros(points)
            np.add.at(folded, np.arange(length) % points, h)
            self.x = np.exp(-2j * np.pi * np.arange(points) / points)
            self.y = np.fft.fft(folded)

    def _left(self, stride: int) -> np.ndarray:
        if stride not in self.lefts:
            g = self.h[::stride]
            self.lefts[stride] = _left_svd(hankel_matrix(g, hankel_rows(g.shape[-1], self.max_order, self.wide)))
        return self.lefts[stride]

    def candidates(self, order: int) -> Iterator[np.ndarray]:
        """Pole sets to try at ``order``, stride 1 first (each may hold more poles than the order allows)."""
        if self.method != "hankel":
            yield self._poles(order)
            return
        sets = []
        for stride in hankel_strides(self.h.shape[-1], self.wide):
            sets.append(_shift_poles(self._left(stride), order, stride))
            yield sets[-1]
        if len(sets) > 1:
            yield np.concatenate(sets)

    def _poles(self, order: int) -> np.ndarray:
        """Prony or AAA poles at ``order``."""
        if self.method == "prony":
            h = self.h
            order = min(order, h.shape[-1] // 2)
            lagged = np.stack([h[k:h.shape[-1] - order + k] for k in range(order)], axis=1)
            a = scipy.linalg.lstsq(lagged, -h[order:])[0]
            return np.roots(np.concatenate([[1.0], a[::-1]]))
        if not np.any(self.y):
            return np.zeros(0, np.complex128)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "failed to converge": judged by the error instead
            z = AAA(self.x, self.y, max_terms=order + 1, rtol=0.0).poles()
        return 1.0 / z[np.abs(z) > 0]


def _strongest(h: np.ndarray, poles: np.ndarray, order: int, direct: bool) -> np.ndarray:
    """At most ``order`` real state dimensions: the modes contributing most to the least-squares fit.

    AAA's poles pair only approximately, so an unpaired one counts 2 and the set can exceed the order.
    """
    if np.sum(np.where(poles.imag == 0, 1, 2)) <= order:
        return poles
    fit = solve_residues(h, poles, direct)
    re, im = powers(poles, np.arange(h.size, dtype=np.float64))
    energy = abs(fit.residues) * np.sqrt((re ** 2 + im ** 2).sum(axis=1))
    kept, used = [], 0
    for i in np.argsort(energy)[::-1]:
        size = 1 if poles[i].imag == 0 else 2
        if used + size <= order:
            kept.append(poles[i])
            used += size
    return np.sort_complex(np.asarray(kept, np.complex128))


def _refine(h: np.ndarray, fit: ModalFit, direct: bool, max_evals: int) -> ModalFit:
    """Variable projection: move the poles (radius < 1 by construction) to minimise the LS residual."""
    poles = fit.poles
    if not poles.size:
        return fit
    real = poles.imag == 0
    sign = np.where(real, np.sign(poles.real) + (poles.real == 0), 1.0)
    radius = np.clip(np.abs(poles), 1e-12, MAX_RADIUS)
    start = np.concatenate([np.log(-np.log(radius)), np.angle(poles)[~real]])

    def unpack(x: np.ndarray) -> np.ndarray:
        r = np.minimum(np.exp(-np.exp(x[:poles.size])), MAX_RADIUS)
        out = (sign * r).astype(np.complex128)
        out[~real] = r[~real] * np.exp(1j * x[poles.size:])
        return out

    def residual(x: np.ndarray) -> np.ndarray:
        basis = _basis(unpack(x), h.shape[-1], direct)
        return h - basis @ scipy.linalg.lstsq(basis, h)[0]

    result = scipy.optimize.least_squares(residual, start, max_nfev=max_evals, x_scale="jac")
    refined = solve_residues(h, _stable_upper(unpack(result.x)), direct)
    return refined if _rank(refined) < _rank(fit) else fit


def _rank(fit: ModalFit) -> tuple[bool, float]:
    """Sort key: fits float32 keeps first, then by error."""
    return not fit.fp32_safe, fit.error


def fit_filter(h: np.ndarray, tol: float, max_order: int, method: str = "hankel", direct: bool = False,
               refine: bool = False, wide: bool = True) -> ModalFit:
    """The lowest-order modal fit of ``h`` (L,) with relative L2 error <= ``tol``, searched up to ``max_order``.

    Orders are tried by doubling and then bisection between the last failing and the first passing
    order (the error falls with the order for all three methods). A fit meets ``tol`` only if it is
    also :attr:`ModalFit.fp32_safe` (modes cancelling each other are lost in float32); when nothing
    meets it the best fit found is returned, and the caller sees its error. ``wide=False`` keeps the Hankel
    matrix as small as an exactly modal filter allows (fast; for filters expected to be modal).
    """
    h = np.asarray(h, np.float64)
    if h.ndim != 1 or h.size < 2:
        raise HyenaDeployError(f"a filter to fit must have at least 2 samples, got shape {h.shape}")
    if max_order < 1:
        raise HyenaDeployError(f"--max-order must be >= 1, got {max_order}")
    finder = _PoleFinder(h[1:] if direct else h, method, max_order, wide)  # a direct term breaks shift invariance at t = 0
    tried: dict[int, ModalFit] = {}
    meets = lambda fit: fit.error <= tol and fit.fp32_safe  # noqa: E731

    def attempt(order: int) -> ModalFit:
        if order not in tried:
            fit = None
            for poles in finder.candidates(order):  # the first one meeting ``tol``, else the best
                candidate = solve_residues(h, _strongest(h, _stable_upper(poles), order, direct), direct)
                fit = candidate if fit is None or _rank(candidate) < _rank(fit) else fit
                if meets(fit):
                    break
            if refine and not meets(fit):
                fit = _refine(h, fit, direct, max_evals=20 * (order + 1))
            tried[order] = fit
        return tried[order]

    if not np.any(h):
        return ModalFit(np.zeros(0, np.complex128), np.zeros(0, np.complex128), 0.0, 0.0)
    low, high = 0, 1
    while not meets(attempt(high)) and high < max_order:
        low, high = high, min(2 * high, max_order)
    if meets(attempt(high)):
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if meets(attempt(middle)) else (middle, high)
        passing = [f for f in tried.values() if meets(f)]
        return min(passing, key=lambda f: (f.order, f.error))
    return min(tried.values(), key=_rank)


def fit_filters(h: np.ndarray, tol: float, max_order: int, method: str = "hankel", direct: bool = False,
                refine: bool = False, progress: Callable[[], None] | None = None) -> list[ModalFit]:
    """:func:`fit_filter` for every channel of ``h`` (C, L); ``progress()`` is called after each channel."""
    fits = []
    for channel in np.asarray(h, np.float64).reshape(-1, h.shape[-1]):
        fits.append(fit_filter(channel, tol, max_order, method, direct, refine))
        if progress is not None:
            progress()
    return fits


def stack_fits(fits: list[ModalFit]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(poles, residues) as (C, N) complex arrays, zero-padded to the widest channel, and direct terms (C,).

    A padded mode has p = PAD_POLE and R = 0: it adds nothing to the filter, and unlike p = 0 its
    powers and logarithm are finite everywhere (complex ``0 ** 0`` is NaN in torch).
    """
    width = max((f.poles.size for f in fits), default=0)
    poles = np.full((len(fits), width), PAD_POLE, np.complex128)
    residues = np.zeros_like(poles)
    for c, fit in enumerate(fits):
        poles[c, :fit.poles.size] = fit.poles
        residues[c, :fit.residues.size] = fit.residues
    return poles, residues, np.array([f.direct for f in fits])
