"""PyTorch eager: the reference every export is compared against."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils._pytree import tree_leaves

from hyena_deploy.loaded import LoadedModel


class TorchRunner:
    """A loaded model in PyTorch (no grad); its outputs flattened in pytree order, as float numpy arrays."""

    name = "pytorch"
    output_names = None

    def __init__(self, loaded: LoadedModel, threads: int | None = None) -> None:
        self.loaded = loaded
        if threads:
            torch.set_num_threads(threads)

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self.run_tensors(tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in inputs))

    def run_tensors(self, inputs: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
        """Outputs for tensors already on the model's side (no numpy round trip for the inputs)."""
        with torch.inference_mode():
            out = self.loaded.module(*inputs)
        return [t.detach().float().cpu().numpy() for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
