"""The Monarch strategy's structure: radix plans, ops and ranks, exactness for every plan, the Hermitian half."""

from __future__ import annotations

from collections import Counter
from math import prod

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from hyena_deploy.graph import NodeBuilder
from hyena_deploy.spectral import causal_conv_reference, fft_size_for
from hyena_deploy.strategies import monarch

ALLOWED = {"MatMul", "Mul", "Reshape", "Transpose", "Slice", "Concat", "Shape", "Sub", "ConstantOfShape"}


def _model(h: np.ndarray, digits: tuple[int, ...] | None = None, dims: list | None = None) -> onnx.ModelProto:
    nb = NodeBuilder("conv")
    monarch.build(nb, "u", "y", h, digits)
    dims = dims or ["batch", h.shape[0], "seq"]
    graph = helper.make_graph(nb.nodes, "g", [helper.make_tensor_value_info("u", onnx.TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, dims)], nb.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    return model


def _rel_errors(h: np.ndarray, lengths: list[int], digits: tuple[int, ...] | None = None) -> list[float]:
    session = ort.InferenceSession(_model(h, digits).SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    errors = []
    for length in lengths:
        u = rng.standard_normal((2, h.shape[0], length)).astype(np.float32)
        want = causal_conv_reference(u.astype(np.float64), h)
        errors.append(float(np.linalg.norm(session.run(None, {"u": u})[0] - want) / np.linalg.norm(want)))
    return errors


def _filters(channels: int, taps: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.standard_normal((channels, taps)) * np.exp(-np.arange(taps) / max(taps / 8, 1))


@pytest.mark.parametrize("n", [1 << p for p in range(2, 19)])
def test_radices_multiply_to_n_and_shrink_after_the_first(n: int) -> None:
    digits = monarch.radices(n)
    assert prod(digits) == n and all(d & (d - 1) == 0 for d in digits)
    if n <= monarch.SINGLE_STAGE_MAX:
        assert digits == (n,)
    else:
        assert digits[0] in (32, 64) and list(digits[1:]) == sorted(digits[1:], reverse=True)
        assert 2 <= min(digits[1:]) and max(digits[1:]) <= 16


@pytest.mark.parametrize("n", [0, 2, 6, 1000])
def test_radices_refuse_sizes_that_are_not_powers_of_two(n: int) -> None:
    with pytest.raises(ValueError):
        monarch.radices(n)


def test_graph_is_one_matmul_per_stage_and_direction_with_no_slicing_between() -> None:
    h = _filters(6, 4096)
    digits = monarch.radices(fft_size_for(4096))
    model = _model(h, dims=[1, 6, 4096])
    ops = Counter(node.op_type for node in model.graph.node)
    assert set(ops) <= ALLOWED, set(ops) - ALLOWED
    assert ops["MatMul"] == 2 * len(digits) and ops["Mul"] == 1 and ops["Slice"] == 1 and ops["Transpose"] == 2
    assert all(len(init.dims) <= 4 for init in model.graph.initializer)
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True).graph.value_info
    ranks = {vi.name: len(vi.type.tensor_type.shape.dim) for vi in inferred if vi.type.tensor_type.HasField("shape")}
    assert len(ranks) > 2 * len(digits) and max(ranks.values()) <= 5


def test_filter_spectrum_is_the_hermitian_half() -> None:
    channels, n = 3, 8192
    plan = monarch.monarch_constants(_filters(channels, n // 2), monarch.radices(n))
    n1 = plan.digits[0]
    assert plan.spectrum.size == 2 * channels * (n1 // 2 + 1) * (n // n1)


@pytest.mark.parametrize("digits", [(1024,), (64, 16), (32, 8, 4), (16, 8, 4, 2), (8, 4, 4, 4, 2)])
def test_every_plan_matches_float64(digits: tuple[int, ...]) -> None:
    assert max(_rel_errors(_filters(5, 512), [1, 17, 300, 512], digits)) <= 1e-6


def test_short_inputs_in_a_long_graph_stay_exact() -> None:
    """The tightest case: a few positions through a graph padded to 4096 (was ~5e-6 rel L2)."""
    assert max(_rel_errors(_filters(8, 4096), [1, 2, 17])) <= 1e-6
