"""Depthwise Conv with the materialised filter: exact and simple, O(L * taps) per channel."""

from __future__ import annotations

import numpy as np

from hyena_deploy.graph import NodeBuilder
from hyena_deploy.strategies.common import flatten_channels, restore


def _used_lags(h: np.ndarray, lead: int) -> tuple[int, int]:
    """Columns [first, last] of ``h`` that are non-zero in some channel, never cutting lag 0 out of the range."""
    nonzero = np.flatnonzero(h.reshape(-1, h.shape[-1]).any(axis=0))
    if not nonzero.size:
        return lead, lead
    return min(int(nonzero[0]), lead), max(int(nonzero[-1]), lead)


def build(nb: NodeBuilder, signal: str, output: str, h: np.ndarray, lead: int = 0) -> None:
    """Replace ``output = conv(signal, h)`` (lags ``-lead..``) by a grouped Conv with the flipped filter.

    Only the filter's support is kept: lags that are zero in every channel cost nothing. The
    causal taps pad on the left, the negative lags on the right.
    """
    first, last = _used_lags(h, lead)
    h = h[..., first:last + 1]
    lead -= first
    taps = h.shape[-1]
    flat = flatten_channels(nb, signal, h)
    weight = h.reshape(flat.channels, 1, taps)[..., ::-1]  # Conv is cross-correlation
    y = nb.op("Conv", [flat.x, nb.const(np.ascontiguousarray(weight), "filter_taps")],
              group=flat.channels, kernel_shape=[taps], pads=[taps - 1 - lead, lead])
    restore(nb, y, flat, output)
