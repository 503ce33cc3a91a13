"""Each strategy on its own: a one-node-region graph vs a float64 causal convolution."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from hyena_deploy.graph import NodeBuilder
from hyena_deploy.runtime import OrtModel
from hyena_deploy.spectral import causal_conv_reference, fft_size_for
from hyena_deploy.strategies import BUILDERS


def _graph(strategy: str, h: np.ndarray) -> onnx.ModelProto:
    nb = NodeBuilder("conv")
    BUILDERS[strategy](nb, "u", "y", h)
    dims = ["batch", *h.shape[:-1], "seq"]
    graph = helper.make_graph(nb.nodes, "g", [helper.make_tensor_value_info("u", onnx.TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, dims)], nb.initializers)
    opsets = [helper.make_opsetid("", 20), helper.make_opsetid("hyena_deploy", 1)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize("strategy", sorted(set(BUILDERS) - {"modal"}))  # modal filters only: test_modal_strategy.py
@pytest.mark.parametrize("channels", [(5,), (2, 3)])
def test_strategy_matches_float64_convolution(strategy: str, channels: tuple[int, ...]) -> None:
    rng = np.random.default_rng()
    max_len = 301
    h = rng.standard_normal((*channels, max_len)) * np.exp(-np.arange(max_len) / 50)
    runner = OrtModel(_graph(strategy, h))
    for batch, length in [(1, 1), (3, 17), (2, 300), (3, 301)]:
        u = rng.standard_normal((batch, *channels, length)).astype(np.float32)
        got = runner.run([u])[0]
        want = causal_conv_reference(u.astype(np.float64), h)
        assert got.shape == u.shape
        assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-5


@pytest.mark.parametrize("strategy", ["monarch", "dft"])
def test_input_longer_than_the_fft_allows_is_an_error(strategy: str) -> None:
    """Past N/2 a fixed-size FFT would wrap around; the zero-padding guard makes it fail instead."""
    h = np.random.default_rng().standard_normal((4, 64))
    session = ort.InferenceSession(_graph(strategy, h).SerializeToString(), providers=["CPUExecutionProvider"])
    too_long = fft_size_for(64) // 2 + 1 if strategy == "monarch" else fft_size_for(64) + 1
    with pytest.raises(Exception, match="Size"):
        session.run(None, {"u": np.ones((1, 4, too_long), np.float32)})


def test_fft_size_is_a_power_of_two_at_least_twice_the_length() -> None:
    for length in (1, 2, 3, 1000, 1024, 1025, 4096):
        n = fft_size_for(length)
        assert n >= 2 * length and n & (n - 1) == 0
