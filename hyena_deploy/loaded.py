"""What every SOURCE resolves to: a module, example inputs and how to make fresh ones."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from hyena_deploy.verify.cases import InputSpec, example_scale, random_array

InputMaker = Callable[[int, int, np.random.Generator], tuple[torch.Tensor, ...]]


@dataclass
class LoadedModel:
    """A model ready to trace.

    ``example_inputs`` have batch on axis 0 and sequence on axis 1. Random integer inputs are token ids
    drawn below ``vocab_size``; random float inputs are normal with the example's RMS as standard deviation.
    ``input_maker`` overrides both.
    """

    module: nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    name: str
    source_sha256: str
    max_seq_len: int | None = None
    vocab_size: int | None = None
    output_names: list[str] | None = None
    input_maker: InputMaker | None = field(default=None, repr=False)
    tokenizer: Callable[[list[str]], tuple[torch.Tensor, ...]] | None = field(default=None, repr=False)
    notes: list[str] = field(default_factory=list)

    def make_inputs(self, batch: int, length: int, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        """Fresh random inputs of shape (batch, length, ...) shaped like the example inputs."""
        if self.input_maker is not None:
            return self.input_maker(batch, length, rng)
        return tuple(self._random_like(x, batch, length, rng) for x in self.example_inputs)

    def _random_like(self, x: torch.Tensor, batch: int, length: int, rng: np.random.Generator) -> torch.Tensor:
        shape = (batch, length, *x.shape[2:])
        if x.dtype.is_floating_point:
            spec = InputSpec(shape, np.dtype(np.float32), scale=example_scale(x.detach().float().numpy()))
        else:
            spec = InputSpec(shape, np.dtype(np.int64), high=self.vocab_size or int(x.max().item()) + 1)
        return torch.from_numpy(random_array(spec, rng)).to(x.dtype)
