"""A distilled long filter: ``h_t = Re sum_n R_n p_n^t``, a drop-in for :class:`~hyena_deploy.models.hyena.HyenaFilter`.

Same interface as the implicit filter it replaces (``filter(seqlen) -> (1, L, C)``, ``skip() -> (C,)``)
plus ``modal_form()`` (contract C3), so the full-sequence model, every export strategy and the
streaming layer all see the same filter. The filter is evaluated in float64 (angles ``t * theta``
lose about 1e-2 radians at t = 64k in float32) and rounded once; up to ``length`` (the model's
``l_max``) it is kept as a float32 constant, so a traced graph holds the filter as plain taps.
"""

from __future__ import annotations

import torch
from torch import nn


class ModalFilter(nn.Module):
    """Poles and residues (C, N) as real float64 buffers (a padding mode has R = 0); D skip (C,)."""

    def __init__(self, poles: torch.Tensor, residues: torch.Tensor, skip: torch.Tensor, length: int = 0) -> None:
        super().__init__()
        if poles.shape != residues.shape or poles.dim() != 2 or skip.shape != poles.shape[:1]:
            raise ValueError(f"poles {tuple(poles.shape)}, residues {tuple(residues.shape)} and skip "
                             f"{tuple(skip.shape)} must be (C, N), (C, N) and (C,)")
        if poles.numel() and not bool((poles.abs() < 1).all()):
            raise ValueError("every pole of a modal filter must lie inside the unit circle")
        poles, residues = poles.to(torch.complex128), residues.to(torch.complex128)
        self.register_buffer("pole_re", poles.real.clone())
        self.register_buffer("pole_im", poles.imag.clone())
        self.register_buffer("residue_re", residues.real.clone())
        self.register_buffer("residue_im", residues.imag.clone())
        self.bias = nn.Parameter(skip.detach().to(torch.float32).clone())
        with torch.no_grad():  # a float32 constant up to ``length``: traced graphs see a plain filter tensor
            self.register_buffer("taps", self._evaluate(length), persistent=False)

    @property
    def modes(self) -> int:
        return self.pole_re.shape[1]

    def modal_form(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(poles, residues), complex (C, N): ``h[c, t] = Re sum_n residues[c, n] poles[c, n]^t``."""
        return torch.complex(self.pole_re, self.pole_im), torch.complex(self.residue_re, self.residue_im)

    def filter(self, seqlen: int) -> torch.Tensor:
        """The filter at t < seqlen as (1, seqlen, C) float32, like ``HyenaFilter.filter``."""
        taps = self.taps[:, :seqlen] if seqlen <= self.taps.shape[1] else self._evaluate(seqlen)
        return taps.t()[None]

    def _evaluate(self, seqlen: int) -> torch.Tensor:
        """(C, seqlen) float32 from the modal form, computed in float64."""
        t = torch.arange(seqlen, dtype=torch.float64, device=self.pole_re.device)[None, :]
        log_radius = torch.log(torch.clamp(torch.hypot(self.pole_re, self.pole_im), min=1e-300))
        angle = torch.atan2(self.pole_im, self.pole_re)
        h = torch.zeros(self.pole_re.shape[0], seqlen, dtype=torch.float64, device=self.pole_re.device)
        for n in range(self.modes):
            phase = t * angle[:, n:n + 1]
            h = h + torch.exp(t * log_radius[:, n:n + 1]) * (self.residue_re[:, n:n + 1] * torch.cos(phase)
                                                             - self.residue_im[:, n:n + 1] * torch.sin(phase))
        return h.to(torch.float32)

    def skip(self) -> torch.Tensor:
        """The D skip (the original filter's, plus any fitted direct term)."""
        return self.bias
