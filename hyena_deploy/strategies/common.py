"""Pieces every strategy shares: flatten channels, pad time with a length guard, restore shape, place
two-sided filters on a circle.

Filters ``h`` (channels..., lead + L) hold lags ``-lead .. L-1``: ``lead`` = 0 for causal filters,
and L is the longest signal the strategy must serve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from hyena_deploy.graph import NodeBuilder


@dataclass(frozen=True)
class Flattened:
    """The signal reshaped to (B, C, L), and what is needed to undo it."""

    x: str
    shape: str
    length: str
    channels: int


def flatten_channels(nb: NodeBuilder, signal: str, h: np.ndarray) -> Flattened:
    """Reshape ``signal`` (B, c1, ..., L) to (B, C, L) with C = prod(h.shape[:-1])."""
    channels = int(np.prod(h.shape[:-1]))
    shape = nb.op("Shape", [signal])
    length = nb.op("Shape", [signal], start=-1)
    target = nb.op("Concat", [nb.const([-1, channels]), length], axis=0)
    return Flattened(nb.op("Reshape", [signal, target]), shape, length, channels)


def zero_pad_time(nb: NodeBuilder, flat: Flattened, total: int) -> str:
    """Right-pad (B, C, L) with zeros to (B, C, total).

    The zeros come from ConstantOfShape with a width of ``total - L``: a negative width (an input
    longer than the graph's maximum) is an error at run time instead of a silent crop.
    """
    batch = nb.op("Shape", [flat.x], start=0, end=1)
    width = nb.op("Sub", [nb.const([total]), flat.length])
    zeros_shape = nb.op("Concat", [batch, nb.const([flat.channels]), width], axis=0)
    zeros = nb.op("ConstantOfShape", [zeros_shape],
                  value=onnx.helper.make_tensor("zero", onnx.TensorProto.FLOAT, [1], [0.0]))
    return nb.op("Concat", [flat.x, zeros], axis=-1)


def restore(nb: NodeBuilder, y: str, flat: Flattened, output: str) -> None:
    """Crop (B, C, T) to the signal's length and reshape back to the signal's shape as ``output``."""
    cropped = nb.op("Slice", [y, nb.const([0]), flat.length, nb.const([-1])])
    nb.op("Reshape", [cropped, flat.shape], output=output)


def signal_length(h: np.ndarray, lead: int) -> int:
    """The longest signal a filter with ``lead`` negative lags serves: its number of lags >= 0."""
    return h.shape[-1] - lead


def circular_filter(h: np.ndarray, lead: int, n: int) -> np.ndarray:
    """(C, n) float64: lag ``d`` of ``h`` (C, lead + L) at index ``d mod n``, the layout a size-n FFT multiplies.

    With n >= 2L (``fft_size_for(L)``) no lag in -(L-1)..L-1 aliases another, so the circular
    convolution equals the two-sided linear one on the first L outputs.
    """
    placed = np.zeros((h.shape[0], n))
    placed[:, :h.shape[-1] - lead] = h[:, lead:]
    if lead:
        placed[:, n - lead:] = h[:, :lead]
    return placed
