"""Evo 2 (StripedHyena 2, vortex inference code) in plain PyTorch, fp32, stateless forward.

Module and parameter names follow vortex's ``StripedHyena.state_dict()``. Semantics restated from
``vortex/model/{model,engine,layers}.py``:

- featurizer: depthwise causal conv of the ``3D`` projections with ``short_filter_weight``
  (cross-correlation, ``padding = k - 1``, cut to L, bias added after if any); ``interleave``
  regroups ``[z[0::3], z[1::3], z[2::3]]``; split into ``x2, x1, v`` (column split by attention
  head when ``column_split_hyena``), ``x1, x2`` swapped when ``hyena_flip_x1x2``;
- explicit filters ``h`` (G, 1, taps), repeated ``D / G`` times per group: with fewer than 128 taps
  (HCS) ``conv1d`` cross-correlation, no ``D``; with 128 or more (HCM) ``h`` is a true convolution
  filter cut to L and run by FFT with the ``D`` skip;
- HCL: one real modal system per channel (vortex ignores ``hcl_filter_groups``),
  ``h[d, t] = Σ_n residues[d, n] exp(log_poles[d, n] t)``, FFT convolution with ``D`` skip;
- output ``x2 ⊙ y``; RMSNorm with eps added to the RMS; MLPs ``l3(act(l1 z) ⊙ l2 z)`` where
  ``evo2_style_activations`` makes every layer but 0 bilinear (identity ``act``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.models.hyena import fftconv
from hyena_deploy.models.striped import RotaryMHA
from hyena_deploy.stateful.attention import CachedRotaryAttention
from hyena_deploy.stateful.fir import conv_with_cache
from hyena_deploy.stateful.history import HistoryConv
from hyena_deploy.stateful.layout import StateSpec, position_spec
from hyena_deploy.stateful.modal import RealModalConv

LONG_EXPLICIT_TAPS = 128  # vortex: explicit filters this long run by FFT and carry a D skip


@dataclass(frozen=True)
class Evo2Config:
    """The vortex config fields the forward depends on, with vortex's defaults for absent ones."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_attention_heads: int
    layer_kinds: tuple[str, ...]  # "hcs", "hcm", "hcl" or "attn" per block
    hcs_filter_length: int
    hcs_filter_groups: int
    hcm_filter_length: int
    hcm_filter_groups: int
    short_filter_length: int
    short_filter_bias: bool
    state_size: int
    eps: float
    inner_mlp_size: int
    mlp_activation: str
    evo2_style_activations: bool
    interleave: bool
    column_split_hyena: bool
    hyena_flip_x1x2: bool
    projection_bias: bool
    hyena_out_proj_bias: bool
    qkv_proj_bias: bool
    mha_out_proj_bias: bool
    proj_groups: int
    rotary_emb_base: float
    rotary_scaling: float
    tie_embeddings: bool
    final_norm: bool

    @classmethod
    def from_vortex(cls, cfg: dict) -> Evo2Config:
        """Read a vortex config dict (the ``.yml`` as loaded); raises on unsupported settings."""
        missing = [k for k in ("vocab_size", "hidden_size", "num_layers", "num_attention_heads", "state_size", "eps",
                               "short_filter_length") if cfg.get(k) is None]
        if missing:
            raise HyenaDeployError(f"Evo 2 config lacks {', '.join(missing)}")
        for key in ("smeared_gqa", "long_fir_threshold", "use_flash_depthwise"):
            if cfg.get(key):
                raise HyenaDeployError(f"Evo 2 config: {key} is not supported")
        kinds = []
        for index in range(cfg["num_layers"]):
            kind = [k for k in ("attn", "hcl", "hcm", "hcs") if index in (cfg.get(f"{k}_layer_idxs") or ())]
            if not kind:
                raise HyenaDeployError(f"Evo 2 config: layer {index} is in no *_layer_idxs list")
            kinds.append(kind[0])
        multiple = cfg.get("inner_size_multiple_of", 64) * (cfg.get("model_parallel_size") or 1)
        inner = cfg.get("inner_mlp_size") or multiple * -(-int(2 * cfg["hidden_size"] * 4 / 3) // multiple)
        scaling = cfg.get("rotary_emb_scaling_factor", 1.0) if cfg.get("use_interpolated_rotary_pos_emb") else 1.0
        return cls(
            vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"], num_layers=cfg["num_layers"],
            num_attention_heads=cfg["num_attention_heads"], layer_kinds=tuple(kinds),
            hcs_filter_length=cfg.get("hcs_filter_length") or 0, hcs_filter_groups=cfg.get("hcs_filter_groups") or 1,
            hcm_filter_length=cfg.get("hcm_filter_length") or 0, hcm_filter_groups=cfg.get("hcm_filter_groups") or 1,
            short_filter_length=cfg["short_filter_length"], short_filter_bias=bool(cfg.get("short_filter_bias")),
            state_size=cfg["state_size"], eps=float(cfg["eps"]), inner_mlp_size=inner,
            mlp_activation=cfg.get("mlp_activation", "gelu"),
            evo2_style_activations=bool(cfg.get("evo2_style_activations", False)),
            interleave=bool(cfg.get("interleave")), column_split_hyena=bool(cfg.get("column_split_hyena", True)),
            hyena_flip_x1x2=bool(cfg.get("hyena_flip_x1x2", False)),
            projection_bias=bool(cfg.get("qkv_proj_bias")), hyena_out_proj_bias=bool(cfg.get("hyena_out_proj_bias")),
            qkv_proj_bias=bool(cfg.get("qkv_proj_bias", True)),
            mha_out_proj_bias=bool(cfg.get("mha_out_proj_bias", True)),
            proj_groups=cfg.get("proj_groups", 1), rotary_emb_base=float(cfg.get("rotary_emb_base", 1000000)),
            rotary_scaling=float(scaling), tie_embeddings=bool(cfg.get("tie_embeddings")),
            final_norm=bool(cfg.get("final_norm", True)))


class RMSNorm(nn.Module):
    """``scale ⊙ x / (‖x‖₂ · D^-1/2 + eps)``: eps is added to the RMS, outside the square root."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * (x / (x.norm(2, dim=-1, keepdim=True) * x.shape[-1] ** -0.5 + self.eps))


class GatedMLP(nn.Module):
    """``l3(act(l1 z) ⊙ l2 z)`` without biases; ``act=None`` is the bilinear form."""

    def __init__(self, dim: int, inner: int, act: str | None) -> None:
        super().__init__()
        if act not in (None, "gelu", "silu"):
            raise HyenaDeployError(f"Evo 2 config: mlp_activation {act!r} is not gelu or silu")
        self.act = {None: nn.Identity(), "gelu": nn.GELU(), "silu": nn.SiLU()}[act]
        self.l1, self.l2 = nn.Linear(dim, inner, bias=False), nn.Linear(dim, inner, bias=False)
        self.l3 = nn.Linear(inner, dim, bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.l3(self.act(self.l1(z)) * self.l2(z))


class HyenaCascade(nn.Module):
    """Featurizer, gates and one long operator (HCS, HCM or HCL): (B, L, 3D) -> (B, L, D)."""

    def __init__(self, cfg: Evo2Config, kind: str) -> None:
        super().__init__()
        dim = cfg.hidden_size
        self.cfg, self.kind = cfg, kind
        self.short_filter_weight = nn.Parameter(torch.zeros(3 * dim, 1, cfg.short_filter_length))
        self.short_filter_bias = nn.Parameter(torch.zeros(3 * dim)) if cfg.short_filter_bias else None
        if kind == "hcl":
            self.log_poles = nn.Parameter(torch.zeros(dim, cfg.state_size, 1))
            self.residues = nn.Parameter(torch.zeros(dim, cfg.state_size))
            self.D = nn.Parameter(torch.zeros(dim))
            return
        taps, groups = (cfg.hcs_filter_length, cfg.hcs_filter_groups) if kind == "hcs" else \
            (cfg.hcm_filter_length, cfg.hcm_filter_groups)
        if taps < 1 or dim % groups:
            raise HyenaDeployError(f"Evo 2 config: {kind} filter length {taps}, groups {groups} do not fit width {dim}")
        self.h = nn.Parameter(torch.zeros(groups, 1, taps))
        self.D = nn.Parameter(torch.zeros(dim)) if taps >= LONG_EXPLICIT_TAPS else None

    def gates(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x2, x1, v`` (B, D, L) from the projections (B, L, 3D)."""
        length, dim = z.shape[1], self.cfg.hidden_size
        taps = self.short_filter_weight.shape[-1]
        z = F.conv1d(z.transpose(1, 2), self.short_filter_weight, padding=taps - 1, groups=3 * dim)[..., :length]
        return self.split_features(z)

    def split_features(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x2, x1, v`` (B, D, L) from the featurizer's output (B, 3D, L), bias not yet added."""
        length, dim = z.shape[-1], self.cfg.hidden_size
        if self.short_filter_bias is not None:
            z = z + self.short_filter_bias[:, None]
        if self.cfg.interleave:
            z = torch.cat([z[:, 0::3], z[:, 1::3], z[:, 2::3]], dim=1)
        if self.cfg.column_split_hyena:
            heads = self.cfg.num_attention_heads
            parts = z.reshape(z.shape[0], heads, 3 * dim // heads, length).chunk(3, dim=2)
            x2, x1, v = (p.reshape(z.shape[0], dim, length) for p in parts)
        else:
            x2, x1, v = z.split(dim, dim=1)
        return (x1, x2, v) if self.cfg.hyena_flip_x1x2 else (x2, x1, v)

    def modal_form(self) -> tuple[torch.Tensor, torch.Tensor]:
        """HCL: (poles, residues), complex (D, state_size), real poles ``exp(log_poles)`` (contract C3)."""
        if self.kind != "hcl":
            raise HyenaDeployError(f"Evo 2 {self.kind.upper()} filters are explicit FIRs: no modal form")
        poles = torch.exp(self.log_poles.detach().double()[..., 0])
        return torch.complex(poles, torch.zeros_like(poles)), torch.complex(
            self.residues.detach().double(), torch.zeros_like(poles))

    def long_filter(self, length: int) -> torch.Tensor:
        """The HCL modal filter (D, length)."""
        t = torch.arange(length, device=self.log_poles.device, dtype=torch.float32)
        return (self.residues[..., None] * torch.exp(self.log_poles * t)).sum(1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x2, x1, v = self.gates(z)
        x1v = x1 * v
        length = x1v.shape[-1]
        if self.kind == "hcl":
            y = fftconv(x1v, self.long_filter(length), self.D)
        else:
            h = self.h.repeat_interleave(self.cfg.hidden_size // self.h.shape[0], dim=0)
            if self.D is not None:
                y = fftconv(x1v, h[:, 0, :length], self.D)
            else:
                y = F.conv1d(x1v, h, padding=h.shape[-1] - 1, groups=self.cfg.hidden_size)[..., :length]
        return (x2 * y).transpose(1, 2)


def _mlp(cfg: Evo2Config, index: int) -> GatedMLP:
    act = None if cfg.evo2_style_activations and index > 0 else cfg.mlp_activation
    return GatedMLP(cfg.hidden_size, cfg.inner_mlp_size, act)


class HyenaBlock(nn.Module):
    """``z = u + dense(filter(proj(norm(u))))``, then ``z + mlp(norm(z))``."""

    def __init__(self, cfg: Evo2Config, index: int) -> None:
        super().__init__()
        dim = cfg.hidden_size
        self.pre_norm, self.post_norm = RMSNorm(dim, cfg.eps), RMSNorm(dim, cfg.eps)
        self.projections = nn.Linear(dim, 3 * dim, bias=cfg.projection_bias)
        self.filter = HyenaCascade(cfg, cfg.layer_kinds[index])
        self.out_filter_dense = nn.Linear(dim, dim, bias=cfg.hyena_out_proj_bias)
        self.mlp = _mlp(cfg, index)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        z = self.out_filter_dense(self.filter(self.projections(self.pre_norm(u)))) + u
        return self.mlp(self.post_norm(z)) + z


class AttentionBlock(nn.Module):
    """``z = u + mha(norm(u))``, then ``z + mlp(norm(z))``."""

    def __init__(self, cfg: Evo2Config, index: int) -> None:
        super().__init__()
        dim = cfg.hidden_size
        self.pre_norm, self.post_norm = RMSNorm(dim, cfg.eps), RMSNorm(dim, cfg.eps)
        self.inner_mha_cls = RotaryMHA(dim, cfg.num_attention_heads, cfg.num_attention_heads // cfg.proj_groups,
                                       cfg.qkv_proj_bias, cfg.mha_out_proj_bias, cfg.rotary_emb_base,
                                       cfg.rotary_scaling)
        self.mlp = _mlp(cfg, index)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        z = self.inner_mha_cls(self.pre_norm(u)) + u
        return self.mlp(self.post_norm(z)) + z


class Evo2(nn.Module):
    """Token ids (B, L) -> logits (B, L, vocab)."""

    def __init__(self, cfg: Evo2Config) -> None:
        super().__init__()
        self.embedding_layer = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.blocks = nn.ModuleList(AttentionBlock(cfg, i) if kind == "attn" else HyenaBlock(cfg, i)
                                    for i, kind in enumerate(cfg.layer_kinds))
        self.norm = RMSNorm(cfg.hidden_size, cfg.eps) if cfg.final_norm else nn.Identity()
        self.unembed = None if cfg.tie_embeddings else nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.embedding_layer(input_ids)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return x @ self.embedding_layer.weight.T if self.unembed is None else self.unembed(x)


class HyenaCascadeStep(nn.Module):
    """:class:`HyenaCascade` on a chunk (B, T, 3D) continuing from its states, exact for any T.

    States: the featurizer's FIR cache (B, 3D, short_filter_length - 1), then the operator's: HCS a
    FIR cache of taps - 1 inputs, HCM the same of its 128-tap filter (fixed size, never grown), HCL
    the real modal state (B, D, state_size).
    """

    def __init__(self, cascade: HyenaCascade) -> None:
        super().__init__()
        self.cascade = cascade
        dim = cascade.cfg.hidden_size
        with torch.no_grad():
            if cascade.kind == "hcl":
                self.operator: nn.Module = RealModalConv(cascade.log_poles[..., 0], cascade.residues, cascade.D)
            elif cascade.D is not None:  # HCM: a true convolution with the D skip
                self.operator = HistoryConv(cascade.h.repeat_interleave(dim // cascade.h.shape[0], dim=0)[:, 0],
                                            cascade.D)
            else:
                self.operator = None

    def hcs_weight(self) -> torch.Tensor:
        cascade = self.cascade
        return cascade.h.repeat_interleave(cascade.cfg.hidden_size // cascade.h.shape[0], dim=0)

    def state_shapes(self) -> list[tuple[str, str, tuple[int, ...]]]:
        cascade, dim = self.cascade, self.cascade.cfg.hidden_size
        shapes = [("fir", "conv_state", (3 * dim, cascade.short_filter_weight.shape[-1] - 1))]
        if cascade.kind == "hcl":
            return shapes + [("modal", "recurrent_state", (dim, self.operator.modes))]
        taps = cascade.h.shape[-1]
        return shapes + [("fir", "fir_state", (dim, taps - 1))]

    def forward(self, z: torch.Tensor, featurizer: torch.Tensor, inner: torch.Tensor
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        cascade = self.cascade
        features, featurizer = conv_with_cache(featurizer, z.transpose(1, 2), cascade.short_filter_weight)
        x2, x1, v = cascade.split_features(features)
        x1v = x1 * v
        if self.operator is None:
            y, inner = conv_with_cache(inner, x1v, self.hcs_weight())
        else:
            y, inner = self.operator(x1v, inner)
        return (x2 * y).transpose(1, 2), [featurizer, inner]


class Evo2Step(nn.Module):
    """:class:`Evo2` on a chunk of token ids (B, T) with per-layer states -> logits (B, T, vocab), new states.

    Attention blocks keep a rotary KV cache of ``max_context`` positions and add the model-wide
    ``position`` state (B, 1), last in the state list.
    """

    def __init__(self, model: Evo2, max_context: int) -> None:
        super().__init__()
        self.model = model
        self.steps = nn.ModuleList(CachedRotaryAttention(block.inner_mha_cls, max_context)
                                   if isinstance(block, AttentionBlock) else HyenaCascadeStep(block.filter)
                                   for block in model.blocks)
        self.specs: list[StateSpec] = []
        for layer, step in enumerate(self.steps):
            if isinstance(step, CachedRotaryAttention):
                self.specs += [StateSpec("key", "key", layer, step.state_shape()),
                               StateSpec("value", "value", layer, step.state_shape())]
            else:
                self.specs += [StateSpec(kind, name, layer, shape) for kind, name, shape in step.state_shapes()]
        self.has_position = any(isinstance(step, CachedRotaryAttention) for step in self.steps)
        if self.has_position:
            self.specs.append(position_spec())

    def forward(self, input_ids: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        model = self.model
        states = list(states)
        position = states.pop() if self.has_position else None
        x = model.embedding_layer(input_ids)
        new_states: list[torch.Tensor] = []
        for block, step in zip(model.blocks, self.steps):
            first, second = states[len(new_states):len(new_states) + 2]
            if isinstance(step, CachedRotaryAttention):
                y, keys, values = step(block.pre_norm(x), position, first, second)
                new_states += [keys, values]
                z = y + x
            else:
                y, layer_states = step(block.projections(block.pre_norm(x)), first, second)
                new_states += layer_states
                z = block.out_filter_dense(y) + x
            x = block.mlp(block.post_norm(z)) + z
        x = model.norm(x)
        logits = x @ model.embedding_layer.weight.T if model.unembed is None else model.unembed(x)
        if self.has_position:
            new_states.append(position + input_ids.shape[1])
        return (logits, *new_states)
