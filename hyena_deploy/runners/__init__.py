"""Runners: everything that computes a model's outputs from positional inputs, behind one protocol.

:class:`Runner` is what the comparator (:mod:`hyena_deploy.verify.comparator`), the bisect and the benchmark
worker drive. Each backend is one module: :mod:`.torch_runner` (PyTorch, the reference), :mod:`.ort_runner`
(ONNX Runtime), :mod:`.reference_runner` (ONNX's reference evaluator: exact FFTs at any size),
:mod:`.trt_runner` (TensorRT engines). Import them from their modules: optional dependencies stay unloaded.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Runner(Protocol):
    """Runs positional inputs (batch on axis 0, sequence on axis 1) and returns the outputs in order.

    ``output_names`` is None where the backend has no names of its own (PyTorch); reports then take the
    other side's.
    """

    name: str
    output_names: list[str] | None

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]: ...
