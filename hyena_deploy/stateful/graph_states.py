"""ONNX builders of the two states a traced convolution site gets, for a chunk ``x`` (B, C, T), any T >= 1.

* :func:`history_conv`: the last S-1 inputs; the chunk's outputs are one Conv of the filter's S taps
  over ``[history | x]``: O(T·S) per channel.
* :func:`modal_conv`: for a modal filter ``h_t = Re Σ_n R_n p_n^t`` (+ a direct term) the complex
  state ``s_n = Σ_k p_n^(P-1-k) u_k`` in real arithmetic, (B, C, 2N) as [Re s | Im s]. The chunk is cut
  into blocks of ``BLOCK``: a Toeplitz MatMul inside each block, block-end states by a doubling scan
  over the blocks (a fixed number of Slice/Concat/MatMul/Add steps, enough for the longest chunk; a
  one-token chunk has one block), and the state after the last valid position from small tables
  indexed by its offset in the last block: O(T·(BLOCK + 4N) + N²·log(max/BLOCK)) per channel, whatever
  the context.

Constants are formed in float64 and stored in float32; no complex tensor, no Loop/If/Scan.
"""

from __future__ import annotations

from math import ceil, log2

import numpy as np

from hyena_deploy.graph import NodeBuilder
from hyena_deploy.stateful.layout import StateSpec
from hyena_deploy.strategies.modal import ModalPlan

BLOCK = 16
INT64_MAX, INT64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min


def history_conv(nb: NodeBuilder, x: str, h: np.ndarray, state: StateSpec | None) -> str:
    """``Σ_{j<S} h[:, j] u_(t-j)`` for x (B, C, T) continuing from ``state`` (B, C, S-1); None when S == 1."""
    channels, taps = h.shape
    weight = np.ascontiguousarray(h.reshape(channels, 1, taps)[..., ::-1])  # Conv is cross-correlation
    joined = x
    if state is not None:
        joined = nb.op("Concat", [state.input, x], axis=-1)
        nb.op("Slice", [joined, nb.const([1 - taps]), nb.const([INT64_MAX]), nb.const([-1])], output=state.output)
    return nb.op("Conv", [joined, nb.const(weight, "filter_taps")], group=channels, kernel_shape=[taps])


def modal_state_shape(plan: ModalPlan) -> tuple[int, int]:
    return plan.poles.shape[0], 2 * plan.modes


def _complex_mul(nb: NodeBuilder, re: str, im: str, a_re: str, a_im: str) -> tuple[str, str]:
    return (nb.op("Sub", [nb.op("Mul", [re, a_re]), nb.op("Mul", [im, a_im])]),
            nb.op("Add", [nb.op("Mul", [re, a_im]), nb.op("Mul", [im, a_re])]))


def _scale(nb: NodeBuilder, s: str, a: np.ndarray) -> str:
    """``s`` (C, B, K, 2, N) holding [Re; Im] times the complex ``a`` (C, N), elementwise:
    ``s·[Re a; Re a] + flip(s)·[-Im a; Im a]``, where flip swaps Re and Im (one reversed Slice).

    (Batched 2N x 2N MatMuls per channel, or a Gather on the last axis, cost more in ONNX Runtime.)
    """
    same = np.stack([a.real, a.real], axis=1)[:, None, None]               # (C, 1, 1, 2, N)
    cross = np.stack([-a.imag, a.imag], axis=1)[:, None, None]
    flipped = nb.op("Slice", [s, nb.const([-1]), nb.const([INT64_MIN]), nb.const([3]), nb.const([-1])])
    return nb.op("Add", [nb.op("Mul", [s, nb.const(same, "modal_step_same")]),
                         nb.op("Mul", [flipped, nb.const(cross, "modal_step_cross")])])


def _shift(nb: NodeBuilder, s: str, steps: int, length: str) -> str:
    """``s`` (C, B, K, ...) moved ``steps`` blocks later along axis 2 (zeros in front), cut to ``length`` = K.

    Zeros come from the first ``min(steps, K)`` blocks times 0, so any K works (cheaper than Pad in ONNX Runtime).
    """
    zeros = nb.op("Mul", [nb.op("Slice", [s, nb.const([0]), nb.const([steps]), nb.const([2])]),
                          nb.const(np.zeros(1, np.float32))])
    return nb.op("Slice", [nb.op("Concat", [zeros, s], axis=2), nb.const([0]), length, nb.const([2])])


def _parts(value: np.ndarray, axis: int) -> np.ndarray:
    """A complex table as [Re | Im] along ``axis``."""
    return np.concatenate([value.real, value.imag], axis=axis)


def _tables(plan: ModalPlan) -> dict[str, np.ndarray]:
    """float64 constants: block Toeplitz (C, B, B); block states in (C, B, 2N); out (C, 2N, B); last-block state
    weights (C, B+1, B, 2N) and decays (C, B+1, N) per part, both indexed by the valid count in the last block."""
    b, p, r = BLOCK, plan.poles, plan.residues
    h = plan.impulse(b)
    lag = np.arange(b)[None, :] - np.arange(b)[:, None]                       # [j, i] = i - j
    toeplitz = np.where(lag >= 0, h[:, np.clip(lag, 0, None)], 0.0)           # y_i = Σ_j u_j H[j, i]
    into = np.power(p[:, None, :], (b - 1 - np.arange(b))[None, :, None])     # p^(B-1-j)
    out = r[:, :, None] * np.power(p[:, :, None], np.arange(1, b + 1)[None, None, :])  # R p^(i+1)
    counts = np.arange(b + 1)                                                 # valid positions in the last block
    exponent = counts[:, None] - 1 - np.arange(b)[None, :]                    # [r, j] = r - 1 - j
    last = np.where(exponent[None, :, :, None] >= 0,
                    np.power(p[:, None, None, :], np.clip(exponent, 0, None)[None, :, :, None]), 0.0)
    decay = np.power(p[:, None, :], counts[None, :, None])                    # p^r
    return {"toeplitz": toeplitz, "into": _parts(into, 2), "last": _parts(last, 3),
            "out": np.concatenate([out.real, -out.imag], axis=1),            # y = Re(R p s) = s_re·Re - s_im·Im
            "decay_re": decay.real, "decay_im": decay.imag}


def modal_conv(nb: NodeBuilder, x: str, plan: ModalPlan, state: StateSpec, max_length: int) -> str:
    """The chunk's outputs (B, C, T) from ``state`` (B, C, 2N); writes ``state.output``. T <= ``max_length``.

    Inside, channels lead ((C, B, K, ...)), so every MatMul is one small GEMM per channel with no
    broadcast over the batch (ONNX Runtime runs those far faster).
    """
    c, b, n, channels = nb.const, BLOCK, plan.modes, plan.poles.shape[0]
    k = {name: c(value, f"modal_{name}") for name, value in _tables(plan).items()}
    length = nb.op("Shape", [x], start=2, end=3)
    batch = nb.op("Shape", [x], start=0, end=1)
    blocks = nb.op("Div", [nb.op("Add", [length, c([b - 1])]), c([b])])
    width = nb.op("Sub", [nb.op("Mul", [blocks, c([b])]), length])
    padded = nb.op("Pad", [x, nb.op("Concat", [c([0, 0, 0, 0, 0]), width], axis=0)])
    xb = nb.op("Transpose", [nb.op("Reshape", [padded, c([0, channels, -1, b])])], perm=[1, 0, 2, 3])  # (C, B, K, B_)
    rows = nb.op("Reshape", [xb, c([channels, -1, b])])                             # (C, B·K, BLOCK)
    local = nb.op("MatMul", [rows, k["toeplitz"]])
    by_block = nb.op("Concat", [c([channels]), batch, blocks, c([2, n])], axis=0)
    own = nb.op("Reshape", [nb.op("MatMul", [rows, k["into"]]), by_block])          # (C, B, K, 2, N): [Re; Im]
    # block-end states: e_0 = s, e_(k+1) = p^B e_k + (block k's own state)
    start_state = nb.op("Reshape", [nb.op("Transpose", [state.input], perm=[1, 0, 2]), c([channels, -1, 1, 2, n])])
    e = nb.op("Concat", [start_state, own], axis=2)                                 # (C, B, K+1, 2, N)
    count = nb.op("Shape", [e], start=2, end=3)
    step = 1
    while step < ceil(max_length / b) + 1:
        e = nb.op("Add", [e, _scale(nb, _shift(nb, e, step, count), np.power(plan.poles, b * step))])
        step *= 2
    entering = nb.op("Slice", [e, c([0]), c([-1]), c([2])])                   # the state entering block k
    carried = nb.op("MatMul", [nb.op("Reshape", [entering, c([channels, -1, 2 * n])]), k["out"]])
    y = nb.op("Reshape", [nb.op("Add", [local, carried]), nb.op("Concat", [c([channels]), batch, c([-1])], axis=0)])
    y = nb.op("Slice", [nb.op("Transpose", [y], perm=[1, 0, 2]), c([0]), length, c([2])])
    # the state after position T-1: p^r (state entering the last block) + Σ_(j<r) p^(r-1-j) u_j
    last_block = nb.op("Sub", [blocks, c([1])])
    valid = nb.op("Squeeze", [nb.op("Sub", [length, nb.op("Mul", [last_block, c([b])])]), c([0])])
    tail = nb.op("Squeeze", [nb.op("Gather", [xb, last_block], axis=2), c([2])])      # (C, B, BLOCK)
    fed = nb.op("MatMul", [tail, nb.op("Gather", [k["last"], valid], axis=1)])        # (C, B, 2N)
    begin = nb.op("Reshape", [nb.op("Gather", [entering, last_block], axis=2), c([channels, -1, 2 * n])])
    s_re, s_im = (nb.op("Slice", [begin, c([lo]), c([hi]), c([2])]) for lo, hi in ((0, n), (n, 2 * n)))
    decay = [nb.op("Unsqueeze", [nb.op("Gather", [k[f"decay_{part}"], valid], axis=1), c([1])])
             for part in ("re", "im")]                                               # (C, 1, N)
    new = nb.op("Add", [nb.op("Concat", list(_complex_mul(nb, s_re, s_im, *decay)), axis=2), fed])
    nb.op("Transpose", [new], output=state.output, perm=[1, 0, 2])
    return y


def scan_steps(max_length: int) -> int:
    """Doubling steps the graph has for chunks up to ``max_length`` (reported in notes)."""
    return max(0, ceil(log2(ceil(max_length / BLOCK) + 1)))
