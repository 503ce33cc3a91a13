"""Shared by the sample scripts: random-init weights that a parity check can tell apart."""

from __future__ import annotations

import torch
from torch import nn


def perturb(model: nn.Module, seed: int) -> nn.Module:
    """Move every parameter (each shared one once) off its initial value.

    The filter MLP's linear layers are drawn at safari's init scale N(0, 0.02) instead: with torch's
    default init, ``sin(w x)`` at w >= 10 amplifies fp32 rounding enough to blur parity checks.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(".freq"):
                param.mul_(1 + 0.1 * torch.randn(param.shape, generator=generator))
            elif ".implicit_filter." in f".{name}":
                param.normal_(0.0, 0.02, generator=generator)
            else:
                param.add_(0.1 * torch.randn(param.shape, generator=generator))
    return model
