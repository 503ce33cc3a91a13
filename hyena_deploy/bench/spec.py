"""What a benchmark measures: lengths (``1k`` = 1024) and backends (``torch``, ``ort:<strategy>``, ``trt``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hyena_deploy import targets
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.strategies import CHOICES

DEFAULT_LENGTHS = (1024, 4096, 16384, 65536)
_LENGTH = re.compile(r"^(\d+)([kKmM]?)$")
_SCALE = {"": 1, "k": 1 << 10, "m": 1 << 20}


@dataclass(frozen=True)
class Backend:
    """One thing to time: ``kind`` torch (PyTorch eager), ort (a graph exported with ``strategy``, run by the
    runner of ``target`` from the target table) or trt (a TensorRT engine)."""

    kind: str
    strategy: str | None = None
    target: str = "onnxruntime"

    @property
    def name(self) -> str:
        if self.kind != "ort":
            return self.kind
        return f"{'ort' if self.target == 'onnxruntime' else self.target}:{self.strategy}"


def parse_length(text: str) -> int:
    """``4096``, ``4k`` (4096) or ``1m`` (1048576)."""
    match = _LENGTH.match(text.strip())
    if not match or int(match.group(1)) < 1:
        raise HyenaDeployError(f"bad length {text!r}: use a positive integer, optionally with k (x1024) or m")
    return int(match.group(1)) * _SCALE[match.group(2).lower()]


def format_length(length: int) -> str:
    """1024 -> ``1k``; lengths that are not whole multiples of 1024 stay plain."""
    return f"{length >> 10}k" if length >= 1024 and length % 1024 == 0 else str(length)


def parse_lengths(text: str | None, max_len: int | None) -> list[int]:
    """Sorted unique lengths from ``1k,4k,...``; ``None`` means the defaults that fit ``max_len``.

    An explicit length past ``max_len`` is an error.
    """
    if text is None:
        fitting = [n for n in DEFAULT_LENGTHS if max_len is None or n <= max_len]
        return fitting or [max_len]
    lengths = sorted({parse_length(part) for part in text.split(",") if part.strip()})
    if not lengths:
        raise HyenaDeployError("--lengths is empty")
    too_long = [n for n in lengths if max_len is not None and n > max_len]
    if too_long:
        raise HyenaDeployError(f"length {format_length(too_long[0])} ({too_long[0]}) is past the model's maximum "
                               f"sequence length {max_len}")
    return lengths


def parse_backends(text: str) -> list[Backend]:
    """``torch,ort:auto,onnxruntime-gpu:monarch,trt`` in the given order, duplicates dropped.

    ``TARGET:<strategy>`` names any target of the table with a graph runner; ``ort`` is short for onnxruntime.
    """
    graph_targets = targets.names(runnable=True)
    backends: list[Backend] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        kind, _, strategy = part.partition(":")
        kind = "onnxruntime" if kind == "ort" else kind
        if kind in graph_targets:
            if strategy not in CHOICES:
                raise HyenaDeployError(f"unknown strategy in {part!r} (choose from {', '.join(CHOICES)})")
            backend = Backend("ort", strategy, kind)
        elif kind in ("torch", "trt") and not strategy:
            backend = Backend(kind)
        else:
            raise HyenaDeployError(f"unknown backend {part!r}: use torch, trt or TARGET:<strategy> with TARGET one of "
                                   f"ort, {', '.join(graph_targets)}")
        if backend not in backends:
            backends.append(backend)
    if not backends:
        raise HyenaDeployError("--backends is empty")
    return backends
