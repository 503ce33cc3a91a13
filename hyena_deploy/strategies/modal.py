"""``--fftconv modal``: a modal filter's convolution as a chunked scan, O(L * (T + 4N)) per channel.

For ``h_t = Re sum_n R_n p_n^t`` (N modes per channel, one per conjugate pair) and chunks of T samples:

* inside each chunk, a T x T lower-triangular Toeplitz MatMul with ``h[:T]``;
* each chunk's own modal state ``z_k = sum_j p^(T-1-j) u_(k,j)`` (one MatMul per real/imag part);
* the state across chunks ``s_k = z_k + p^T s_(k-1)`` over a fixed number of chunk slots: inside
  groups of 16 slots one MatMul (a 2G x 2G real matrix per mode), across groups a doubling scan
  (``log2`` of the group count steps of Slice/Pad/Mul/Add), no Loop or Scan;
* chunk k+1 reads ``Re sum_n R_n p_n^(t+1) s_(k,n)`` through one more MatMul.

Only MatMul, Mul, Add, Sub, Reshape, Transpose, Slice, Pad, Concat, Mod and shape ops (Shape,
ConstantOfShape); no complex tensors.
The strategy sees only the measured filter ``h`` (C, L): it fits the modal form itself (Hankel
realisation in float64, the same fit as ``hyena-deploy distill``) and refuses, with a one-line
reason, a filter that is not modal to fp32 accuracy, so ``auto`` can choose something else.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from math import ceil, log2

import numpy as np
import onnx

from hyena_deploy.distill.fit import fit_filter, modal_impulse, stack_fits
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.graph import NodeBuilder
from hyena_deploy.spectral import next_pow2
from hyena_deploy.strategies.common import flatten_channels, restore

MODAL_TOL = 1e-6     # filter relative L2 a fit must reach to count as modal (fp32 filters carry ~1e-7)
MAX_MODES = 32       # complex modes per channel (real state dimension up to 64)
CHUNK_SIZES = (16, 32, 64, 128, 256)
SCAN_WEIGHT = 50.0
GROUP = 16           # chunk slots whose state prefix is one MatMul


class NotModal(HyenaDeployError):
    """The filter has no modal form of at most MAX_MODES modes within MODAL_TOL."""


@dataclass(frozen=True)
class ModalPlan:
    """The fitted modal form of every channel (float64), ready to become constants."""

    poles: np.ndarray      # (C, N) complex, Im >= 0 (padding modes have R = 0)
    residues: np.ndarray   # (C, N) complex
    direct: np.ndarray     # (C,)
    length: int            # maximum length the graph serves
    error: float           # worst channel's filter relative L2

    @property
    def modes(self) -> int:
        return self.poles.shape[1]

    def impulse(self, length: int) -> np.ndarray:
        h = modal_impulse(self.poles, self.residues, length)
        h[:, 0] += self.direct
        return h


def fit_modal(h: np.ndarray) -> ModalPlan:
    """The modal form of filters ``h`` (..., L), or :class:`NotModal` naming the first channel without one.

    Results are kept per filter (by digest), so ``auto`` deciding and the builder building fit once.
    """
    h = np.ascontiguousarray(h, np.float64).reshape(-1, h.shape[-1])
    key = hashlib.sha256(h.tobytes() + str(h.shape).encode()).hexdigest()
    if key not in _FITS:
        if len(_FITS) >= _KEPT_FITS:
            _FITS.pop(next(iter(_FITS)))
        _FITS[key] = fit_plan(h)
    if isinstance(_FITS[key], NotModal):
        raise _FITS[key]
    return _FITS[key]


_FITS: dict[str, ModalPlan | NotModal] = {}
_KEPT_FITS = 64


def fit_plan(h: np.ndarray, tol: float = MODAL_TOL, max_modes: int = MAX_MODES) -> ModalPlan | NotModal:
    """Every channel of ``h`` (C, L) fitted within ``tol`` with at most ``max_modes`` modes, or why not (uncached)."""
    fits = []
    for c, channel in enumerate(h):
        fit = fit_filter(channel, tol, 2 * max_modes, "hankel", direct=True, wide=False)
        if fit.error > tol:
            return NotModal(f"--fftconv modal: filter channel {c} is not modal to fp32 accuracy (best relative "
                            f"L2 {fit.error:.1e} > {tol:g} with up to {max_modes} modes); choose another "
                            "--fftconv")
        fits.append(fit)
    poles, residues, direct = stack_fits(fits)
    return ModalPlan(poles, residues, direct, h.shape[-1], max(f.error for f in fits))


def is_modal(h: np.ndarray) -> bool:
    """True when ``h`` has a modal form the strategy can build."""
    try:
        fit_modal(h)
    except NotModal:
        return False
    return True


def prefers(h: np.ndarray, rules: list[list[int]]) -> bool:
    """Whether measured ``rules`` ``[[min_length, max_modes], ...]`` (ascending) pick modal for ``h``.

    Not beyond twice the longest measured length: nothing was measured there (and the fit's
    least-squares basis grows with the length).
    """
    limit = next((modes for length, modes in reversed(rules) if h.shape[-1] >= length), 0)
    if limit < 1 or h.shape[-1] > 2 * rules[-1][0]:
        return False
    try:
        return fit_modal(h).modes <= limit
    except NotModal:
        return False


def chunk_size(length: int, modes: int) -> int:
    """Chunk length T minimising T (Toeplitz MatMul per sample) + SCAN_WEIGHT * N * log2(K) / T (the states).

    The state passes cost more per value than a MatMul's multiply-add; the weight fits a sweep of
    T = 32..256 at 16k and 64k, 2..16 modes, 128 channels (ONNX Runtime CPU, 2 threads).
    """
    fitting = [t for t in CHUNK_SIZES if t <= max(next_pow2(length), CHUNK_SIZES[0])]
    return min(fitting, key=lambda t: t + SCAN_WEIGHT * modes * max(1, ceil(log2(max(ceil(length / t), 2)))) / t)


def _constants(plan: ModalPlan, t: int) -> dict[str, np.ndarray]:
    """Toeplitz (C, T, T), state-in (C, T, 2N), state-out (C, 2N, T), float64."""
    h = plan.impulse(t)
    lag = np.arange(t)[None, :] - np.arange(t)[:, None]                      # [j, i] = i - j
    toeplitz = np.where(lag >= 0, h[:, np.clip(lag, 0, None)], 0.0)          # y_i = sum_j u_j h[i - j]
    into = np.power(plan.poles[:, None, :], (t - 1 - np.arange(t))[None, :, None])           # p^(T-1-j)
    out = plan.residues[:, :, None] * np.power(plan.poles[:, :, None], np.arange(1, t + 1)[None, None, :])
    return {"toeplitz": toeplitz, "into": np.concatenate([into.real, into.imag], axis=2),
            "out": np.concatenate([out.real, -out.imag], axis=1)}


def _complex_scale(nb: NodeBuilder, re: str, im: str, a: np.ndarray) -> tuple[str, str]:
    """``(re + i im) * a`` for a (C, N) constant broadcast over (B, C, N, K)."""
    a_re, a_im = nb.const(a.real[:, :, None], "modal_decay_re"), nb.const(a.imag[:, :, None], "modal_decay_im")
    return (nb.op("Sub", [nb.op("Mul", [re, a_re]), nb.op("Mul", [im, a_im])]),
            nb.op("Add", [nb.op("Mul", [im, a_re]), nb.op("Mul", [re, a_im])]))


def _shift_right(nb: NodeBuilder, s: str, steps: int, kept: str) -> str:
    """``s`` (B, C, N, slots) moved ``steps`` slots later along the last axis (zeros in front), ``kept`` slots."""
    return nb.op("Pad", [nb.op("Slice", [s, nb.const([0]), kept, nb.const([3])]),
                         nb.const([0, 0, 0, steps, 0, 0, 0, 0])])


def _group_matrix(a: np.ndarray, g: int) -> np.ndarray:
    """(C, N, 2G, 2G) real matrix of the in-group prefix ``s_i = sum_(j<=i) a^(i-j) z_j`` on [Re z | Im z]."""
    lag = np.arange(g)[None, :] - np.arange(g)[:, None]                      # [j, i] = i - j
    powers = np.where(lag >= 0, np.power(a[:, :, None, None], np.clip(lag, 0, None)), 0.0)
    top = np.concatenate([powers.real, powers.imag], axis=-1)                # rows: Re z_j
    bottom = np.concatenate([-powers.imag, powers.real], axis=-1)            # rows: Im z_j
    return np.concatenate([top, bottom], axis=-2)


def _blocked_scan(nb: NodeBuilder, z: str, plan: ModalPlan, t: int, group: int, slots: int) -> tuple[str, str]:
    """Full states ``s_k = z_k + p^T s_(k-1)`` of z (B, C, 2N, slots) as (re, im) (B, C, N, slots).

    Groups of G chunk slots: the prefix inside a group is one MatMul with a 2G x 2G matrix per mode;
    the group-end states go through the doubling scan (log2 of slots/G steps); each slot then adds
    its group's incoming state times ``a^(i+1)``. Few passes over the states, no Loop.
    """
    c, n, g = nb.const, plan.modes, group
    a = np.power(plan.poles, t)                                                # per-slot decay (C, N)
    groups = slots // g
    parts = [nb.op("Reshape", [nb.op("Slice", [z, c([lo]), c([hi]), c([2])]), c([0, 0, n, groups, g])])
             for lo, hi in ((0, n), (n, 2 * n))]
    local = nb.op("MatMul", [nb.op("Concat", parts, axis=4), c(_group_matrix(a, g), "modal_group_scan")])
    ends = [nb.op("Reshape", [nb.op("Slice", [local, c([i]), c([i + 1]), c([4])]), c([0, 0, 0, -1])])
            for i in (g - 1, 2 * g - 1)]
    e_re, e_im = ends
    step = 1
    while step < groups:  # e_k += a^(G step) e_(k - step)
        kept = c([groups - step])
        new_re, new_im = _complex_scale(nb, _shift_right(nb, e_re, step, kept), _shift_right(nb, e_im, step, kept),
                                        np.power(a, g * step))
        e_re, e_im = nb.op("Add", [e_re, new_re]), nb.op("Add", [e_im, new_im])
        step *= 2
    incoming = [nb.op("Reshape", [_shift_right(nb, e, 1, c([groups - 1])), c([0, 0, 0, 0, 1])])
                for e in (e_re, e_im)]
    carry = np.power(a[:, :, None, None], np.arange(1, g + 1)[None, None, None, :])   # (C, N, 1, G): a^(i+1)
    p_re, p_im = c(carry.real, "modal_group_carry_re"), c(carry.imag, "modal_group_carry_im")
    carried_re = nb.op("Sub", [nb.op("Mul", [incoming[0], p_re]), nb.op("Mul", [incoming[1], p_im])])
    carried_im = nb.op("Add", [nb.op("Mul", [incoming[0], p_im]), nb.op("Mul", [incoming[1], p_re])])
    s_re = nb.op("Add", [nb.op("Slice", [local, c([0]), c([g]), c([4])]), carried_re])
    s_im = nb.op("Add", [nb.op("Slice", [local, c([g]), c([2 * g]), c([4])]), carried_im])
    return tuple(nb.op("Reshape", [s, c([0, 0, 0, -1])]) for s in (s_re, s_im))


def build(nb: NodeBuilder, signal: str, output: str, h: np.ndarray) -> None:
    """Replace ``output = causal_conv(signal, h)`` by the chunked modal scan (refuses non-modal filters)."""
    plan = fit_modal(h)
    t = chunk_size(plan.length, plan.modes)
    group = min(GROUP, ceil(plan.length / t))
    slots = ceil(ceil(plan.length / t) / group) * group
    k = _constants(plan, t)
    flat = flatten_channels(nb, signal, h)
    c = nb.const
    # right-pad to whole chunks: width (T - L mod T) mod T, then (B, C, K, T)
    width = nb.op("Mod", [nb.op("Sub", [c([t]), nb.op("Mod", [flat.length, c([t])])]), c([t])])
    x = nb.op("Pad", [flat.x, nb.op("Concat", [c([0, 0, 0, 0, 0]), width], axis=0)])
    x = nb.op("Reshape", [x, c([0, flat.channels, -1, t])])
    chunks = nb.op("Shape", [x], start=2, end=3)
    y = nb.op("MatMul", [x, c(k["toeplitz"], "modal_toeplitz")])
    # each chunk's own state, modes first: (B, C, 2N, K), then K_max fixed slots (K > K_max fails at run time)
    z = nb.op("Transpose", [nb.op("MatMul", [x, c(k["into"], "modal_state_in")])], perm=[0, 1, 3, 2])
    missing = nb.op("Concat", [nb.op("Shape", [z], start=0, end=3), nb.op("Sub", [c([slots]), chunks])], axis=0)
    z = nb.op("Concat", [z, nb.op("ConstantOfShape", [missing], value=onnx.helper.make_tensor(
        "zero", onnx.TensorProto.FLOAT, [1], [0.0]))], axis=3)    # a negative count fails (Pad would crop)
    s_re, s_im = _blocked_scan(nb, z, plan, t, group, slots)
    # chunk k reads the state after chunk k-1
    state = _shift_right(nb, nb.op("Concat", [s_re, s_im], axis=2), 1, nb.op("Sub", [chunks, c([1])]))
    carried = nb.op("MatMul", [nb.op("Transpose", [state], perm=[0, 1, 3, 2]), c(k["out"], "modal_state_out")])
    y = nb.op("Reshape", [nb.op("Add", [y, carried]), c([0, flat.channels, -1])])
    restore(nb, y, flat, output)
