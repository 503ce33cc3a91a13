"""Published Hyena LM layouts in plain PyTorch: backbone and heads (flash_attn prenorm blocks, eval mode).

Module names follow the published state dicts (``backbone.embeddings.word_embeddings``,
``backbone.layers.{i}.{norm1,mixer,norm2,mlp.fc1,mlp.fc2}``, ``backbone.ln_f``, ``lm_head``,
``score``), so a remapped checkpoint loads with ``load_state_dict(strict=True)``.
"""

from __future__ import annotations

import torch
from torch import nn

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.models.lm import Mlp, mixer_steps, step_blocks
from hyena_deploy.stateful.layout import position_spec


class MixerBlock(nn.Module):
    """flash_attn prenorm ``Block`` in eval mode.

    The original is Dropout -> Add -> LN -> mixer -> Dropout -> Add -> LN -> MLP with the residual
    stream carried separately (in fp32); without dropout and in fp32 that is exactly
    ``x = x + mixer(norm1(x)); x = x + mlp(norm2(x))`` on the summed stream.
    """

    def __init__(self, mixer: nn.Module, d_model: int, d_inner: int, eps: float) -> None:
        super().__init__()
        self.mixer = mixer
        self.norm1 = nn.LayerNorm(d_model, eps=eps)
        self.mlp = Mlp(d_model, d_inner)
        self.norm2 = nn.LayerNorm(d_model, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mixer(self.norm1(x)) + x
        return self.mlp(self.norm2(x)) + x


class Embeddings(nn.Module):
    """GPT-2 style token embeddings, plus learned positions when ``max_position_embeddings > 0``."""

    def __init__(self, vocab_size: int, d_model: int, max_position_embeddings: int = 0) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, d_model)
        self.position_embeddings = (nn.Embedding(max_position_embeddings, d_model)
                                    if max_position_embeddings > 0 else None)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.word_embeddings(input_ids)
        if self.position_embeddings is not None:
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)
            x = x + self.position_embeddings(positions)
        return x


class Backbone(nn.Module):
    """Embeddings -> blocks -> final LayerNorm ``ln_f``; returns hidden states (B, L, D)."""

    def __init__(self, embeddings: Embeddings, blocks: list[MixerBlock], d_model: int, eps: float) -> None:
        super().__init__()
        self.embeddings = embeddings
        self.layers = nn.ModuleList(blocks)
        self.ln_f = nn.LayerNorm(d_model, eps=eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(input_ids)
        for layer in self.layers:
            x = layer(x)
        return self.ln_f(x)


class EmbeddingModel(nn.Module):
    """Backbone only: token ids (B, L) -> hidden states (B, L, D)."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.backbone(input_ids)


class CausalLM(nn.Module):
    """Backbone + bias-free ``lm_head``: token ids (B, L) -> logits (B, L, V); optionally tied."""

    def __init__(self, backbone: Backbone, tie_embeddings: bool) -> None:
        super().__init__()
        self.backbone = backbone
        vocab, d_model = backbone.embeddings.word_embeddings.weight.shape
        self.lm_head = nn.Linear(d_model, vocab, bias=False)
        if tie_embeddings:
            self.lm_head.weight = backbone.embeddings.word_embeddings.weight

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.backbone(input_ids))


class SequenceClassifier(nn.Module):
    """HF ``HyenaDNAForSequenceClassification``: ``score`` logits at the token before the first pad.

    Per row the pooled position is ``argmax(input_ids == pad) - 1``: the last token when there is
    no pad (or with left padding), the last real token with right padding. Without a pad id the
    last token is used (HF does so for batch 1 and refuses larger batches).
    """

    def __init__(self, backbone: Backbone, num_labels: int, pad_token_id: int | None) -> None:
        super().__init__()
        self.backbone = backbone
        self.score = nn.Linear(backbone.ln_f.normalized_shape[0], num_labels, bias=False)
        self.pad_token_id = pad_token_id

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        logits = self.score(self.backbone(input_ids))
        seqlen = input_ids.shape[1]
        if self.pad_token_id is None:
            return logits[:, -1]
        first_pad = torch.eq(input_ids, self.pad_token_id).long().argmax(-1)
        index = torch.remainder(first_pad - 1, seqlen)  # -1 (no pad, or pad first) -> last token
        index = index[:, None, None].expand(-1, 1, logits.shape[-1])
        return logits.gather(1, index)[:, 0]


class CausalLMStep(nn.Module):
    """:class:`CausalLM` of Hyena mixer blocks on a chunk of token ids (B, T) continuing from its states.

    Learned absolute positions (``max_position_embeddings > 0``) add the model-wide ``position``
    state (B, 1), tokens consumed so far; it is last in the state list.
    """

    def __init__(self, lm: CausalLM, max_context: int) -> None:
        super().__init__()
        self.lm = lm
        positions = lm.backbone.embeddings.position_embeddings
        if positions is not None and max_context > positions.num_embeddings:
            raise HyenaDeployError(f"max context {max_context} is past the model's {positions.num_embeddings} "
                                   "learned positions")
        self.steps, self.specs = mixer_steps(lm.backbone.layers, max_context)
        self.has_position = positions is not None
        if self.has_position:
            self.specs.append(position_spec())

    def forward(self, input_ids: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        backbone = self.lm.backbone
        x = backbone.embeddings.word_embeddings(input_ids)
        if self.has_position:
            *states, position = states
            steps = torch.arange(input_ids.shape[1], device=input_ids.device)
            x = x + backbone.embeddings.position_embeddings(position + steps)
        x, new_states = step_blocks(backbone.layers, self.steps, x, tuple(states))
        if self.has_position:
            new_states.append(position + input_ids.shape[1])
        return (self.lm.lm_head(backbone.ln_f(x)), *new_states)
