"""ONNX builders of the two states a traced convolution site gets, for a chunk ``x`` (B, C, T), any T >= 1.

* :func:`history_conv`: the last S-1 inputs; the chunk's outputs are one Conv of the filter's S taps
  over ``[history | x]``: O(T·S) per channel.
* :func:`modal_conv`: for a modal filter ``h_t = Re Σ_n R_n p_n^t`` (+ a direct term) the complex
  state ``s_n = Σ_k p_n^(P-1-k) u_k`` in real arithmetic, (B, C, 2N) as [Re s | Im s]. The chunk is cut
  into blocks of ``BLOCK``: a Toeplitz MatMul inside each block, block-end states by a doubling scan
  over the blocks (a fixed number of Slice/Pad/Mul/Add steps for the longest chunk; a one-token
  chunk has one block), and the state after the last valid position from small tables indexed by
  its offset in the last block: O(T·(BLOCK + 4N)) per channel, whatever the context.

Constants are formed in float64 and stored in float32; no complex tensor, no Loop/If/Scan.
"""

from __future__ import annotations

from math import ceil, log2

import numpy as np

from hyena_deploy.graph import NodeBuilder
from hyena_deploy.stateful.layout import StateSpec
from hyena_deploy.strategies.modal import ModalPlan

BLOCK = 16
INT64_MAX = np.iinfo(np.int64).max


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


def _shift(nb: NodeBuilder, s: str, steps: int) -> str:
    """``s`` (B, C, K, N) moved ``steps`` blocks later along axis 2 (zeros in front), same length."""
    padded = nb.op("Pad", [s, nb.const([0, 0, steps, 0, 0, 0, 0, 0])])  # then crop: right for any length
    return nb.op("Slice", [padded, nb.const([0]), nb.const([-steps]), nb.const([2])])


def _tables(plan: ModalPlan) -> dict[str, np.ndarray]:
    """float64 constants: block Toeplitz (C, B, B), block states in (C, B, N) and out (C, N, B) per part,
    last-block state weights (C, B+1, B, N) and decays (C, B+1, N) per part, indexed by the valid count."""
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
    tables = {"toeplitz": toeplitz}
    for name, value in (("into", into), ("last", last), ("decay", decay)):
        tables[f"{name}_re"], tables[f"{name}_im"] = value.real, value.imag
    tables["out_re"], tables["out_im"] = out.real, -out.imag                  # y = Re(R p s) = s_re·Re - s_im·Im
    return tables


def modal_conv(nb: NodeBuilder, x: str, plan: ModalPlan, state: StateSpec, max_length: int) -> str:
    """The chunk's outputs (B, C, T) from ``state`` (B, C, 2N); writes ``state.output``. T <= ``max_length``."""
    c, b, n, channels = nb.const, BLOCK, plan.modes, plan.poles.shape[0]
    k = {name: c(value, f"modal_{name}") for name, value in _tables(plan).items()}
    length = nb.op("Shape", [x], start=2, end=3)
    blocks = nb.op("Div", [nb.op("Add", [length, c([b - 1])]), c([b])])
    width = nb.op("Sub", [nb.op("Mul", [blocks, c([b])]), length])
    padded = nb.op("Pad", [x, nb.op("Concat", [c([0, 0, 0, 0, 0]), width], axis=0)])
    xb = nb.op("Reshape", [padded, c([0, channels, -1, b])])                  # (B, C, K, BLOCK)
    local = nb.op("MatMul", [xb, k["toeplitz"]])
    s_re = nb.op("Unsqueeze", [nb.op("Slice", [state.input, c([0]), c([n]), c([2])]), c([2])])   # (B, C, 1, N)
    s_im = nb.op("Unsqueeze", [nb.op("Slice", [state.input, c([n]), c([2 * n]), c([2])]), c([2])])
    # block-end states: e_0 = s, e_(k+1) = p^B e_k + (block k's own state)
    e_re = nb.op("Concat", [s_re, nb.op("MatMul", [xb, k["into_re"]])], axis=2)   # (B, C, K+1, N)
    e_im = nb.op("Concat", [s_im, nb.op("MatMul", [xb, k["into_im"]])], axis=2)
    step = 1
    while step < ceil(max_length / b) + 1:
        a = np.power(plan.poles, b * step)[:, None, :]
        moved = _complex_mul(nb, _shift(nb, e_re, step), _shift(nb, e_im, step),
                             c(a.real, "modal_step_re"), c(a.imag, "modal_step_im"))
        e_re, e_im = nb.op("Add", [e_re, moved[0]]), nb.op("Add", [e_im, moved[1]])
        step *= 2
    entering = [nb.op("Slice", [e, c([0]), c([-1]), c([2])]) for e in (e_re, e_im)]   # state entering block k
    carried = nb.op("Add", [nb.op("MatMul", [entering[0], k["out_re"]]), nb.op("MatMul", [entering[1], k["out_im"]])])
    y = nb.op("Reshape", [nb.op("Add", [local, carried]), c([0, channels, -1])])
    y = nb.op("Slice", [y, c([0]), length, c([2])])
    # the state after position T-1: p^r (state entering the last block) + Σ_(j<r) p^(r-1-j) u_j
    last_block = nb.op("Sub", [blocks, c([1])])
    valid = nb.op("Squeeze", [nb.op("Sub", [length, nb.op("Mul", [last_block, c([b])])]), c([0])])
    tail = nb.op("Gather", [xb, last_block], axis=2)                          # (B, C, 1, BLOCK)
    fed = [nb.op("MatMul", [tail, nb.op("Gather", [k[f"last_{part}"], valid], axis=1)]) for part in ("re", "im")]
    start = [nb.op("Gather", [e, last_block], axis=2) for e in entering]      # (B, C, 1, N)
    decay = [nb.op("Unsqueeze", [nb.op("Gather", [k[f"decay_{part}"], valid], axis=1), c([1])]) for part in ("re", "im")]
    new_re, new_im = _complex_mul(nb, start[0], start[1], decay[0], decay[1])
    new = nb.op("Concat", [nb.op("Add", [new_re, fed[0]]), nb.op("Add", [new_im, fed[1]])], axis=3)
    nb.op("Squeeze", [new, c([2])], output=state.output)
    return y


def scan_steps(max_length: int) -> int:
    """Doubling steps the graph has for chunks up to ``max_length`` (reported in notes)."""
    return max(0, ceil(log2(ceil(max_length / BLOCK) + 1)))
