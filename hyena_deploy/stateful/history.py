"""Exact input history for implicit (non-modal) long filters: the last max_context-1 inputs of the convolution.

An implicit filter (a Sin MLP of positions: safari, HyenaDNA, hyena_lm) has no recurrence, so the
only exact state is the input itself. The buffer has a fixed size (B, C, max_context - 1), newest
input last, zeros before the first token; one new token costs one dot product of max_context taps
per channel, a chunk of T tokens T of them, however long the context already is.
"""

from __future__ import annotations

import torch
from torch import nn

from hyena_deploy.stateful.fir import conv_with_cache

KIND = "history"


class HistoryConv(nn.Module):
    """``y_t = Σ_{j<M} h[j] u_{t-j} + D u_t`` for a chunk, with ``h`` (C, M) fixed at construction."""

    def __init__(self, h: torch.Tensor, skip: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weight", h.detach().float().flip(-1)[:, None].contiguous())  # (C, 1, M), lag 0 last
        self.register_buffer("skip", skip.detach().float().reshape(-1, 1))

    @property
    def state_length(self) -> int:
        return self.weight.shape[-1] - 1

    def forward(self, u: torch.Tensor, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``u`` (B, C, T), ``history`` (B, C, M-1) -> output (B, C, T), new history."""
        y, history = conv_with_cache(history, u, self.weight)
        return y + u * self.skip, history
