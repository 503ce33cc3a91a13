"""FFT-convolution strategies: each turns ``output = causal_conv(signal, h)`` into ONNX nodes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.graph import NodeBuilder
from hyena_deploy.strategies import auto, dft, direct, modal, monarch, plugin

Builder = Callable[[NodeBuilder, str, str, np.ndarray], None]

BUILDERS: dict[str, Builder] = {"monarch": monarch.build, "dft": dft.build, "direct": direct.build,
                                 "plugin": plugin.build, "modal": modal.build}
CHOICES = ("auto", *BUILDERS)  # what --fftconv accepts


def chooser(fftconv: str, target: str) -> Callable[[np.ndarray], str]:
    """``h -> strategy name``: fixed, or for ``auto`` from the target's measured crossovers."""
    if fftconv == "auto":
        return auto.chooser(target)
    if fftconv not in BUILDERS:
        raise HyenaDeployError(f"unknown --fftconv {fftconv!r} (choose from {', '.join(CHOICES)})")
    return lambda h: fftconv
