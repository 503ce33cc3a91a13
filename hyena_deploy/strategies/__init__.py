"""FFT-convolution strategies: each turns ``output = causal_conv(signal, h)`` into ONNX nodes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hyena_deploy.graph import NodeBuilder
from hyena_deploy.strategies import dft, direct, monarch, plugin

Builder = Callable[[NodeBuilder, str, str, np.ndarray], None]

BUILDERS: dict[str, Builder] = {"monarch": monarch.build, "dft": dft.build, "direct": direct.build,
                                 "plugin": plugin.build}
