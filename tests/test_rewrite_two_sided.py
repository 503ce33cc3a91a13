"""monarch, dft and direct take two-sided filters (negative lags) at every length up to their maximum."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.graph import NodeBuilder
from hyena_deploy.rewrite.probe import two_sided_conv
from hyena_deploy.strategies import BUILDERS

MAX_LEN = 40


def _graph(strategy: str, h: np.ndarray, lead: int) -> ort.InferenceSession:
    nb = NodeBuilder("site")
    BUILDERS[strategy](nb, "x", "y", h, lead=lead)
    graph = helper.make_graph(nb.nodes, "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["B", h.shape[0], "L"])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], nb.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("strategy", ["monarch", "dft", "direct"])
@pytest.mark.parametrize("lead", [0, 5, MAX_LEN - 1])
def test_two_sided_filter_at_every_length(strategy: str, lead: int) -> None:
    rng = np.random.default_rng(lead)
    h = rng.standard_normal((3, lead + MAX_LEN))
    h[:, lead + MAX_LEN // 2:] = 0.0           # a support shorter than the maximum (direct keeps only that)
    session = _graph(strategy, h, lead)
    for length in (1, 7, 23, MAX_LEN):
        x = rng.standard_normal((2, 3, length)).astype(np.float32)
        got = session.run(None, {"x": x})[0]
        cut = np.concatenate([h[:, max(0, lead - (length - 1)):lead], h[:, lead:lead + length]], axis=1)
        want = two_sided_conv(x, cut, min(lead, length - 1))
        assert got.shape == x.shape
        assert np.linalg.norm(got - want) / np.linalg.norm(want) <= 1e-6, (strategy, lead, length)


def test_plugin_refuses_a_two_sided_filter() -> None:
    with pytest.raises(HyenaDeployError, match="causal filters only"):
        BUILDERS["plugin"](NodeBuilder("site"), "x", "y", np.ones((2, 9)), lead=4)


@pytest.mark.parametrize("style", ["centred_same", "m2_bert_bidirectional"])
def test_padding_is_zeroed_before_two_sided_sites_of_a_dynamic_graph(style: str) -> None:
    """Filters that do not change with the length: the right-padded graph is exact at every length."""
    import contextlib
    import io

    import torch

    from hyena_deploy.lengths import make_length_dynamic
    from hyena_deploy.loaded import LoadedModel
    from hyena_deploy.rewrite.replace import rewrite_fftconvs
    from hyena_deploy.trace import trace
    from tests import models_styles

    module, example = getattr(models_styles, style)()
    with contextlib.redirect_stderr(io.StringIO()):
        traced = trace(LoadedModel(module, example, style, "0"), models_styles.L_MAX, None, 20)
    model, sites, _ = rewrite_fftconvs(traced, lambda h: "monarch")
    assert sites and all(s.lead > 0 for s in sites)
    make_length_dynamic(model, models_styles.L_MAX)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng()
    for length in (1, 17, 33, models_styles.L_MAX):
        x = rng.standard_normal((2, length, example[0].shape[2])).astype(np.float32)
        with torch.no_grad():
            want = module(torch.from_numpy(x)).numpy()
        got = session.run(None, {session.get_inputs()[0].name: x})[0]
        assert np.linalg.norm(got - want) / np.linalg.norm(want) <= 1e-5, (style, length)
