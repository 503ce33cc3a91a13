"""Adapt any site layout to what strategies take: (B, C, L) in, the same (B, C, L) out.

A site's signal may carry time on any axis ((B, L, C) with an FFT along dim=1, (B, H, D, L)) and
its output may add channels (a filter bank ``u.unsqueeze(1) * K`` reads one input channel from
several output channels). Around the strategy this moves time last, flattens the channels,
gathers each output channel's input channel, and undoes it all on the output side.
"""

from __future__ import annotations

import numpy as np

import onnx

from hyena_deploy.graph import NodeBuilder
from hyena_deploy.rewrite.probe import Filter
from hyena_deploy.strategies import Builder

VALID_POSITIONS = "valid_positions"  # output name suffix of a two-sided site's mask (lengths makes it dynamic)


def _time_last(axis: int, rank: int) -> list[int]:
    return [i for i in range(rank) if i != axis] + [axis]


def _valid_positions(nb: NodeBuilder, signal: str, filt: Filter) -> str:
    """``signal`` times a mask of ones over time, named ``<prefix>/valid_positions``.

    A two-sided filter reads positions after the output's, so in a graph right-padded to its
    maximum length the padding would leak into valid outputs; :func:`hyena_deploy.lengths.make_length_dynamic`
    turns this mask into ``t < L``, which zeroes the padded positions before the site.
    """
    axis, rank = filt.signal_axis, len(filt.signal_shape)
    time = nb.op("Shape", [signal], start=axis, end=axis + 1)  # the signal's own length (graphs may be dynamic)
    before, after = nb.const(np.ones(axis, np.int64)), nb.const(np.ones(rank - axis - 1, np.int64))
    shape = nb.op("Concat", [before, time, after], axis=0)
    one = onnx.helper.make_tensor("one", onnx.TensorProto.FLOAT, [1], [1.0])
    mask = nb.op("ConstantOfShape", [shape], output=f"{nb.prefix}/{VALID_POSITIONS}", value=one)
    return nb.op("Mul", [signal, mask])


def build_site(nb: NodeBuilder, build: Builder, signal: str, output: str, filt: Filter) -> None:
    """Emit ``output = conv(signal, filt)`` with strategy ``build`` for any layout ``filt`` describes."""
    lead = {"lead": filt.lead} if filt.lead else {}
    if filt.lead:
        signal = _valid_positions(nb, signal, filt)
    if filt.is_plain:
        build(nb, signal, output, filt.h.reshape(*filt.signal_shape[1:-1], filt.h.shape[-1]), **lead)
        return
    rank_in, rank_out = len(filt.signal_shape), len(filt.output_shape)
    x = signal
    if filt.signal_axis != rank_in - 1:
        x = nb.op("Transpose", [x], perm=_time_last(filt.signal_axis, rank_in))
    length = nb.op("Shape", [x], start=-1)
    batch = nb.op("Shape", [x], start=0, end=1)
    inputs = int(np.prod([d for i, d in enumerate(filt.signal_shape) if i not in (0, filt.signal_axis)], dtype=np.int64))
    x = nb.op("Reshape", [x, nb.op("Concat", [nb.const([-1, inputs]), length], axis=0)])
    if not np.array_equal(filt.channel_map, np.arange(inputs)):
        x = nb.op("Gather", [x, nb.const(filt.channel_map.astype(np.int64), "channel_map")], axis=1)
    conv = f"{nb.prefix}/conv_out"
    build(nb, x, conv, filt.h, **lead)
    channels = [d for i, d in enumerate(filt.output_shape) if i not in (0, filt.output_axis)]
    shape = nb.op("Concat", [batch, nb.const(np.array(channels, np.int64).reshape(-1)), length], axis=0)
    if filt.output_axis == rank_out - 1:
        nb.op("Reshape", [conv, shape], output=output)
        return
    y = nb.op("Reshape", [conv, shape])
    nb.op("Transpose", [y], output=output, perm=[int(i) for i in np.argsort(_time_last(filt.output_axis, rank_out))])
