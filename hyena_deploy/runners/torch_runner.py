"""PyTorch eager: the reference every export is compared against."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch.utils._pytree import tree_leaves

from hyena_deploy.loaded import LoadedModel


class TorchRunner:
    """A loaded model in PyTorch (inference mode); its outputs flattened in pytree order, as float numpy arrays.

    ``float64`` runs a float64 copy of the model on float64 inputs (outputs stay float64): the exact reference
    for properties of the model itself, such as causality, that fp32 rounding at long lengths would blur.
    """

    name = "pytorch"
    output_names = None

    def __init__(self, loaded: LoadedModel, threads: int | None = None, float64: bool = False) -> None:
        self.module = copy.deepcopy(loaded.module).double() if float64 else loaded.module
        self.float64 = float64
        if threads:
            torch.set_num_threads(threads)

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self.run_tensors(tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in inputs))

    def run_tensors(self, inputs: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
        """Outputs for tensors already on the model's side (no numpy round trip for the inputs)."""
        if self.float64:
            inputs = tuple(x.double() if x.is_floating_point() else x for x in inputs)
        with torch.inference_mode():
            out = self.module(*inputs)
        return [_to_numpy(t) for t in tree_leaves(out) if isinstance(t, torch.Tensor)]


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach().cpu()
    return (tensor if tensor.dtype == torch.float64 else tensor.float()).numpy()
