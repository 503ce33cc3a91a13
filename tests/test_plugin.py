"""The fused FFTConv custom op: ORT PyOp, the plugin strategy's graph, the plugin's torch math."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from hyena_deploy.graph import NodeBuilder
from hyena_deploy.plugins.ort_fftconv import session_options_for
from hyena_deploy.plugins.schema import DOMAIN, VERSION, register_schema
from hyena_deploy.plugins.fftconv_math import fftconv_plugin_reference
from hyena_deploy.spectral import causal_conv_reference, fft_size_for
from hyena_deploy.strategies import plugin

L_MAX = 50
N = fft_size_for(L_MAX)


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def reference(u, h, skip=None, pregate=None, postgate=None) -> np.ndarray:
    """Float64 ``postgate * (causal_conv(x, h) + skip * x)`` with ``x = pregate * u``."""
    x = u.astype(np.float64) * (1.0 if pregate is None else pregate)
    y = causal_conv_reference(x, h)
    if skip is not None:
        y = y + skip[:, None] * x
    return y * (1.0 if postgate is None else postgate)


def operands(batch: int, channels: int, length: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((channels, L_MAX)) * np.exp(-np.arange(L_MAX) / 10)
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    return h, f32(batch, channels, length), f32(channels), f32(batch, channels, length), f32(batch, channels, length)


def model_of(nb: NodeBuilder, inputs: list[onnx.ValueInfoProto], output: onnx.ValueInfoProto) -> onnx.ModelProto:
    graph = helper.make_graph(nb.nodes, "g", inputs, [output], nb.initializers)
    return helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 18),
                                                                  helper.make_opsetid(DOMAIN, VERSION)])


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    options, prepared = session_options_for(model)
    session = ort.InferenceSession(prepared.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def op_model(h: np.ndarray, which: tuple[str, ...]) -> onnx.ModelProto:
    """One FFTConv node for filters h (C, L_max) on u (B, C, L) and the optional operands in ``which``."""
    channels = h.shape[0]
    nb = NodeBuilder("t")
    spectrum = nb.const(plugin.filter_spectrum(h, N), "spectrum")
    vi = {name: helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in
          [("u", ["B", channels, "L"]), ("skip", [channels]), ("pregate", ["B", channels, "L"]),
           ("postgate", ["B", channels, "L"])]}
    optional = {name: name if name in which else "" for name in ("skip", "pregate", "postgate")}
    plugin.add_fftconv(nb, "u", spectrum, N, **optional)
    y = nb.nodes[-1].output[0]
    out = helper.make_tensor_value_info(y, TensorProto.FLOAT, ["B", channels, "L"])
    return model_of(nb, [vi["u"], *(vi[name] for name in which)], out)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("which", [(), ("skip",), ("pregate", "postgate"), ("postgate",),
                                   ("skip", "pregate", "postgate")])
def test_ort_op_matches_float64_reference(batch, which):
    channels, length = 4, 37
    h, u, skip, pregate, postgate = operands(batch, channels, length)
    given = {"skip": skip, "pregate": pregate, "postgate": postgate}
    feeds = {"u": u, **{name: given[name] for name in which}}
    expected = reference(u, h, **{name: given[name] for name in which})
    model = op_model(h, which)
    onnx.checker.check_model(model, full_check=True)
    assert rel_l2(run(model, feeds), expected) <= 1e-6


def plugin_graph(channel_shape: tuple[int, ...], h: np.ndarray) -> onnx.ModelProto:
    nb = NodeBuilder("fftconv")
    plugin.build(nb, "signal", "y", h)
    dims = ["B", *channel_shape, "L"]
    return model_of(nb, [helper.make_tensor_value_info("signal", TensorProto.FLOAT, dims)],
                    helper.make_tensor_value_info("y", TensorProto.FLOAT, dims))


def test_plugin_graph_dynamic_length_matches_reference():
    rng = np.random.default_rng(1)
    h = rng.standard_normal((2, 3, L_MAX)) * np.exp(-np.arange(L_MAX) / 12)
    model = plugin_graph((2, 3), h)
    options, prepared = session_options_for(model)
    session = ort.InferenceSession(prepared.SerializeToString(), options, providers=["CPUExecutionProvider"])
    for batch, length in [(1, 1), (2, 17), (3, 49), (2, L_MAX)]:
        u = rng.standard_normal((batch, 2, 3, length)).astype(np.float32)
        y = session.run(None, {"signal": u})[0]
        assert y.shape == u.shape
        assert rel_l2(y, causal_conv_reference(u, h)) <= 1e-5


def test_plugin_graph_passes_checker_and_carries_plugin_fields():
    h = np.random.default_rng(2).standard_normal((4, L_MAX))
    model = plugin_graph((4,), h)
    register_schema()
    register_schema()  # idempotent
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    (node,) = [n for n in inferred.graph.node if n.op_type == "FFTConv"]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert node.domain == DOMAIN and list(node.input)[2:] == []
    assert attrs == {"fft_size": N, "plugin_namespace": b"hyena_deploy", "plugin_version": b"1"}
    types = {v.name: v.type for v in inferred.graph.value_info}
    assert types[node.output[0]] == types[node.input[0]]
    assert len(types[node.output[0]].tensor_type.shape.dim) == 3


def torch_math_error(device: str, dtype: torch.dtype = torch.float32) -> float:
    batch, channels, length = 3, 4, 41
    h, u, skip, pregate, postgate = operands(batch, channels, length, seed=3)
    t = lambda a: torch.from_numpy(a).to(device, dtype)  # noqa: E731
    spectrum = torch.from_numpy(plugin.filter_spectrum(h, N)).to(device)
    y = fftconv_plugin_reference(t(u), spectrum, torch.from_numpy(skip).to(device), t(pregate), t(postgate),
                                 fft_size=N)
    assert y.dtype == dtype and y.shape == (batch, channels, length)
    plain = fftconv_plugin_reference(t(u), spectrum, fft_size=N)
    expected = reference(u, h, skip, pregate, postgate)
    return max(rel_l2(y.double().cpu().numpy(), expected),
               rel_l2(plain.double().cpu().numpy(), causal_conv_reference(u, h)))


def test_torch_kernel_math_cpu():
    assert torch_math_error("cpu") <= 1e-5
    assert torch_math_error("cpu", torch.float16) <= 2e-3


def test_length_beyond_half_fft_size_is_rejected(caplog):
    h, u, *_ = operands(1, 2, N // 2 + 1)
    with pytest.raises(Exception, match="Reshape"):
        run(plugin_graph((2,), h), {"signal": u})
    assert "fft_size/2" in caplog.text
    with pytest.raises(ValueError):
        fftconv_plugin_reference(torch.from_numpy(u), torch.from_numpy(plugin.filter_spectrum(h, N)), fft_size=N)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: cuFFT path of the plugin math not run")
def test_torch_kernel_math_cuda():
    assert torch_math_error("cuda") <= 1e-5
    assert torch_math_error("cuda", torch.float16) <= 2e-3
