"""Hyena-style models whose filters are built in complex arithmetic (used through FILE.py:factory).

Written for these tests in the styles of public code bases, not with hyena_deploy's helpers:
an S4D-style diagonal state-space kernel (``1j * A``, complex ``exp`` and ``einsum`` over a
Vandermonde matrix), an H3-style block (shift + diagonal SSM kernels, filter spectrum divided by
the FFT size and ``irfft(norm="forward")``), an M2-style multi-head path whose complex spectrum is
broadcast with ``k_f.unsqueeze(1)`` against a 4-D (B, H, D, L) signal, and the unmodified
``stripedhyena`` package model (its modal filter takes the complex log of its poles), and layout
ops on a signal's complex spectrum. At the end,
models that must be refused in one line (an untranslatable complex op on the signal path, a model
failing in PyTorch past its table, NaN weights) and factories taking ``seq_len``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class DiagonalSSMKernel(nn.Module):
    """K[h, l] = 2 Re Σ_n C[h, n] (exp(dt·A[h, n]) - 1) / A[h, n] · exp(dt·A[h, n] · l)  (ZOH, S4D-Lin)."""

    def __init__(self, channels: int, state: int = 16, dt_min: float = 1e-3, dt_max: float = 1e-1) -> None:
        super().__init__()
        log_dt = torch.rand(channels) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt)
        self.c = nn.Parameter(torch.view_as_real(torch.randn(channels, state, dtype=torch.cfloat) * 0.5))
        self.log_a_real = nn.Parameter(torch.log(0.5 * torch.ones(channels, state)))
        self.register_buffer("a_imag", math.pi * torch.arange(state, dtype=torch.float32).repeat(channels, 1))

    def forward(self, length: int) -> torch.Tensor:
        dt = torch.exp(self.log_dt)
        a = -torch.exp(self.log_a_real) + 1j * self.a_imag
        dt_a = a * dt[:, None]
        vandermonde = torch.exp(dt_a.unsqueeze(-1) * torch.arange(length, device=a.device))
        c = torch.view_as_complex(self.c) * (torch.exp(dt_a) - 1.0) / a
        return 2 * torch.einsum("hn,hnl->hl", c, vandermonde).real


class S4DLayer(nn.Module):
    """(B, H, L) -> (B, H, L): FFT convolution with the SSM kernel, D skip, GELU, 1x1 output mix."""

    def __init__(self, channels: int, state: int = 16) -> None:
        super().__init__()
        self.kernel = DiagonalSSMKernel(channels, state)
        self.d = nn.Parameter(torch.randn(channels))
        self.mix = nn.Conv1d(channels, 2 * channels, kernel_size=1)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        length = u.size(-1)
        k_f = torch.fft.rfft(self.kernel(length), n=2 * length)
        u_f = torch.fft.rfft(u, n=2 * length)
        y = torch.fft.irfft(u_f * k_f, n=2 * length)[..., :length]
        y = nn.functional.gelu(y + u * self.d[:, None])
        return nn.functional.glu(self.mix(y), dim=-2)


class S4DModel(nn.Module):
    """Token ids (B, L) -> logits (B, L, V) with two S4D layers in the (B, H, L) layout."""

    def __init__(self, vocab: int = 40, channels: int = 16, depth: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, channels)
        self.layers = nn.ModuleList(S4DLayer(channels) for _ in range(depth))
        self.norms = nn.ModuleList(nn.LayerNorm(channels) for _ in range(depth))
        self.head = nn.Linear(channels, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        for norm, layer in zip(self.norms, self.layers):
            x = x + layer(norm(x).transpose(-1, -2)).transpose(-1, -2)
        return self.head(x)


def h3_fftconv(u: torch.Tensor, k: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """u (B, H, L) or (B, H, D, L), k (H, L), d (H,) or (H, D): spectrum pre-divided by N, inverse without 1/N."""
    length = u.shape[-1]
    n = 2 * length
    k_f = torch.fft.rfft(k, n=n) / n
    u_f = torch.fft.rfft(u.to(dtype=k.dtype), n=n)
    if u.dim() > 3:
        k_f = k_f.unsqueeze(1)
    y = torch.fft.irfft(u_f * k_f, n=n, norm="forward")[..., :length]
    return (y + u * d.unsqueeze(-1)).to(dtype=u.dtype)


class H3Block(nn.Module):
    """H3: q, k, v projections; shift SSM on k (a learned 4-tap kernel), diagonal SSM on k·v, times q."""

    def __init__(self, width: int, state: int = 8) -> None:
        super().__init__()
        self.qkv = nn.Linear(width, 3 * width)
        self.shift = nn.Parameter(torch.randn(width, 4) / 2)
        self.diag = DiagonalSSMKernel(width, state)
        self.d_shift, self.d_diag = nn.Parameter(torch.randn(width)), nn.Parameter(torch.randn(width))
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, W)
        length = x.shape[1]
        q, k, v = self.qkv(x).transpose(1, 2).chunk(3, dim=1)
        shift_k = nn.functional.pad(self.shift, (0, length - 4)) if length >= 4 else self.shift[:, :length]
        k = h3_fftconv(k, shift_k, self.d_shift)
        kv = h3_fftconv(k * v, self.diag(length), self.d_diag)
        return x + self.out((q * kv).transpose(1, 2))


class MultiHeadM2Block(nn.Module):
    """M2-style multi-head long conv: (B, L, W) viewed as (B, H, D, L); one complex spectrum per head."""

    def __init__(self, width: int, heads: int, state: int = 8) -> None:
        super().__init__()
        self.heads = heads
        self.inp = nn.Linear(width, 2 * width)
        self.kernel = DiagonalSSMKernel(heads, state)
        self.d = nn.Parameter(torch.randn(heads, width // heads))
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        u, gate = self.inp(x).chunk(2, dim=-1)
        u = u.transpose(1, 2).reshape(batch, self.heads, width // self.heads, length)
        y = h3_fftconv(u, self.kernel(length), self.d)
        y = y.reshape(batch, width, length).transpose(1, 2)
        return x + self.out(y * torch.sigmoid(gate))


class ComplexLM(nn.Module):
    """Token ids -> logits: an H3 block then an M2 multi-head block."""

    def __init__(self, vocab: int = 32, width: int = 16, heads: int = 4, l_max: int = 256) -> None:
        super().__init__()
        self.l_max = l_max
        self.embed = nn.Embedding(vocab, width)
        self.h3, self.m2 = H3Block(width), MultiHeadM2Block(width, heads)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.m2(self.h3(self.embed(ids)))))


def s4d():
    """S4D LM, declared maximum 256 tokens (``l_max``)."""
    torch.manual_seed(0)
    model = S4DModel()
    model.l_max = 256
    return model


def h3_m2():
    """H3 block then an M2 multi-head block, ``l_max`` 256."""
    torch.manual_seed(1)
    return ComplexLM()


def m2_operator():
    """The M2 multi-head block alone on float inputs (B, L, W): the 4-D complex spectrum path."""
    torch.manual_seed(2)
    return MultiHeadM2Block(16, 4), torch.randn(2, 48, 16)


STRIPEDHYENA_CONFIG = {
    "vocab_size": 64, "hidden_size": 32, "num_filters": 32, "num_layers": 2, "hyena_layer_idxs": [0, 1],
    "attn_layer_idxs": [], "num_attention_heads": 4, "proj_groups": 1, "short_filter_length": 3,
    "short_filter_bias": True, "state_size": 4, "hyena_filter_groups": 1, "column_split_hyena": True,
    "column_split": False, "inner_mlp_size": 64, "eps": 1e-5, "tie_embeddings": True, "final_norm": True,
    "max_seqlen": 256, "max_batch_size": 1, "model_parallel_size": 1, "pipe_parallel_size": 1,
    "use_flash_attn": False, "use_flash_rmsnorm": False, "use_flash_depthwise": False, "use_flashfft": False,
    "inference_mode": False, "prefill_style": "fft", "mlp_activation": "gelu", "print_activations": False,
}


class StripedHyenaLogits(nn.Module):
    """The package's ``StripedHyena`` as ids -> logits (its forward returns (logits, state))."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(ids)[0]


def stripedhyena():
    """The ``stripedhyena`` package's model, unmodified: complex modal filter, fp32 on the CPU."""
    from stripedhyena.model import StripedHyena
    from stripedhyena.utils import dotdict

    torch.manual_seed(3)
    model = StripedHyena(dotdict(STRIPEDHYENA_CONFIG)).float()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("poles"):  # stable poles r e^{jθ}, r in [0.5, 0.95]: filters tens of steps long
                radius = 0.5 + 0.45 * torch.rand(param.shape[:-1])
                angle = 0.5 * torch.randn(param.shape[:-1])
                param.copy_(torch.stack([radius * angle.cos(), radius * angle.sin()], dim=-1))
            elif name.endswith("residues"):
                param.copy_(0.1 * torch.randn(param.shape))
            else:
                param.add_(0.05 * torch.randn(param.shape))
    return StripedHyenaLogits(model).eval(), torch.randint(0, 64, (1, 64))


class SignalSpectrumExp(nn.Module):
    """A complex exp of the signal's spectrum (no ONNX translation, not a convolution): refused, op and module named."""

    def __init__(self) -> None:
        super().__init__()
        self.k = nn.Parameter(torch.randn(8, 32) / 8)

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # (B, 8, L)
        n = 2 * u.shape[-1]
        u_f = torch.exp(1e-3 * torch.fft.rfft(u, n=n))
        return torch.fft.irfft(u_f * torch.fft.rfft(self.k, n=n), n=n)[..., :u.shape[-1]]


class SpectrumLayouts(nn.Module):
    """Layout ops on the signal's complex spectrum, as multi-head code writes them: a filter bank
    through ``unsqueeze``/``expand``, per-head ``chunk`` and ``select``, ``conj`` round trips."""

    def __init__(self, channels: int = 8, taps: int = 24) -> None:
        super().__init__()
        self.k = nn.Parameter(torch.randn(2, channels, taps) / taps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, C)
        u = x.transpose(1, 2)
        n = u.shape[-1] + self.k.shape[-1]  # long enough for a linear (not circular) convolution at any L
        u_f = torch.fft.rfft(u, n=n)
        k_f = torch.fft.rfft(self.k, n=n)  # (2, C, F)
        bank = u_f.unsqueeze(1).expand(-1, 2, -1, -1) * k_f  # (B, 2, C, F)
        heads = [torch.cat([a, b], dim=1) for a, b in [bank[:, j].chunk(2, dim=1) for j in range(2)]]
        y_f = (heads[0].conj() + heads[1].conj()).conj()
        return torch.fft.irfft(y_f, n=n)[..., :u.shape[-1]].transpose(1, 2)


class Blocks(nn.Module):
    """``blocks.0.filter`` wrapper, channels last outside."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Module()])
        self.blocks[0].filter = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks[0].filter(x.transpose(1, 2)).transpose(1, 2)


class PositionTable(nn.Module):
    """A learned position table of 100 rows: runs up to L=100 only (nothing declares it)."""

    def __init__(self, length: int = 100) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(1, length, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.table[:, :x.shape[1]]


def untranslatable():
    return Blocks(SignalSpectrumExp()), torch.randn(1, 32, 8)


def spectrum_layouts():
    torch.manual_seed(4)
    return SpectrumLayouts(), torch.randn(2, 40, 8)


def short_table():
    return PositionTable(), torch.randn(1, 32, 8)


def nan_weights():
    model = PositionTable()
    with torch.no_grad():
        model.table[0, 3, 1] = float("nan")
    return model, torch.randn(1, 32, 8)


def sized(seq_len: int = 64):
    """A factory taking the export length: its table is exactly ``seq_len`` rows."""
    return PositionTable(seq_len), torch.randn(1, min(seq_len, 32), 8)


def sized_required(seq_len: int):
    return PositionTable(seq_len), torch.randn(1, seq_len, 8)


def raises_multiline():
    raise ValueError("checkpoint missing\n  (a second line a one-line error must not show)")


class BranchesOnValue(nn.Module):
    """Python control flow on a tensor's value: torch.export cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.lin(x)
        return x


def branches_on_value():
    return BranchesOnValue(), torch.randn(1, 16, 8)


class GuardedKernel(nn.Module):
    """The S4D kernel computed inside ``torch.no_grad()`` and an autocast-disabled block (a
    higher-order op in the exported program) before an FFT convolution, channels last outside."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.kernel = DiagonalSSMKernel(channels, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.transpose(1, 2)
        length = u.shape[-1]
        with torch.no_grad(), torch.autocast("cpu", enabled=False):
            k_f = torch.fft.rfft(self.kernel(length), n=2 * length)
        return torch.fft.irfft(torch.fft.rfft(u, n=2 * length) * k_f, n=2 * length)[..., :length].transpose(1, 2)


def guarded_kernel():
    torch.manual_seed(5)
    return GuardedKernel(), torch.randn(2, 40, 8)
