"""Run the PyTorch model once before exporting it: failures and non-finite outputs become one-line errors."""

from __future__ import annotations

import torch
from torch.utils._pytree import tree_leaves

from hyena_deploy.errors import HyenaDeployError, first_line
from hyena_deploy.loaded import LoadedModel


def check_runs_in_torch(loaded: LoadedModel, inputs: tuple[torch.Tensor, ...]) -> None:
    """Refuse a model that raises, or returns NaN/Inf, on ``inputs`` (batch on axis 0, sequence on axis 1).

    Without this, a model that cannot run at the requested length shows torch.export's cut-off
    message, and NaN weights surface later as a failed causality or parity check.
    """
    length = inputs[0].shape[1] if inputs and inputs[0].dim() > 1 else 0
    try:
        with torch.no_grad():
            outputs = [t for t in tree_leaves(loaded.module(*inputs)) if isinstance(t, torch.Tensor)]
    except Exception as exc:  # user code: any failure is reported in one line
        raise HyenaDeployError(f"the model fails in PyTorch at L={length}: {type(exc).__name__}: "
                               f"{first_line(exc)}") from None
    for index, output in enumerate(outputs):
        if output.is_floating_point() or output.is_complex():
            finite = torch.isfinite(output)
            if not bool(finite.all()):
                kind = "NaN" if bool(torch.isnan(output).any()) else "Inf"
                raise HyenaDeployError(f"PyTorch itself returns {kind} at L={length} (output {index}, "
                                       f"{int((~finite).sum())} of {output.numel()} values){_non_finite_state(loaded)}")


def _non_finite_state(loaded: LoadedModel) -> str:
    """``: non-finite weights in a.b, c`` when parameters or buffers hold NaN/Inf, else ``""``."""
    names = [name for name, t in [*loaded.module.named_parameters(), *loaded.module.named_buffers()]
             if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all())]
    if not names:
        return ": no weight is NaN/Inf, so the model's own arithmetic makes them at this length"
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f": non-finite weights in {shown}"
