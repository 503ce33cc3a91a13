"""``--fftconv auto``: pick the fastest exact strategy per convolution from kept measurements.

``crossovers.json`` beside this file holds, per target, rules ``[max_taps, strategy]`` in order
(the last one with ``max_taps`` null): a filter of L taps gets the first rule with ``L <= max_taps``.
A target may also hold ``modal`` rules ``[[min_length, max_modes], ...]`` (measured modal vs monarch):
a filter at least ``min_length`` long that is modal with at most ``max_modes`` modes gets ``modal``.
``benchmarks/crossover.py`` writes the ONNX Runtime rules from median latencies of direct vs
monarch vs dft per filter length on one CPU; the TensorRT rules are not measured (no GPU there).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.spectral import support
from hyena_deploy.strategies import modal

_TABLE = Path(__file__).with_name("crossovers.json")


@cache
def _crossovers() -> dict:
    return json.loads(_TABLE.read_text())


def targets() -> list[str]:
    """Targets with recorded crossovers."""
    return sorted(_crossovers()["targets"])


def pick(rules: list[list], taps: int) -> str:
    """The strategy of the first rule whose ``max_taps`` (null = no limit) admits ``taps``."""
    for max_taps, strategy in rules:
        if max_taps is None or taps <= max_taps:
            return strategy
    raise HyenaDeployError(f"crossovers.json has no rule for filters of {taps} taps (the last rule needs null)")


def chooser(target: str) -> Callable[[np.ndarray], str]:
    """A function ``h -> strategy`` for ``target``, by the filter's support (trailing zero taps cost nothing)."""
    table = _crossovers()["targets"]
    if target not in table:
        raise HyenaDeployError(f"unknown target {target!r} for --fftconv auto (known: {', '.join(sorted(table))})")
    rules, modal_rules = table[target]["rules"], table[target].get("modal", [])

    def choose(h: np.ndarray) -> str:
        if modal.prefers(h, modal_rules):
            return "modal"
        return pick(rules, support(h))

    return choose
