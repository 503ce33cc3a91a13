"""FIR cache: a depthwise causal convolution of K taps keeps its last K-1 inputs (fixed size, no growth)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

KIND = "fir"
SHIFTED_SUM_TAPS = 8  # up to this many taps: a sum of shifted slices (ONNX Runtime's grouped Conv: slow on short rows)


def conv_with_cache(cache: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal depthwise cross-correlation of a chunk ``x`` (B, C, T) continuing from ``cache`` (B, C, K-1).

    ``weight`` (C, 1, K) is an ``nn.Conv1d`` weight (tap K-1 meets the newest input), so with a zero
    cache this is ``conv1d(x, weight, padding=K-1)[..., :T]``. Returns the output (B, C, T) and the new
    cache, the last K-1 inputs of ``[cache | x]``: O(T·K) per channel, whatever came before.
    """
    joined = torch.cat([cache, x], dim=-1)
    taps, length = weight.shape[-1], x.shape[-1]
    if taps <= SHIFTED_SUM_TAPS:
        out = sum(joined[..., k:k + length] * weight[:, :, k] for k in range(taps))
    else:
        out = F.conv1d(joined, weight, groups=weight.shape[0])
    return out, joined[..., length:]
