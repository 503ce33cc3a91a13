"""The interface every runner of an exported graph offers (parity checks and benchmarks use only this)."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Backend(Protocol):
    """Anything that runs positional inputs and names its outputs."""

    input_names: list[str]
    output_names: list[str]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]: ...
