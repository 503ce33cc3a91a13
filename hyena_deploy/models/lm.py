"""A Hyena language model on the reference operator: embedding, pre-norm blocks, tied head."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.models.hyena import HyenaOperator, HyenaOperatorStep
from hyena_deploy.stateful.layout import StateSpec

MODEL_TYPE = "hyena_lm"


@dataclass(frozen=True)
class HyenaLMConfig:
    """``config.json`` of a hyena-deploy LM (``model_type: hyena_lm``)."""

    vocab_size: int = 16
    d_model: int = 64
    n_layer: int = 2
    d_inner: int = 256
    l_max: int = 1024
    order: int = 2
    filter_order: int = 32
    emb_dim: int = 5
    num_inner_mlps: int = 2
    w: float = 10.0
    shift: float = 0.0
    layer_norm_epsilon: float = 1e-5

    @classmethod
    def from_dict(cls, raw: dict) -> HyenaLMConfig:
        """Validate a config dict (unknown keys other than ``model_type`` are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known - {"model_type"})
        if unknown:
            raise HyenaDeployError(f"config.json: unknown keys {unknown}")
        try:
            config = cls(**{k: v for k, v in raw.items() if k in known})
        except TypeError as exc:
            raise HyenaDeployError(f"config.json: {exc}") from None
        for name in ("vocab_size", "d_model", "n_layer", "d_inner", "l_max", "filter_order"):
            value = getattr(config, name)
            if not isinstance(value, int) or value < 1:
                raise HyenaDeployError(f"config.json: {name} must be a positive integer, got {value!r}")
        if not isinstance(config.order, int) or config.order < 2:
            raise HyenaDeployError(f"config.json: order must be an integer >= 2, got {config.order!r}")
        if not isinstance(config.emb_dim, int) or config.emb_dim < 3 or config.emb_dim % 2 == 0:
            raise HyenaDeployError(f"config.json: emb_dim must be an odd integer >= 3, got {config.emb_dim!r}")
        return config

    def to_dict(self) -> dict:
        return {"model_type": MODEL_TYPE, **asdict(self)}


class Mlp(nn.Module):
    """fc1 -> GELU(tanh) -> fc2."""

    def __init__(self, d_model: int, d_inner: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_inner)
        self.fc2 = nn.Linear(d_inner, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(nn.functional.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
    """Pre-norm residual block: ``x + mixer(norm1(x))``, then ``+ mlp(norm2(.))``."""

    def __init__(self, config: HyenaLMConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.mixer = HyenaOperator(config.d_model, config.l_max, config.order, config.filter_order,
                                   config.emb_dim, config.num_inner_mlps, config.w, config.shift)
        self.norm2 = nn.LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.mlp = Mlp(config.d_model, config.d_inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mixer(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class HyenaLM(nn.Module):
    """Token ids (B, L) -> logits (B, L, vocab)."""

    def __init__(self, config: HyenaLMConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model, eps=config.layer_norm_epsilon)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.embedding(input_ids)
        for layer in self.layers:
            x = layer(x)
        return self.ln_f(x) @ self.embedding.weight.t()


def mixer_steps(blocks: nn.ModuleList, max_context: int) -> tuple[nn.ModuleList, list[StateSpec]]:
    """Chunk-with-state mixers of pre-norm Hyena blocks and their state table (layer = block index)."""
    steps = nn.ModuleList(HyenaOperatorStep(block.mixer, max_context) for block in blocks)
    specs = [StateSpec(kind, name, layer, shape)
             for layer, step in enumerate(steps) for kind, name, shape in step.state_shapes()]
    return steps, specs


def step_blocks(blocks: nn.ModuleList, steps: nn.ModuleList, x: torch.Tensor, states: tuple[torch.Tensor, ...]
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``x + mixer(norm1(x))`` then ``+ mlp(norm2(.))`` per block, each mixer continuing from its states."""
    new_states: list[torch.Tensor] = []
    for block, step in zip(blocks, steps):
        count = len(step.state_shapes())
        y, layer_states = step(block.norm1(x), *states[len(new_states):len(new_states) + count])
        x = x + y
        x = x + block.mlp(block.norm2(x))
        new_states.extend(layer_states)
    return x, new_states


class HyenaLMStep(nn.Module):
    """:class:`HyenaLM` on a chunk of token ids (B, T) with per-layer states -> logits (B, T, vocab), new states."""

    def __init__(self, lm: HyenaLM, max_context: int) -> None:
        super().__init__()
        self.lm = lm
        self.steps, self.specs = mixer_steps(lm.layers, max_context)

    def forward(self, input_ids: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        lm = self.lm
        x, new_states = step_blocks(lm.layers, self.steps, lm.embedding(input_ids), states)
        return (lm.ln_f(x) @ lm.embedding.weight.t(), *new_states)
