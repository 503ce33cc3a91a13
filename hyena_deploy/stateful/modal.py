"""Real modal state: a long filter ``h[c, t] = Σ_n R[c, n] p[c, n]^t`` with real poles ``p = exp(log_p)`` (Evo 2 HCL).

The state is one real number per channel and mode (B, C, N): ``s <- p s + u``, ``y = Σ_n R s + D u``.
A chunk of T tokens continues from the incoming state ``s`` exactly:
``y_t = (h * u)_t + D u_t + Σ_n R_n p_n^(t+1) s_n`` and ``s' = p^T s + Σ_k p^(T-1-k) u_k``.
The carry and the new state cost O(T·N) per channel; the in-chunk convolution is a causal Toeplitz
product over the chunk, O(T²) per channel (O(1) for a single token): none depends on the context.
"""

from __future__ import annotations

import torch
from torch import nn

KIND = "modal"


def chunk_conv(u: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Causal convolution of ``u`` (B, C, T) with ``h`` (C, T) inside one chunk (zero before it)."""
    steps = torch.arange(u.shape[-1], device=u.device)
    lag = steps[:, None] - steps[None, :]
    toeplitz = torch.where(lag >= 0, h[:, lag.clamp(min=0)], torch.zeros((), dtype=h.dtype))  # (C, T, T)
    return (toeplitz @ u.permute(1, 2, 0)).permute(2, 0, 1)


def time_steps(length: int | torch.SymInt, like: torch.Tensor) -> torch.Tensor:
    """``0, 1, ..., length`` as floats (exponents for the powers of the poles)."""
    return torch.arange(length + 1, device=like.device, dtype=torch.float32)


class RealModalConv(nn.Module):
    """One real modal system per channel and mode, from ``log_p`` and ``residues`` (C, N) and the skip ``D`` (C)."""

    def __init__(self, log_p: torch.Tensor, residues: torch.Tensor, skip: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("log_p", log_p.detach().float()[..., None])  # (C, N, 1)
        self.register_buffer("residues", residues.detach().float()[..., None])
        self.register_buffer("skip", skip.detach().float().reshape(-1, 1))

    @property
    def modes(self) -> int:
        return self.log_p.shape[1]

    def forward(self, u: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``u`` (B, C, T), ``state`` (B, C, N) -> output (B, C, T), new state."""
        length = u.shape[-1]
        powers = torch.exp(self.log_p * time_steps(length, u))  # p^t, (C, N, T + 1)
        h = (self.residues * powers[..., :length]).sum(1)
        carry = ((self.residues * powers[..., 1:]) * state[..., None]).sum(2)  # Σ R p^(t+1) s
        decay = powers[..., :length].flip(-1).transpose(1, 2)  # p^(T-1-k), (C, T, N)
        fed = (u.permute(1, 0, 2) @ decay).permute(1, 0, 2)  # (B, C, N)
        new_state = powers[..., length] * state + fed
        return chunk_conv(u, h) + carry + u * self.skip, new_state
