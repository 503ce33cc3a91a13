"""FFT convolutions written the way public code bases write them (used through FILE.py:factory).

Written from the styles of M2 / Monarch Mixer, H3 / S4D, Caduceus, channels-last codes and the
many small ways people pad, crop, normalise and cast around ``torch.fft`` (not copied from any of
them). Each factory returns ``(module, example_inputs)``; ``l_max`` is kept small for tests.
"""

from __future__ import annotations

import math

import torch
from torch import nn

L_MAX = 64


class PositionalMLPFilter(nn.Module):
    """An implicit long filter (channels, L): a Sin MLP over positions with an exponential decay window."""

    def __init__(self, channels: int, hidden: int = 16) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(3, hidden), nn.SiLU(), nn.Linear(hidden, channels))
        self.decay = nn.Parameter(torch.linspace(0.3, 3.0, channels))

    def forward(self, length: int) -> torch.Tensor:
        t = (torch.arange(length, dtype=torch.float32) / L_MAX)[:, None]     # positions of a fixed l_max
        features = torch.cat([t, torch.sin(6.0 * t), torch.cos(6.0 * t)], dim=-1)
        return (self.mlp(features) * torch.exp(-t * self.decay)).transpose(0, 1)


class MonarchMixerSequence(nn.Module):
    """M2-style sequence mixer: (B, L, D) -> heads (B, H, D/H, L), one filter per head broadcast with
    ``k_f.unsqueeze(1)``; ``bidirectional`` adds M2-BERT's ``k_f + conj(k_rev_f)`` (two-sided)."""

    def __init__(self, width: int = 16, heads: int = 4, bidirectional: bool = False) -> None:
        super().__init__()
        self.heads, self.bidirectional = heads, bidirectional
        self.in_linear = nn.Linear(width, 3 * width)
        self.filter = PositionalMLPFilter(heads)
        self.filter_rev = PositionalMLPFilter(heads) if bidirectional else None
        self.bias = nn.Parameter(torch.randn(heads, 1, 1))
        self.out_linear = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        x1, x2, v = self.in_linear(x).transpose(1, 2).chunk(3, dim=1)
        u = (x1 * v).reshape(batch, self.heads, width // self.heads, length)
        n = 2 * length
        k_f = torch.fft.rfft(self.filter(length), n=n) / n
        if self.filter_rev is not None:
            k_f = k_f + torch.fft.rfft(self.filter_rev(length), n=n).conj() / n
        u_f = torch.fft.rfft(u.to(torch.float32), n=n)
        y = torch.fft.irfft(u_f * k_f.unsqueeze(1), n=n, norm="forward")[..., :length]
        y = (y + u * self.bias).reshape(batch, width, length)
        return self.out_linear((y * x2).transpose(1, 2))


def m2_mixer():
    torch.manual_seed(11)
    return MonarchMixerSequence().eval(), (torch.randn(1, 45, 16),)


def m2_bert_bidirectional():
    torch.manual_seed(12)
    return MonarchMixerSequence(bidirectional=True).eval(), (torch.randn(1, 45, 16),)


class S4DRealKernel(nn.Module):
    """S4D-Lin kernel computed in real arithmetic: K[h, t] = sum_n 2 Re(C_n B_n exp(dt A_n t))."""

    def __init__(self, channels: int, state: int = 8) -> None:
        super().__init__()
        self.log_dt = nn.Parameter(torch.linspace(math.log(1e-2), math.log(1e-1), channels))
        self.log_a_re = nn.Parameter(torch.log(0.5 * torch.ones(channels, state)))
        self.a_im = nn.Parameter(math.pi * torch.arange(state).float().repeat(channels, 1))
        self.c_re = nn.Parameter(torch.randn(channels, state) * 0.5)
        self.c_im = nn.Parameter(torch.randn(channels, state) * 0.5)

    def forward(self, length: int) -> torch.Tensor:
        dt = torch.exp(self.log_dt)[:, None]
        t = torch.arange(length, dtype=torch.float32)
        decay = torch.exp(-(torch.exp(self.log_a_re) * dt)[..., None] * t)      # (H, N, L)
        phase = (self.a_im * dt)[..., None] * t
        kernel = self.c_re[..., None] * torch.cos(phase) - self.c_im[..., None] * torch.sin(phase)
        return 2 * (decay * kernel).sum(dim=1) * dt                                 # (H, L)


class H3Block(nn.Module):
    """H3-style: q, k, v projections; a shift SSM (short explicit filter) on k; a diagonal SSM on k * v."""

    def __init__(self, width: int = 12, shift_taps: int = 4) -> None:
        super().__init__()
        self.qkv = nn.Linear(width, 3 * width)
        self.shift = nn.Parameter(torch.randn(width, shift_taps) / shift_taps)
        self.ssm = S4DRealKernel(width)
        self.d = nn.Parameter(torch.randn(width))
        self.out = nn.Linear(width, width)

    @staticmethod
    def fftconv(u: torch.Tensor, k: torch.Tensor, d: torch.Tensor | None = None) -> torch.Tensor:
        length = u.shape[-1]
        n = 2 * length
        y = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(k, n=n), n=n)[..., :length]
        return y if d is None else y + u * d[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).transpose(1, 2).chunk(3, dim=1)
        length = x.shape[1]
        k = self.fftconv(k, self.shift)
        y = self.fftconv(k * v, self.ssm(length), self.d)
        return self.out((q * y).transpose(1, 2))


def h3_real_kernel():
    torch.manual_seed(13)
    return H3Block().eval(), (torch.randn(1, 45, 12),)


class CaduceusBidirectional(nn.Module):
    """Caduceus-style: one causal long conv forward, another on the flipped sequence, flipped back."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.proj = nn.Linear(width, width)
        self.fwd = PositionalMLPFilter(width)
        self.bwd = PositionalMLPFilter(width)

    @staticmethod
    def conv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        length = u.shape[-1]
        return torch.fft.irfft(torch.fft.rfft(u, n=2 * length) * torch.fft.rfft(k, n=2 * length), n=2 * length)[..., :length]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.proj(x).transpose(1, 2)
        length = u.shape[-1]
        y = self.conv(u, self.fwd(length)) + self.conv(u.flip(-1), self.bwd(length)).flip(-1)
        return y.transpose(1, 2)


def caduceus_bidirectional():
    torch.manual_seed(14)
    return CaduceusBidirectional().eval(), (torch.randn(1, 45, 8),)


class ChannelsLast(nn.Module):
    """(B, L, C) throughout: FFTs along dim=1, the filter (L, C), ``norm="ortho"`` on every transform."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.l_max = L_MAX
        self.proj = nn.Linear(width, width)
        self.filter = PositionalMLPFilter(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.proj(x)
        length = u.shape[1]
        n = 2 * length
        k = self.filter(length).transpose(0, 1)                                   # (L, C)
        y = torch.fft.irfft(torch.fft.rfft(u, n=n, dim=1, norm="ortho") * torch.fft.rfft(k, n=n, dim=0),
                            n=n, dim=1, norm="ortho")
        return torch.nn.functional.gelu(y[:, :length] + u)


def channels_last():
    torch.manual_seed(15)
    return ChannelsLast().eval(), (torch.randn(1, 45, 8),)


class CatPadSplitCrop(nn.Module):
    """Zero padding by ``torch.cat``, ``norm="forward"`` rfft, crop by ``.split``, a reshape after the crop."""

    def __init__(self, width: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.proj = nn.Linear(width, width)
        self.filter = PositionalMLPFilter(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.proj(x).transpose(1, 2)
        batch, width, length = u.shape
        padded = torch.cat([u, torch.zeros_like(u)], dim=-1)
        u_f = torch.fft.rfft(padded, norm="forward")
        k_f = torch.fft.rfft(self.filter(length), n=2 * length)
        y = torch.fft.irfft(u_f * k_f, n=2 * length, norm="forward")
        y, _ = y.split([length, length], dim=-1)
        y = y.reshape(batch, self.heads, width // self.heads, length)
        return y.flatten(1, 2).transpose(1, 2) * 0.5


def cat_pad_split_crop():
    torch.manual_seed(16)
    return CatPadSplitCrop().eval(), (torch.randn(1, 45, 8),)


class FilterBank(nn.Module):
    """Several long filters per channel: ``u.unsqueeze(1)`` broadcast against a bank (F, C, L)."""

    def __init__(self, width: int = 6, bank: int = 3) -> None:
        super().__init__()
        self.bank = bank
        self.proj = nn.Linear(width, width)
        self.filters = nn.ModuleList(PositionalMLPFilter(width) for _ in range(bank))
        self.mix = nn.Linear(bank * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.proj(x).transpose(1, 2)                                           # (B, C, L)
        length = u.shape[-1]
        n = 2 * length
        k = torch.stack([f(length) for f in self.filters])                         # (F, C, L)
        y = torch.fft.irfft(torch.fft.rfft(u.unsqueeze(1), n=n) * torch.fft.rfft(k, n=n), n=n)[..., :length]
        return self.mix(y.flatten(1, 2).transpose(1, 2))


def filter_bank():
    torch.manual_seed(17)
    return FilterBank().eval(), (torch.randn(1, 45, 6),)


class IntegerSignal(nn.Module):
    """The token ids themselves, cast to float, are the signal (a long smoothing of a count sequence)."""

    def __init__(self, vocab: int = 11) -> None:
        super().__init__()
        self.filter = PositionalMLPFilter(1)
        self.embed = nn.Embedding(vocab, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[1]
        u = ids.float().unsqueeze(1)                                               # (B, 1, L)
        y = torch.fft.irfft(torch.fft.rfft(u, n=2 * length) * torch.fft.rfft(self.filter(length), n=2 * length),
                            n=2 * length)[..., :length]
        return self.embed(ids) * y.transpose(1, 2)


def integer_signal():
    torch.manual_seed(18)
    return IntegerSignal().eval(), (torch.randint(0, 11, (1, 45)),)


class RunningMean(nn.Module):
    """``conv(x, ones) / arange``: a causal LTI site followed by a time-varying normalisation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.transpose(1, 2)
        length = u.shape[-1]
        n = 2 * length
        ones = torch.ones(u.shape[1], length)
        total = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(ones, n=n), n=n)[..., :length]
        return (total / torch.arange(1, length + 1, dtype=torch.float32)).transpose(1, 2)


def running_mean():
    return RunningMean().eval(), (torch.randn(1, 45, 5),)


class SignalDependentGain(nn.Module):
    """A filter spectrum divided by the signal's clamped RMS: not a fixed convolution, never to be folded."""

    def __init__(self, width: int = 6) -> None:
        super().__init__()
        self.proj = nn.Linear(width, width)
        self.filter = PositionalMLPFilter(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.proj(x).transpose(1, 2)
        length = u.shape[-1]
        n = 2 * length
        rms = torch.sqrt(torch.mean(u * u, dim=(1, 2), keepdim=True))
        spectrum = torch.fft.rfft(self.filter(length), n=n) / torch.clamp(rms, min=2.0)
        return torch.fft.irfft(torch.fft.rfft(u, n=n) * spectrum, n=n)[..., :length].transpose(1, 2)


def signal_dependent_gain():
    torch.manual_seed(19)
    return SignalDependentGain().eval(), (torch.randn(1, 45, 6),)


class CentredSame(nn.Module):
    """'same' convolution with an explicit centred 9-tap filter: the crop starts at K // 2 (two-sided)."""

    def __init__(self, width: int = 6, taps: int = 9) -> None:
        super().__init__()
        self.k = nn.Parameter(torch.randn(width, taps) / taps)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.proj(x).transpose(1, 2)
        length, taps = u.shape[-1], self.k.shape[-1]
        n = length + taps
        y = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(self.k, n=n), n=n)
        return y[..., taps // 2:taps // 2 + length].transpose(1, 2)


def centred_same():
    torch.manual_seed(20)
    return CentredSame().eval(), (torch.randn(1, 45, 6),)


class Circular(nn.Module):
    """A circular long convolution: ``n=L``, no padding (two-sided once written as a linear filter)."""

    def __init__(self, width: int = 6) -> None:
        super().__init__()
        self.proj = nn.Linear(width, width)
        self.filter = PositionalMLPFilter(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.proj(x).transpose(1, 2)
        length = u.shape[-1]
        y = torch.fft.irfft(torch.fft.rfft(u) * torch.fft.rfft(self.filter(length)), n=length)
        return y.transpose(1, 2)


def circular():
    torch.manual_seed(21)
    return Circular().eval(), (torch.randn(1, 45, 6),)


STATIC_STYLES = ("m2_mixer", "m2_bert_bidirectional", "h3_real_kernel", "caduceus_bidirectional", "channels_last",
                 "cat_pad_split_crop", "filter_bank", "integer_signal", "running_mean", "centred_same", "circular")
