"""Causal depthwise Conv with the materialised filter: exact and simple, O(L * taps) per channel."""

from __future__ import annotations

import numpy as np

from hyena_deploy.graph import NodeBuilder
from hyena_deploy.spectral import support
from hyena_deploy.strategies.common import flatten_channels, restore


def build(nb: NodeBuilder, signal: str, output: str, h: np.ndarray) -> None:
    """Replace ``output = causal_conv(signal, h)`` by a grouped Conv with the flipped filter.

    Only the filter's support is kept: trailing taps that are zero in every channel cost nothing.
    """
    taps = support(h)
    h = h[..., :taps]
    flat = flatten_channels(nb, signal, h)
    weight = h.reshape(flat.channels, 1, taps)[..., ::-1]  # Conv is cross-correlation
    y = nb.op("Conv", [flat.x, nb.const(np.ascontiguousarray(weight), "filter_taps")],
              group=flat.channels, kernel_shape=[taps], pads=[taps - 1, 0])
    restore(nb, y, flat, output)
