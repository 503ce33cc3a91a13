"""Hyena models written independently of hyena_deploy (used through FILE.py:factory).

They differ on purpose from the project's reference code: complex fft/ifft instead of rfft/irfft,
a filter from a SiLU+Sin MLP over sinusoidal features, channels-last convolutions, and an
order-N recurrence written with einsum.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ImplicitFilter(nn.Module):
    def __init__(self, channels: int, l_max: int, hidden: int = 24) -> None:
        super().__init__()
        pos = torch.arange(l_max, dtype=torch.float32)[:, None]
        freqs = torch.exp(torch.linspace(0, -4, 4))[None, :]
        self.register_buffer("features", torch.cat([pos / l_max, torch.sin(pos * freqs), torch.cos(pos * freqs)], -1))
        self.mlp = nn.Sequential(nn.Linear(9, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.Sigmoid(),
                                 nn.Linear(hidden, channels))
        self.decay = nn.Parameter(torch.linspace(0.5, 6.0, channels))

    def forward(self, length: int) -> torch.Tensor:
        t = self.features[:length, :1]
        return (self.mlp(self.features[:length]) * torch.exp(-t * self.decay)).transpose(0, 1)  # (C, L)


def complex_fftconv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """u (B, L, C), k (C, L): causal convolution along L through complex FFTs."""
    length = u.shape[1]
    n = 2 * length
    uf = torch.fft.fft(u.transpose(1, 2), n=n)
    kf = torch.fft.fft(k, n=n)
    return torch.fft.ifft(uf * kf, n=n).real[..., :length].transpose(1, 2)


class ElsewhereHyena(nn.Module):
    """Order-N Hyena block, channels last, with D skips, a 3-tap causal short conv and a residual."""

    def __init__(self, width: int, l_max: int, order: int) -> None:
        super().__init__()
        self.width, self.order, self.l_max = width, order, l_max
        self.proj = nn.Linear(width, width * (order + 1))
        self.short = nn.Parameter(torch.randn(3, width * (order + 1)) / math.sqrt(3))
        self.filters = nn.ModuleList(ImplicitFilter(width, l_max) for _ in range(order - 1))
        self.skip = nn.Parameter(torch.randn(order - 1, width))
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        z = self.proj(x)
        padded = nn.functional.pad(z, (0, 0, 2, 0))
        z = sum(self.short[i] * padded[:, i:i + length] for i in range(3))
        gates = list(z.split(self.width, dim=-1))
        v = gates.pop()
        for j, filt in enumerate(self.filters):
            v = v * gates[-1 - j]
            v = complex_fftconv(v, filt(length)) + v * self.skip[j]
        return x + self.out(v * gates[0])


class ElsewhereLM(nn.Module):
    def __init__(self, vocab: int, width: int, depth: int, l_max: int, order: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.blocks = nn.ModuleList(ElsewhereHyena(width, l_max, order) for _ in range(depth))
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(depth))
        self.head = nn.Linear(width, vocab, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        for norm, block in zip(self.norms, self.blocks):
            x = block(norm(x))
        return self.head(x)


def order2():
    torch.manual_seed(1)
    return ElsewhereHyena(24, 4096, 2).eval(), (torch.randn(1, 64, 24),)


def order3():
    torch.manual_seed(2)
    return ElsewhereHyena(16, 4096, 3).eval(), (torch.randn(1, 64, 16),)


def lm():
    torch.manual_seed(3)
    return ElsewhereLM(32, 32, 2, 4096).eval()


def lm_256():
    """A small LM with 256-token filters (distillation tests)."""
    torch.manual_seed(15)
    return ElsewhereLM(32, 16, 2, 256).eval()


def lm_long():
    """A 2-block, width-32 LM whose filters span 64k tokens (honest long exports in the suite)."""
    torch.manual_seed(5)
    return ElsewhereLM(256, 32, 2, 65536).eval()


def lm_4x128():
    """The 4-block, width-128 LM used by the benchmarks."""
    torch.manual_seed(4)
    return ElsewhereLM(256, 128, 4, 65536).eval()


class NoLongConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


def no_long_conv():
    return NoLongConv().eval(), (torch.randn(1, 32, 8),)


def raises():
    raise RuntimeError("factory exploded")


class Bidirectional(nn.Module):
    """Not causal: each position sees the whole sequence (mean over L)."""

    def __init__(self) -> None:
        super().__init__()
        self.l_max = 64
        self.lin = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) + x.mean(dim=1, keepdim=True)


def bidirectional():
    return Bidirectional().eval(), (torch.randn(1, 64, 8),)


class ExplicitShortFilter(nn.Module):
    """A 16-tap explicit filter applied through a full-length FFT (as Evo 2's 128-tap HCM does)."""

    def __init__(self, width: int = 8, taps: int = 16) -> None:
        super().__init__()
        self.l_max = 256
        self.h = nn.Parameter(torch.randn(width, taps) / taps)
        self.lin = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.lin(x).transpose(1, 2)
        length = u.shape[-1]
        y = torch.fft.irfft(torch.fft.rfft(u, n=2 * length) * torch.fft.rfft(self.h, n=2 * length), n=2 * length)
        return y[..., :length].transpose(1, 2)


def explicit_short_filter():
    torch.manual_seed(5)
    return ExplicitShortFilter().eval(), (torch.randn(1, 64, 8),)
