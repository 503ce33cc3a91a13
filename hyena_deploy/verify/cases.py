"""What parity is checked on: cases of inputs, and the one maker of random inputs.

Random inputs are drawn from :class:`InputSpec` s, whichever side describes the inputs (a PyTorch model's
example inputs or an ONNX graph's declared inputs): token ids uniform below the vocabulary, floats normal with
the standard deviation of the user's example (a filter that depends on the signal's scale is then exercised at
the scale the model is used at, not only at 1).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from hyena_deploy.graph import constant_value, consumers, input_specs


@dataclass(frozen=True)
class InputSpec:
    """One input to draw: integers in ``[0, high)``, floats normal with standard deviation ``scale``."""

    shape: tuple[int, ...]
    dtype: np.dtype
    high: int = 2
    scale: float = 1.0


@dataclass(frozen=True)
class Case:
    """One set of positional inputs and the label reports show for it."""

    label: str
    inputs: list[np.ndarray]


def fresh_rng() -> np.random.Generator:
    """A generator seeded from the OS: every verification run sees new inputs."""
    return np.random.default_rng(int.from_bytes(os.urandom(8), "little"))


def random_array(spec: InputSpec, rng: np.random.Generator) -> np.ndarray:
    """Random values for one input (see :class:`InputSpec`)."""
    if np.issubdtype(spec.dtype, np.integer) or spec.dtype == np.bool_:
        return rng.integers(0, max(spec.high, 1), size=spec.shape).astype(spec.dtype)
    return (spec.scale * rng.standard_normal(spec.shape)).astype(spec.dtype)


def example_scale(example: np.ndarray) -> float:
    """Standard deviation to draw random float inputs with: the example's RMS (1 for an all-zero example)."""
    rms = float(np.sqrt(np.mean(np.square(example, dtype=np.float64)))) if example.size else 0.0
    return rms if np.isfinite(rms) and rms > 0 else 1.0


def random_cases(make: Callable[[int, int, np.random.Generator], Sequence[np.ndarray]], lengths: Sequence[int],
                 batch: int | None, rng: np.random.Generator) -> list[Case]:
    """One case per length; a dynamic batch (``batch`` None) alternates 3 and 1 so both are checked."""
    cases = []
    for i, length in enumerate(lengths):
        b = batch or (3 if i % 2 == 0 else 1)
        cases.append(Case(f"B={b} L={length}", list(make(b, length, rng))))
    return cases


def graph_input_specs(model: onnx.ModelProto, batch: int, length: int) -> list[InputSpec]:
    """Specs of a graph's inputs: batch on a dynamic axis 0, ``length`` on a dynamic axis 1; token ids below the
    rows of the embedding table they index (2 when they feed no Gather)."""
    return [InputSpec(tuple(dims), dtype, _vocab_for(model, name))
            for name, (dims, dtype) in input_specs(model, batch, length).items()]


def graph_inputs(model: onnx.ModelProto) -> Callable[[int, int, np.random.Generator], list[np.ndarray]]:
    """``(batch, length, rng) -> inputs`` for a graph, for :func:`random_cases`."""
    return lambda batch, length, rng: [random_array(s, rng) for s in graph_input_specs(model, batch, length)]


def _vocab_for(model: onnx.ModelProto, name: str) -> int:
    for node in consumers(model.graph).get(name, []):
        if node.op_type == "Gather" and node.input[1] == name:
            table = constant_value(model.graph, node.input[0])
            if table is not None:
                return int(table.shape[0])
    return 2
