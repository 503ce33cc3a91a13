"""``--fftconv auto``: pick the fastest exact strategy per convolution from kept measurements.

The crossovers live in ``crossovers.json`` beside this file, written by
``benchmarks/crossover.py`` (median latencies of direct vs monarch vs dft per filter length).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np

from hyena_deploy.errors import HyenaDeployError

_TABLE = Path(__file__).with_name("crossovers.json")


@cache
def _crossovers() -> dict:
    return json.loads(_TABLE.read_text())


def targets() -> list[str]:
    """Targets with recorded crossovers."""
    return sorted(_crossovers()["targets"])


def chooser(target: str):
    """A function ``h -> strategy`` for ``target``: ``direct`` up to the measured tap count, else the long-filter pick."""
    table = _crossovers()["targets"]
    if target not in table:
        raise HyenaDeployError(f"unknown target {target!r} for --fftconv auto (known: {', '.join(sorted(table))})")
    rule = table[target]

    def choose(h: np.ndarray) -> str:
        return "direct" if h.shape[-1] <= rule["direct_max_taps"] else rule["long"]

    return choose
