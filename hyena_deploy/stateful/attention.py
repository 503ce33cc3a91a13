"""Attention KV cache of fixed size with rotary positions at the right offset.

Keys and values (B, H_kv, max_context, d) hold the last max_context positions, newest last; slot j
of the buffer is absolute position ``pos - max_context + j`` (empty while negative). ``pos`` is the
per-row ``position`` state (number of tokens already consumed), so rows of a batch may be at
different positions (prompts of unequal length prefilled one by one, then stacked).
"""

from __future__ import annotations

import torch
from torch import nn

KEY, VALUE, POSITION = "key", "value", "position"


def rotate(x: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor, scaling: float) -> torch.Tensor:
    """GPT-NeoX rotary (halves) of ``x`` (B, T, heads, d) at absolute ``positions`` (B, T) int64."""
    freqs = (positions.float() / scaling)[..., None] * inv_freq.float()  # (B, T, d/2)
    cos, sin = freqs.cos()[:, :, None], freqs.sin()[:, :, None]
    first, second = x.chunk(2, dim=-1)
    return torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1)


class CachedRotaryAttention(nn.Module):
    """A chunk of causal GQA self-attention over the cache and the chunk itself.

    ``mha`` is a :class:`hyena_deploy.models.striped.RotaryMHA` (or anything with its ``Wqkv``,
    ``out_proj``, ``rotary_emb``, ``heads``, ``kv_heads``, ``head_dim``).
    """

    def __init__(self, mha: nn.Module, max_context: int) -> None:
        super().__init__()
        self.mha, self.max_context = mha, max_context

    def state_shape(self) -> tuple[int, int, int]:
        return (self.mha.kv_heads, self.max_context, self.mha.head_dim)

    def forward(self, x: torch.Tensor, position: torch.Tensor, keys: torch.Tensor, values: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x`` (B, T, dim), ``position`` (B, 1) -> output (B, T, dim), new keys, new values."""
        mha, window = self.mha, self.max_context
        batch, length, _ = x.shape
        heads, kv_heads, d = mha.heads, mha.kv_heads, mha.head_dim
        steps = torch.arange(length, device=x.device)
        positions = position + steps  # (B, T)
        q, k, v = mha.Wqkv(x).split([heads * d, kv_heads * d, kv_heads * d], dim=-1)
        rotary = mha.rotary_emb
        q = rotate(q.reshape(batch, length, heads, d), positions, rotary.inv_freq, rotary.scaling)
        k = rotate(k.reshape(batch, length, kv_heads, d), positions, rotary.inv_freq, rotary.scaling)
        keys = torch.cat([keys, k.transpose(1, 2)], dim=2)  # (B, H_kv, window + T, d)
        values = torch.cat([values, v.reshape(batch, length, kv_heads, d).transpose(1, 2)], dim=2)
        q = q.reshape(batch, length, kv_heads, heads // kv_heads, d).permute(0, 2, 3, 1, 4)  # (B, H_kv, g, T, d)
        scores = (q @ keys[:, :, None].transpose(-1, -2)) * d ** -0.5  # (B, H_kv, g, T, window + T)
        slot = torch.arange(window + length, device=x.device)
        visible = (slot[None, None] >= window - position[..., None]) & (slot <= window + steps[:, None])[None]
        scores = scores.masked_fill(~visible[:, None, None], float("-inf"))
        out = scores.softmax(-1) @ values[:, :, None]  # (B, H_kv, g, T, d)
        out = out.permute(0, 3, 1, 2, 4).reshape(batch, length, heads * d)
        return mha.out_proj(out), keys[:, :, length:], values[:, :, length:]
