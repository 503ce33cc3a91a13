"""Shared by the StripedHyena and Evo 2 adapters: byte tokens, rotary attention.

``RotaryMHA`` restates flash_attn's ``MHA`` in eval mode (``causal=True``, no KV cache):
``Wqkv`` rows are ``[q (H·d); k (H_kv·d); v (H_kv·d)]``, query head ``i`` reads key/value head
``i // (H / H_kv)``, GPT-NeoX rotary (halves, not interleaved) on q and k with positions
``t / scaling`` in fp32, softmax scale ``d^-1/2``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hyena_deploy.errors import HyenaDeployError

def byte_tokenize(texts: list[str], pad_id: int = 1) -> tuple[torch.Tensor]:
    """UTF-8 bytes as token ids (vortex ``CharLevelTokenizer``), right-padded with ``pad_id`` to the longest."""
    encoded = [list(text.encode("utf-8")) for text in texts]
    length = max((len(e) for e in encoded), default=0)
    return (torch.tensor([e + [pad_id] * (length - len(e)) for e in encoded], dtype=torch.long),)


class RotaryEmbedding(nn.Module):
    """GPT-NeoX rotary embedding; ``inv_freq`` is a persistent buffer, as the checkpoints store it."""

    def __init__(self, dim: int, base: float, scaling: float = 1.0) -> None:
        super().__init__()
        self.scaling = scaling
        self.register_buffer("inv_freq", inv_freq(dim, base))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate ``x`` (B, L, heads, head_dim) by position."""
        positions = torch.arange(x.shape[1], device=x.device, dtype=torch.float32) / self.scaling
        freqs = torch.outer(positions, self.inv_freq.float())[:, None]
        cos, sin = freqs.cos().to(x.dtype), freqs.sin().to(x.dtype)
        first, second = x.chunk(2, dim=-1)
        return torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1)


def inv_freq(dim: int, base: float) -> torch.Tensor:
    """``base^(-2i/dim)`` in fp32, as flash_attn computes it."""
    return 1.0 / (float(base) ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))


class RotaryMHA(nn.Module):
    """Causal multi-head (or grouped-query) self-attention with rotary positions."""

    def __init__(self, dim: int, heads: int, kv_heads: int, qkv_bias: bool, out_bias: bool,
                 rotary_base: float, rotary_scaling: float = 1.0) -> None:
        super().__init__()
        if dim % heads or heads % kv_heads:
            raise HyenaDeployError(f"attention: width {dim}, {heads} heads, {kv_heads} key/value heads do not divide")
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, dim // heads
        self.Wqkv = nn.Linear(dim, (heads + 2 * kv_heads) * self.head_dim, bias=qkv_bias)
        self.out_proj = nn.Linear(dim, dim, bias=out_bias)
        self.rotary_emb = RotaryEmbedding(self.head_dim, rotary_base, rotary_scaling)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        d = self.head_dim
        q, k, v = self.Wqkv(x).split([self.heads * d, self.kv_heads * d, self.kv_heads * d], dim=-1)
        q = self.rotary_emb(q.reshape(batch, length, self.heads, d))
        k = self.rotary_emb(k.reshape(batch, length, self.kv_heads, d))
        v = v.reshape(batch, length, self.kv_heads, d)
        group = self.heads // self.kv_heads
        k, v = k.repeat_interleave(group, dim=2), v.repeat_interleave(group, dim=2)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, self.heads * d))


class StripedHyenaStep(nn.Module):
    """The ``stripedhyena`` package's ``StripedHyena`` on a chunk of token ids (B, T) continuing from its states.

    Reads the package's own modules (``ParallelGatedConvBlock``: ``projections``, ``filter`` with
    ``short_filter_weight``/``bias``, ``poles``, ``residues``, ``D``; ``AttentionBlock``: the
    attention stand-in :class:`RotaryMHA`). States per Hyena block: the FIR cache of the projections
    (B, 3D, short_filter_length - 1) and the complex modal state (B, D, state_size, 2); per attention
    block a rotary KV cache of ``max_context`` positions, plus the model-wide ``position``, last.
    """

    def __init__(self, model: nn.Module, max_context: int) -> None:
        super().__init__()
        from hyena_deploy.stateful.attention import CachedRotaryAttention
        from hyena_deploy.stateful.layout import StateSpec, position_spec
        from hyena_deploy.stateful.modal_complex import ComplexModalConv

        self.model = model
        steps: list[nn.Module] = []
        self.specs: list[StateSpec] = []
        for layer, block in enumerate(model.blocks):
            if hasattr(block, "inner_mha_cls"):
                step = CachedRotaryAttention(block.inner_mha_cls, max_context)
                self.specs += [StateSpec("key", "key", layer, step.state_shape()),
                               StateSpec("value", "value", layer, step.state_shape())]
            else:
                step = ComplexModalConv(*modal_form(block.filter), block.filter.D)
                hidden = block.filter.hidden_size
                taps = block.filter.short_filter_length
                self.specs += [StateSpec("fir", "conv_state", layer, (3 * hidden, taps - 1)),
                               StateSpec("modal_complex", "recurrent_state", layer, (hidden, step.modes, 2))]
            steps.append(step)
        self.steps = nn.ModuleList(steps)
        self.has_position = any(hasattr(block, "inner_mha_cls") for block in model.blocks)
        if self.has_position:
            self.specs.append(position_spec())

    def forward(self, input_ids: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        model = self.model
        states = list(states)
        position = states.pop() if self.has_position else None
        x = model.embedding_layer.embed(input_ids)
        new_states: list[torch.Tensor] = []
        for block, step in zip(model.blocks, self.steps):
            first, second = states[len(new_states):len(new_states) + 2]
            if hasattr(block, "inner_mha_cls"):
                y, first, second = step(block.pre_norm(x), position, first, second)
                x = y + x
            else:
                y, first, second = self._hyena(block, step, x, first, second)
                x = block.out_filter_dense(y) + x
            x = block.mlp(block.post_norm(x)) + x
            new_states += [first, second]
        if model.norm is not None:
            x = model.norm(x)
        logits = model.unembed.unembed(x)
        if self.has_position:
            new_states.append(position + input_ids.shape[1])
        return (logits, *new_states)

    @staticmethod
    def _hyena(block: nn.Module, modal: nn.Module, u: torch.Tensor, fir: torch.Tensor, state: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``ParallelHyenaFilter`` on a chunk: FIR with cache (bias after), gates, complex modal recurrence."""
        from hyena_deploy.stateful.fir import conv_with_cache

        hyena = block.filter
        z, fir = conv_with_cache(fir, block.projections(block.pre_norm(u)).transpose(1, 2), hyena.short_filter_weight)
        if hyena.short_filter_bias is not None:
            z = z + hyena.short_filter_bias[None, :, None]
        dim = hyena.hidden_size
        if hyena.column_split_hyena:
            head = hyena.hidden_size_per_attention_head
            parts = z.reshape(z.shape[0], hyena.num_attention_heads, 3 * head, z.shape[-1]).split(head, dim=2)
            x2, x1, v = (p.reshape(z.shape[0], dim, z.shape[-1]) for p in parts)
        else:
            x2, x1, v = z.split(dim, dim=1)
        y, state = modal(x1 * v, state)
        return (y * x2).transpose(1, 2), fir, state


def modal_form(hyena_filter: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Contract C3 for the package's ``ParallelHyenaFilter`` (a class this project does not own): complex poles
    and residues (D, state_size), repeated to its channels as the package repeats its filter
    (``repeat_interleave(hidden_size // hyena_filter_groups)`` when groups > 1)."""
    poles = torch.view_as_complex(hyena_filter.poles.detach().double()[..., 0, :].contiguous())
    residues = torch.view_as_complex(hyena_filter.residues.detach().double()[..., 0, :].contiguous())
    groups = hyena_filter.hyena_filter_groups
    if groups > 1:
        repeat = hyena_filter.hidden_size // groups
        poles, residues = poles.repeat_interleave(repeat, 0), residues.repeat_interleave(repeat, 0)
    if poles.shape[0] != hyena_filter.hidden_size:
        raise HyenaDeployError(f"StripedHyena filter: {poles.shape[0]} modal systems for {hyena_filter.hidden_size} "
                               "channels (hyena_filter_groups) has no stateful form")
    return poles, residues
