"""Language models written independently of hyena_deploy for the traced stateful form (FILE.py:factory).

``modal_lm`` is StripedHyena-like: a filter from learned poles and residues in real arithmetic, a
depthwise ``nn.Conv1d`` short filter padded on both sides and cropped, RMSNorm and a gated MLP. The
others are refused in one line, each for a different reason.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, width: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class ModalFilter(nn.Module):
    """h[c, t] = Σ_n r[c, n] |p[c, n]|^t cos(θ[c, n] t), a few damped oscillators per channel."""

    def __init__(self, channels: int, modes: int) -> None:
        super().__init__()
        self.log_decay = nn.Parameter(torch.log(torch.rand(channels, modes) * 0.08 + 0.005))
        self.theta = nn.Parameter(torch.rand(channels, modes) * math.pi)
        self.residue = nn.Parameter(torch.randn(channels, modes) * 0.3)

    def forward(self, length: int) -> torch.Tensor:
        t = torch.arange(length, dtype=torch.float32)
        decay = torch.exp(-torch.exp(self.log_decay)[..., None] * t)
        return (self.residue[..., None] * decay * torch.cos(self.theta[..., None] * t)).sum(1)


class ModalHyena(nn.Module):
    def __init__(self, width: int, modes: int) -> None:
        super().__init__()
        self.proj = nn.Linear(width, 3 * width)
        self.short = nn.Conv1d(3 * width, 3 * width, kernel_size=3, padding=2, groups=3 * width)
        self.filter = ModalFilter(width, modes)
        self.d = nn.Parameter(torch.randn(width))
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, W)
        length = x.shape[1]
        z = self.short(self.proj(x).transpose(1, 2))[..., :length]
        q, k, v = z.chunk(3, dim=1)
        u = k * v
        n = 2 * length
        y = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(self.filter(length), n=n), n=n)[..., :length]
        return self.out((q * (y + u * self.d[:, None])).transpose(1, 2))


class ModalLM(nn.Module):
    def __init__(self, vocab: int = 48, width: int = 32, depth: int = 2, modes: int = 3) -> None:
        super().__init__()
        self.l_max = 2048
        self.embed = nn.Embedding(vocab, width)
        self.mixers = nn.ModuleList(ModalHyena(width, modes) for _ in range(depth))
        self.norms = nn.ModuleList(RMSNorm(width) for _ in range(2 * depth))
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
                                  for _ in range(depth))
        self.head = nn.Linear(width, vocab, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        for i, (mixer, mlp) in enumerate(zip(self.mixers, self.mlps)):
            x = x + mixer(self.norms[2 * i](x))
            x = x + mlp(self.norms[2 * i + 1](x))
        return self.head(x)


def modal_lm():
    torch.manual_seed(11)
    return ModalLM().eval()


class PositionalLM(ModalLM):
    """Adds a learned absolute position embedding: the output depends on where a token sits."""

    def __init__(self) -> None:
        super().__init__(depth=1)
        self.positions = nn.Embedding(self.l_max, 32)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids) + self.positions(torch.arange(ids.shape[1]))
        return self.head(self.mixers[0](x))


def positional_lm():
    torch.manual_seed(12)
    return PositionalLM().eval()


class AttentionLM(ModalLM):
    """One causal softmax attention layer after a Hyena layer: no attention state for traced models."""

    def __init__(self) -> None:
        super().__init__(depth=1)
        self.attention = nn.MultiheadAttention(32, 2, batch_first=True)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.mixers[0](self.embed(ids))
        length = ids.shape[1]
        mask = torch.triu(torch.full((length, length), float("-inf")), diagonal=1)
        return self.head(x + self.attention(x, x, x, attn_mask=mask, need_weights=False)[0])


def attention_lm():
    torch.manual_seed(13)
    return AttentionLM().eval()


class RunningMeanLM(ModalLM):
    """A cumulative mean over the sequence (causal, but not position-wise and not a convolution)."""

    def __init__(self) -> None:
        super().__init__(depth=1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.mixers[0](self.embed(ids))
        count = torch.arange(1, ids.shape[1] + 1, dtype=x.dtype)[None, :, None]
        return self.head(x.cumsum(1) / count)


def running_mean_lm():
    torch.manual_seed(14)
    return RunningMeanLM().eval()


def modal_lm_64k():
    """``modal_lm`` declared for 64k tokens (the decode benchmark's modal model written elsewhere)."""
    model = modal_lm()
    model.l_max = 65536
    return model

