"""Complex modal state in real arithmetic (StripedHyena): ``h[c, t] = Re Σ_n R[c, n] p[c, n]^t``, complex p, R.

The state ``s`` (B, C, N, 2) holds the real and imaginary parts of one complex number per channel
and mode; ``s <- p s + u``, ``y = Re Σ_n R s + D u``. Powers ``p^t = |p|^t (cos tθ + i sin tθ)`` are
formed from ``log|p|`` and ``θ = arg p`` (computed in float64 once), so the graph has no complex
tensor. The chunk formulas and costs are those of :mod:`hyena_deploy.stateful.modal`.
"""

from __future__ import annotations

import torch
from torch import nn

from hyena_deploy.stateful.modal import chunk_conv, time_steps

KIND = "modal_complex"


class ComplexModalConv(nn.Module):
    """From complex ``poles`` and ``residues`` (C, N) and the real skip ``D`` (C)."""

    def __init__(self, poles: torch.Tensor, residues: torch.Tensor, skip: torch.Tensor) -> None:
        super().__init__()
        poles = poles.detach().to(torch.complex128)
        residues = residues.detach().to(torch.complex128)
        self.register_buffer("log_magnitude", poles.abs().log().float()[..., None])  # (C, N, 1)
        self.register_buffer("angle", poles.angle().float()[..., None])
        self.register_buffer("res_re", residues.real.float()[..., None])
        self.register_buffer("res_im", residues.imag.float()[..., None])
        self.register_buffer("skip", skip.detach().float().reshape(-1, 1))

    @property
    def modes(self) -> int:
        return self.angle.shape[1]

    def forward(self, u: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``u`` (B, C, T), ``state`` (B, C, N, 2) -> output (B, C, T), new state."""
        length = u.shape[-1]
        t = time_steps(length, u)
        magnitude = torch.exp(self.log_magnitude * t)
        angle = self.angle * t
        p_re, p_im = magnitude * torch.cos(angle), magnitude * torch.sin(angle)  # p^t, (C, N, T + 1)
        h = (self.res_re * p_re[..., :length] - self.res_im * p_im[..., :length]).sum(1)
        s_re, s_im = state[..., 0, None], state[..., 1, None]  # (B, C, N, 1)
        q_re = p_re[..., 1:] * s_re - p_im[..., 1:] * s_im  # p^(t+1) s
        q_im = p_re[..., 1:] * s_im + p_im[..., 1:] * s_re
        carry = (self.res_re * q_re - self.res_im * q_im).sum(2)
        u_t = u.permute(1, 0, 2)  # (C, B, T)
        fed_re = (u_t @ p_re[..., :length].flip(-1).transpose(1, 2)).permute(1, 0, 2)  # Σ p^(T-1-k) u_k
        fed_im = (u_t @ p_im[..., :length].flip(-1).transpose(1, 2)).permute(1, 0, 2)
        last_re, last_im = p_re[..., length], p_im[..., length]  # p^T, (C, N)
        new_re = last_re * state[..., 0] - last_im * state[..., 1] + fed_re
        new_im = last_re * state[..., 1] + last_im * state[..., 0] + fed_im
        return chunk_conv(u, h) + carry + u * self.skip, torch.stack([new_re, new_im], dim=-1)
