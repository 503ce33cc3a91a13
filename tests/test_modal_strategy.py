"""``--fftconv modal``: exact chunked scan on modal filters, TensorRT-safe ops, refusal of non-modal filters."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from hyena_deploy.distill.fit import modal_impulse
from hyena_deploy.graph import NodeBuilder
from hyena_deploy.spectral import causal_conv_reference
from hyena_deploy.strategies import auto, chooser, modal

ALLOWED_OPS = {"MatMul", "Mul", "Add", "Sub", "Reshape", "Transpose", "Slice", "Pad", "Concat", "Shape", "Mod",
               "ConstantOfShape"}


def modal_filters(channels: int, modes: int, length: int, rng: np.random.Generator, real_poles: int = 0) -> np.ndarray:
    """Filters of ``modes`` conjugate pairs plus ``real_poles`` real poles per channel, radii up to 0.9995."""
    pairs = rng.uniform(0.8, 0.9995, (channels, modes)) * np.exp(1j * rng.uniform(0, np.pi, (channels, modes)))
    real = rng.uniform(-0.99, 0.999, (channels, real_poles)).astype(np.complex128)
    poles = np.concatenate([pairs, real], axis=1)
    residues = rng.standard_normal(poles.shape) + 1j * rng.standard_normal(poles.shape) * (poles.imag != 0)
    return modal_impulse(poles, residues, length)


def session(h: np.ndarray, static_length: int | None = None) -> tuple[ort.InferenceSession, onnx.ModelProto]:
    channels = h.shape[:-1]
    nb = NodeBuilder("conv")
    modal.build(nb, "u", "y", h.reshape(-1, h.shape[-1]).reshape(h.shape))
    dims = ["batch", *channels, static_length or "seq"]
    graph = helper.make_graph(nb.nodes, "g", [helper.make_tensor_value_info("u", onnx.TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, dims)], nb.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]), model


def rel_l2(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


@pytest.mark.parametrize("channels, modes, real_poles, max_len", [((5,), 2, 0, 301), ((2, 3), 3, 1, 1000),
                                                                    ((4,), 8, 0, 2048), ((3,), 0, 16, 777)])
def test_dynamic_lengths_match_float64_convolution(channels, modes, real_poles, max_len) -> None:
    rng = np.random.default_rng()
    h = modal_filters(int(np.prod(channels)), modes, max_len, rng, real_poles).reshape(*channels, max_len)
    run, model = session(h)
    assert {n.op_type for n in model.graph.node} <= ALLOWED_OPS
    assert all(t.data_type == onnx.TensorProto.FLOAT or t.data_type == onnx.TensorProto.INT64
               for t in model.graph.initializer)
    for batch, length in [(1, 1), (3, 17), (2, max_len // 2 + 1), (3, max_len - 1), (1, max_len)]:
        u = rng.standard_normal((batch, *channels, length)).astype(np.float32)
        got = run.run(None, {"u": u})[0]
        assert got.shape == u.shape
        assert rel_l2(got, causal_conv_reference(u.astype(np.float64), h)) <= 1e-5


def test_static_length_and_fp32_filter() -> None:
    """A filter measured from an fp32 model is modal only to fp32 accuracy: still accepted, still exact."""
    rng = np.random.default_rng()
    h = modal_filters(6, 4, 4096, rng).astype(np.float32).astype(np.float64)
    run, _ = session(h, static_length=4096)
    u = rng.standard_normal((2, 6, 4096)).astype(np.float32)
    assert rel_l2(run.run(None, {"u": u})[0], causal_conv_reference(u.astype(np.float64), h)) <= 1e-5


def test_direct_term_in_the_filter() -> None:
    rng = np.random.default_rng()
    h = modal_filters(3, 2, 500, rng)
    h[:, 0] += 2.0
    run, _ = session(h)
    u = rng.standard_normal((2, 3, 333)).astype(np.float32)
    assert rel_l2(run.run(None, {"u": u})[0], causal_conv_reference(u.astype(np.float64), h)) <= 1e-5


def test_non_modal_filter_is_refused_with_one_line() -> None:
    rng = np.random.default_rng()
    h = rng.standard_normal((4, 512)) * np.exp(-np.arange(512) / 100)
    with pytest.raises(modal.NotModal, match="not modal") as info:
        modal.build(NodeBuilder("x"), "u", "y", h)
    assert "\n" not in str(info.value)
    assert not modal.is_modal(h)
    assert modal.is_modal(modal_filters(2, 2, 512, rng))
    assert chooser("modal", "onnxruntime")(h) == "modal"  # an explicit choice is kept; build refuses


def test_input_longer_than_the_graph_allows_is_an_error() -> None:
    h = modal_filters(2, 2, 256, np.random.default_rng())
    run, _ = session(h)
    t = modal.chunk_size(256, 2)
    with pytest.raises(Exception):
        run.run(None, {"u": np.ones((1, 2, -(-256 // t) * t + 1), np.float32)})


def test_chunk_size_grows_with_modes_and_never_exceeds_the_length() -> None:
    assert modal.chunk_size(65536, 16) >= modal.chunk_size(65536, 1)
    assert modal.chunk_size(10, 4) == modal.CHUNK_SIZES[0]
    assert all(modal.chunk_size(n, 2) <= max(16, n) for n in (16, 100, 4096))


def test_auto_picks_modal_only_where_measured_rules_say_so(monkeypatch) -> None:
    rng = np.random.default_rng()
    modal_h, other = modal_filters(3, 2, 1024, rng), rng.standard_normal((3, 1024)) * np.exp(-np.arange(1024) / 99)
    table = {"targets": {"onnxruntime": {"rules": [[None, "monarch"]], "modal": [[512, 4], [4096, 16]]}}}
    monkeypatch.setattr(auto, "_crossovers", lambda: table)
    choose = auto.chooser("onnxruntime")
    assert choose(modal_h) == "modal"
    assert choose(other) == "monarch"
    assert choose(modal_filters(3, 8, 1024, rng)) == "monarch"      # more modes than measured to win here
    assert choose(modal_filters(3, 2, 256, rng)) == "monarch"       # shorter than any measured win
    assert choose(modal_filters(2, 2, 8193, rng)) == "monarch"      # past twice the longest measured length
    table["targets"]["onnxruntime"].pop("modal")
    assert auto.chooser("onnxruntime")(modal_h) == "monarch"        # no measurement, no modal
