"""Reference Hyena operator in plain PyTorch (safari standalone semantics, any order >= 2).

Options cover the other published variants: ``channel_layout="vo"`` (safari/hyena-dna ``src/``),
``shift=0.05`` (HyenaDNA standalone/HF), ``modulate``, ``normalized`` and ``use_bias`` (``src/``),
and whether ``z`` and the Sin ``freq`` are trained (parameters) or fixed (buffers).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.stateful.fir import conv_with_cache
from hyena_deploy.stateful.history import HistoryConv
from hyena_deploy.stateful.modal_complex import ComplexModalConv


def fftconv(u: torch.Tensor, k: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Causal long convolution of ``u`` (B, D, L) with ``k`` (D, L) plus the skip ``bias`` (D)."""
    seqlen = u.shape[-1]
    fft_size = 2 * seqlen
    k_f = torch.fft.rfft(k, n=fft_size) / fft_size
    u_f = torch.fft.rfft(u.to(dtype=k.dtype), n=fft_size)
    y = torch.fft.irfft(u_f * k_f, n=fft_size, norm="forward")[..., :seqlen]
    return (y + u * bias.unsqueeze(-1)).to(dtype=u.dtype)


class Sin(nn.Module):
    """``sin(freq * x)`` with a trainable per-feature frequency."""

    def __init__(self, dim: int, w: float = 10.0, train_freq: bool = True) -> None:
        super().__init__()
        freq = w * torch.ones(1, dim)
        if train_freq:
            self.freq = nn.Parameter(freq)
        else:  # a plain attribute in the original code: not in the state dict
            self.register_buffer("freq", freq, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.freq * x)


class PositionalEmbedding(nn.Module):
    """Complex-exponential positional features ``z`` (1, l_max, emb_dim) and time ``t`` (1, l_max, 1)."""

    def __init__(self, emb_dim: int, l_max: int, z_trainable: bool = True) -> None:
        super().__init__()
        t = torch.linspace(0, 1, l_max)[None, :, None]
        bands = (emb_dim - 1) // 2
        t_rescaled = torch.linspace(0, l_max - 1, l_max)[None, :, None]
        w = 2 * math.pi * t_rescaled / l_max
        f = torch.linspace(1e-4, bands - 1, bands)[None, None]
        z = torch.exp(-1j * f * w)
        z = torch.cat([t, z.real, z.imag], dim=-1)
        if z_trainable:  # lr_pos_emb != 0 in the original OptimModule.register
            self.z = nn.Parameter(z)
        else:
            self.register_buffer("z", z)
        self.register_buffer("t", t)

    def forward(self, seqlen: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.z[:, :seqlen], self.t[:, :seqlen]


class ExponentialModulation(nn.Module):
    """Per-channel exponential decay window ``exp(-t |delta|) + shift``."""

    def __init__(self, channels: int, fast_decay_pct: float = 0.3, slow_decay_pct: float = 1.5,
                 target: float = 1e-2, shift: float = 0.0, modulate: bool = True) -> None:
        super().__init__()
        self.shift, self.modulate = shift, modulate
        max_decay = math.log(target) / fast_decay_pct
        min_decay = math.log(target) / slow_decay_pct
        self.register_buffer("deltas", torch.linspace(min_decay, max_decay, channels)[None, None])

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if not self.modulate:
            return x
        return x * (torch.exp(-t * self.deltas.abs()) + self.shift)


class HyenaFilter(nn.Module):
    """Implicit long filter: positional features -> Sin MLP -> decay window, plus the D skip.

    One ``Sin`` instance is shared by every activation of the MLP, as in the original code.
    ``normalized`` divides by the L1 norm over channels (``src/`` only); ``use_bias=False``
    zeroes the D skip (``src/`` ``bias=False``).
    """

    def __init__(self, channels: int, l_max: int, emb_dim: int = 3, filter_order: int = 64,
                 num_inner_mlps: int = 2, w: float = 1.0, shift: float = 0.0, *,
                 modulate: bool = True, normalized: bool = False, use_bias: bool = True,
                 z_trainable: bool = True, train_freq: bool = True) -> None:
        super().__init__()
        self.normalized, self.use_bias = normalized, use_bias
        self.pos_emb = PositionalEmbedding(emb_dim, l_max, z_trainable)
        act = Sin(filter_order, w, train_freq)
        layers: list[nn.Module] = [nn.Linear(emb_dim, filter_order), act]
        for _ in range(num_inner_mlps):
            layers += [nn.Linear(filter_order, filter_order), act]
        layers.append(nn.Linear(filter_order, channels, bias=False))
        self.implicit_filter = nn.Sequential(*layers)
        self.modulation = ExponentialModulation(channels, shift=shift, modulate=modulate)
        self.bias = nn.Parameter(torch.randn(channels))

    def filter(self, seqlen: int) -> torch.Tensor:
        z, t = self.pos_emb(seqlen)
        h = self.modulation(t, self.implicit_filter(z))
        if self.normalized:
            h = h / torch.norm(h, dim=-1, p=1, keepdim=True)
        return h

    def skip(self) -> torch.Tensor:
        """The D-skip weights as used by the convolution."""
        return self.bias if self.use_bias else 0 * self.bias


class HyenaOperator(nn.Module):
    """Hyena operator of order ``order``: ``y = x0 * (h_1 * (x1 * ... (h_{n} * (x_n * v))))``.

    ``channel_layout`` says how the filter's ``(order - 1) * d_model`` output channels (and the
    D skip) split into one filter per step: ``"od"`` = ``'l (o d) -> o d l'`` (standalone code,
    HF port), ``"vo"`` = ``'l (v o) -> o v l'`` (safari and hyena-dna ``src/``). Both agree for
    order 2. Filter options are passed to :class:`HyenaFilter`.
    """

    def __init__(self, d_model: int, l_max: int, order: int = 2, filter_order: int = 64,
                 emb_dim: int = 3, num_inner_mlps: int = 2, w: float = 1.0, shift: float = 0.0,
                 short_filter_order: int = 3, *, channel_layout: str = "od",
                 **filter_options: bool) -> None:
        super().__init__()
        if order < 2:
            raise ValueError("Hyena order must be >= 2")
        if channel_layout not in ("od", "vo"):
            raise ValueError(f"channel_layout must be 'od' or 'vo', not {channel_layout!r}")
        self.d_model, self.l_max, self.order = d_model, l_max, order
        self.channel_layout = channel_layout
        inner = d_model * (order + 1)
        self.in_proj = nn.Linear(d_model, inner)
        self.out_proj = nn.Linear(d_model, d_model)
        self.short_filter = nn.Conv1d(inner, inner, short_filter_order, padding=short_filter_order - 1,
                                      groups=inner)
        self.filter_fn = HyenaFilter(d_model * (order - 1), l_max, emb_dim, filter_order,
                                     num_inner_mlps, w, shift, **filter_options)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        seqlen = u.shape[1]
        l_filter = min(seqlen, self.l_max)
        u = self.in_proj(u).transpose(1, 2)
        uc = self.short_filter(u)[..., :l_filter]
        *x, v = uc.split(self.d_model, dim=1)
        k, bias = self.filters(l_filter)
        for o, x_i in enumerate(reversed(x[1:])):
            v = fftconv(v * x_i, k[o], bias[o])
        y = (v * x[0]).transpose(1, 2)
        return self.out_proj(y)

    def split_channels(self, x: torch.Tensor) -> torch.Tensor:
        """(order - 1, d_model, ...) from the filter's (order - 1) d_model channels (axis 0), per ``channel_layout``."""
        if self.channel_layout == "od":
            return x.reshape(self.order - 1, self.d_model, *x.shape[1:])
        return x.reshape(self.d_model, self.order - 1, *x.shape[1:]).transpose(0, 1)

    def filters(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Long filters (order - 1, d_model, length) and D skips (order - 1, d_model), in the order they are applied."""
        return self.split_channels(self.filter_fn.filter(length)[0].t()), self.split_channels(self.filter_fn.skip())


class HyenaOperatorStep(nn.Module):
    """:class:`HyenaOperator` on a chunk (B, T, d_model) continuing from its states, exact for any T.

    States: the short filter's FIR cache (B, (order + 1) d_model, short_filter_order - 1) and, per
    long convolution, either the modal state (B, d_model, N, 2) when the filter has a modal form
    (``filter_fn.modal_form()``, contract C3: a distilled filter) or else the exact history of its
    input (B, d_model, max_context - 1), the implicit filter evaluated once for ``max_context`` taps.
    """

    def __init__(self, operator: HyenaOperator, max_context: int) -> None:
        super().__init__()
        if not 1 <= max_context <= operator.l_max:
            raise HyenaDeployError(f"max context {max_context} is outside 1..{operator.l_max} (the filter's length)")
        self.operator = operator
        steps = operator.order - 1
        self.modal = callable(getattr(operator.filter_fn, "modal_form", None))
        with torch.no_grad():
            if self.modal:
                _, bias = operator.filters(1)
                poles, residues = (operator.split_channels(x) for x in operator.filter_fn.modal_form())
                convs = [ComplexModalConv(poles[o], residues[o], bias[o]) for o in range(steps)]
            else:
                k, bias = operator.filters(max_context)
                convs = [HistoryConv(k[o], bias[o]) for o in range(steps)]
        self.long_convs = nn.ModuleList(convs)

    def state_shapes(self) -> list[tuple[str, str, tuple[int, ...]]]:
        """(kind, name, shape without batch) of each state, in the order :meth:`forward` takes them."""
        short = self.operator.short_filter
        shapes = [("fir", "conv_state", (short.in_channels, short.kernel_size[0] - 1))]
        d_model, single = self.operator.d_model, len(self.long_convs) == 1
        for o, conv in enumerate(self.long_convs):
            if self.modal:  # one modal state per layer is ONNX Runtime GenAI's ``recurrent_state``
                shapes.append(("modal_complex", "recurrent_state" if single else f"recurrent_state_{o}",
                               (d_model, conv.modes, 2)))
            else:
                shapes.append(("history", f"history_{o}", (d_model, conv.state_length)))
        return shapes

    def forward(self, u: torch.Tensor, fir: torch.Tensor, *long_states: torch.Tensor
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        op = self.operator
        u = op.in_proj(u).transpose(1, 2)
        uc, fir = conv_with_cache(fir, u, op.short_filter.weight)
        uc = uc + op.short_filter.bias[:, None]
        *x, v = uc.split(op.d_model, dim=1)
        states = [fir]
        for conv, state, x_i in zip(self.long_convs, long_states, reversed(x[1:])):
            v, state = conv(v * x_i, state)
            states.append(state)
        return op.out_proj((v * x[0]).transpose(1, 2)), states
