"""fp16/bf16 exports: ORT CPU parity with fp32 PyTorch, FFT-conv islands fp32, I/O and integer types kept."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.jobs.export import export_model
from hyena_deploy.precision import LOW_TYPES, apply_precision, elem_types, for_onnxruntime
from hyena_deploy.names import FFTCONV_PREFIX
from hyena_deploy.runtime import OrtModel
from hyena_deploy.sources import load_source
from hyena_deploy.runners.torch_runner import TorchRunner
from hyena_deploy.verify import compare_output, default_tolerance

MAX_LEN = 256
LENGTHS = (MAX_LEN, 77)
FLOATS = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16}
CASES = [("hyena-tiny", "monarch"), ("hyena-tiny", "direct"), ("order2", "direct"), ("lm", "monarch")]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, elsewhere: str) -> Callable[[str, str], tuple[str, onnx.ModelProto]]:
    """fp32 dynamic-length export (unverified) of a sample or a model written elsewhere, made once per module."""
    done: dict[tuple[str, str], tuple[str, onnx.ModelProto]] = {}

    def get(name: str, strategy: str) -> tuple[str, onnx.ModelProto]:
        if (name, strategy) not in done:
            source = name if name.startswith("hyena-") else elsewhere + name
            path = tmp_path_factory.mktemp("fp32") / "m.onnx"
            export_model(source, path, fftconv=strategy, max_seq_len=MAX_LEN, verify=False)
            done[name, strategy] = source, onnx.load(str(path))
        return done[name, strategy]

    return get


def _rel_l2_errors(source: str, model: onnx.ModelProto, precision: str, view: bool = True) -> list[float]:
    """ORT CPU (through the parity view unless told not to) vs fp32 PyTorch at each length, batch 3, fresh
    inputs; asserts the default tolerance."""
    loaded = load_source(source)
    runner = OrtModel(for_onnxruntime(model) if view else model)
    rng = np.random.default_rng()
    errors = []
    for length in LENGTHS:
        inputs = loaded.make_inputs(3, length, rng)
        want = TorchRunner(loaded).run_tensors(inputs)
        got = runner.run([x.numpy() for x in inputs])
        for name, w, g in zip(runner.output_names, want, got):
            report = compare_output(name, f"L={length}", w, g.astype(np.float32), default_tolerance(precision))
            assert report.passed, report
            errors.append(report.rel_l2)
    return errors


def _island_types_are_fp32(model: onnx.ModelProto) -> None:
    types = elem_types(model)
    inits = {t.name: t.data_type for t in model.graph.initializer}
    islands = [n for n in model.graph.node if n.name.startswith(FFTCONV_PREFIX)]
    assert islands
    for node in islands:
        for name in filter(None, (*node.input, *node.output)):
            assert name in types, (node.name, name)
            if types[name] in FLOATS:
                assert types[name] == TensorProto.FLOAT, (node.name, name, types[name])
            if name in inits:
                assert inits[name] in (TensorProto.FLOAT, TensorProto.INT64), (node.name, name)


def _io_types(model: onnx.ModelProto) -> list[tuple[str, int]]:
    return [(vi.name, vi.type.tensor_type.elem_type) for vi in (*model.graph.input, *model.graph.output)]


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("name,strategy", CASES)
def test_lowered_export_meets_tolerance_with_fp32_fftconv(exported, name: str, strategy: str,
                                                          precision: str) -> None:
    source, fp32 = exported(name, strategy)
    low = apply_precision(fp32, precision)
    onnx.checker.check_model(low, full_check=True)
    assert _io_types(low) == _io_types(fp32)
    _island_types_are_fp32(low)
    types, before = elem_types(low), elem_types(fp32)
    assert all(types[n] == t for n, t in before.items() if n in types and t not in FLOATS), "integer retyped"
    outside = [n for n in low.graph.node if not n.name.startswith(FFTCONV_PREFIX)]
    assert any(n.op_type in ("MatMul", "Gemm") and types[n.output[0]] == LOW_TYPES[precision] for n in outside)
    inits = {t.name for t in low.graph.initializer}
    assert not [n.name for n in outside if n.op_type == "Cast" and n.input[0] in inits], "weights cast at run time"
    _rel_l2_errors(source, low, precision)
    if precision == "fp16":  # also runs as written: ORT computes fp16 nodes without a CPU kernel in fp32
        _rel_l2_errors(source, low, precision, view=False)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_low_precision_io_keeps_ids_integer(exported, precision: str) -> None:
    source, fp32 = exported("lm", "monarch")
    low = apply_precision(fp32, precision, keep_io_types=False)
    onnx.checker.check_model(low, full_check=True)
    assert [t for _, t in _io_types(low)] == [TensorProto.INT64, LOW_TYPES[precision]]
    _island_types_are_fp32(low)
    _rel_l2_errors(source, low, precision)


def test_fp16_keeps_nodes_with_out_of_range_constants_in_fp32() -> None:
    w = np.full((4, 4), 0.25, np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"), helper.make_node("Mul", ["h", "big"], ["y"], name="mul")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(1e5, np.float32), "big")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)
    notes: list[str] = []
    low = apply_precision(model, "fp16", notes=notes)
    onnx.checker.check_model(low, full_check=True)
    types = elem_types(low)
    assert types["h"] == TensorProto.FLOAT16 and types["h__fp32"] == TensorProto.FLOAT == types["y"]
    assert len(notes) == 1 and "'mul'" in notes[0]
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    got = OrtModel(low).run([x])[0]
    assert np.isfinite(got).all() and np.allclose(got, x @ w * 1e5, rtol=1e-2)


def test_precision_names_and_tolerances() -> None:
    assert default_tolerance("fp16").max_rel_l2 == 1e-2 and default_tolerance("bf16").max_rel_l2 == 3e-2
    assert default_tolerance("fp32").max_rel_l2 == 1e-5
    with pytest.raises(HyenaDeployError, match="unknown precision"):
        apply_precision(onnx.ModelProto(), "int8")
