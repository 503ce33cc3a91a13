"""Static compatibility checks of tiny hand-built graphs against TensorRT 10/11 and ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hyena_deploy import compat
from hyena_deploy.compat import verdict
from hyena_deploy.targets import check as check_compatibility
from hyena_deploy.targets import names
from hyena_deploy.errors import HyenaDeployError


def _model(nodes, inputs, outputs, initializers=(), domains=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    opsets = [helper.make_opsetid("", 20)] + [helper.make_opsetid(d, 1) for d in domains]
    return helper.make_model(graph, opset_imports=opsets, ir_version=10)


def _vi(name, elem=TensorProto.FLOAT, shape=("batch", "seq", 4)):
    return helper.make_tensor_value_info(name, elem, shape)


def _dft_model(elem=TensorProto.FLOAT) -> onnx.ModelProto:
    axis = numpy_helper.from_array(np.array(-2, np.int64), "axis")
    node = helper.make_node("DFT", ["x", "", "axis"], ["y"], name="signal_dft", onesided=1)
    return _model([node], [_vi("x", elem, ("batch", 64, 1))], [_vi("y", elem, None)], [axis])


def _by(problems, code):
    return [p for p in problems if p.code == code]


TARGETS = ("tensorrt-10", "tensorrt-11", "onnxruntime")


def test_the_target_table_holds_the_documented_four():
    assert names() == ["onnxruntime", "onnxruntime-gpu", "tensorrt-10", "tensorrt-11"]


def test_dft_is_an_error_on_tensorrt_10_with_the_monarch_fix():
    problems = check_compatibility(_dft_model(), "tensorrt-10")
    assert len(problems) == 1
    p = problems[0]
    assert (p.node, p.op_type, p.severity) == ("signal_dft", "DFT", "error")
    assert "--fftconv monarch" in p.fix and "hyena-deploy rewrite" in p.fix
    assert not verdict(problems)


def test_dft_on_tensorrt_11_is_fine_in_fp32_and_warns_power_of_two_in_fp16():
    assert check_compatibility(_dft_model(TensorProto.FLOAT), "tensorrt-11") == []
    problems = check_compatibility(_dft_model(TensorProto.FLOAT16), "tensorrt-11")
    assert [p.severity for p in problems] == ["warning"]
    assert "power-of-two" in problems[0].reason and "FFTPlugin" in problems[0].reason
    assert verdict(problems)


def test_dft_on_onnxruntime_warns_in_fp32_and_fails_in_fp16():
    fp32 = check_compatibility(_dft_model(TensorProto.FLOAT), "onnxruntime")
    assert [p.severity for p in fp32] == ["warning"] and "CPU only" in fp32[0].reason
    fp16 = check_compatibility(_dft_model(TensorProto.FLOAT16), "onnxruntime")
    assert "error" in {p.severity for p in fp16} and not verdict(fp16)


def test_matmul_only_graph_is_clean_everywhere():
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    model = _model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [_vi("x")], [_vi("y")], [w])
    for target in TARGETS:
        assert check_compatibility(model, target) == [], target


def test_hyena_plugin_node_needs_plugin_lib_on_tensorrt_and_is_accepted_by_onnxruntime():
    node = helper.make_node("FFTConv", ["x"], ["y"], name="hyena_fftconv/0", domain="hyena_deploy",
                            plugin_namespace="hyena_deploy", plugin_version="1", fft_size=128)
    model = _model([node], [_vi("x")], [_vi("y")], domains=["hyena_deploy"])
    for target in ("tensorrt-10", "tensorrt-11"):
        (p,) = check_compatibility(model, target)
        assert p.code == "plugin-required" and p.severity == "warning"
        assert "--plugin-lib" in p.fix and "'hyena_deploy'" in p.reason
    assert check_compatibility(model, "onnxruntime") == []


def test_unknown_custom_op_without_namespace_is_looked_up_by_op_type():
    node = helper.make_node("Swizzle", ["x"], ["y"], name="sw", domain="acme")
    model = _model([node], [_vi("x")], [_vi("y")], domains=["acme"])
    (p,) = check_compatibility(model, "tensorrt-10")
    assert "op type 'Swizzle'" in p.reason and "none set" in p.reason and p.severity == "warning"
    (ort,) = check_compatibility(model, "onnxruntime")
    assert ort.severity == "error" and "acme::Swizzle" in ort.reason


def test_custom_op_with_namespace_names_it():
    node = helper.make_node("Swizzle", ["x"], ["y"], name="sw", domain="acme", plugin_namespace="acme_ns",
                            plugin_version="2")
    (p,) = check_compatibility(_model([node], [_vi("x")], [_vi("y")], domains=["acme"]), "tensorrt-11")
    assert "plugin_namespace 'acme_ns'" in p.reason and "plugin_version '2'" in p.reason


@pytest.mark.parametrize("op", ["Rfft", "Irfft"])
def test_contrib_fft_ops_fail_on_tensorrt_and_onnxruntime_cpu(op):
    node = helper.make_node(op, ["x"], ["y"], name="c", domain="com.microsoft")
    model = _model([node], [_vi("x")], [_vi("y", shape=None)], domains=["com.microsoft"])
    for target in TARGETS:
        problems = check_compatibility(model, target)
        assert [p.severity for p in problems] == ["error"], target
        assert "monarch" in problems[0].fix


def test_complex_initializer_is_an_error_on_tensorrt_and_a_warning_on_onnxruntime():
    k = numpy_helper.from_array(np.array([1 + 0j, 0.5 + 0.5j], np.complex64), "k")
    model = _model([helper.make_node("Identity", ["x"], ["y"], name="id")], [_vi("x")], [_vi("y")], [k])
    (trt,) = _by(check_compatibility(model, "tensorrt-10"), "complex")
    assert trt.severity == "error" and "'k'" in trt.reason and "COMPLEX64" in trt.reason
    assert "monarch" in trt.fix
    (ort,) = _by(check_compatibility(model, "onnxruntime"), "complex")
    assert ort.severity == "warning"


def test_double_tensors_warn_on_tensorrt_only():
    model = _model([helper.make_node("Relu", ["x"], ["y"], name="r")],
                   [_vi("x", TensorProto.DOUBLE)], [_vi("y", TensorProto.DOUBLE)])
    problems = check_compatibility(model, "tensorrt-11")
    assert {p.code for p in problems} == {"double"} and verdict(problems)
    assert {p.severity for p in problems} == {"warning"}
    assert check_compatibility(model, "onnxruntime") == []


def test_rank_above_8_found_after_shape_inference():
    shape = numpy_helper.from_array(np.ones(9, np.int64), "shape9")
    node = helper.make_node("Reshape", ["x", "shape9"], ["big"], name="to_rank9")
    out = helper.make_node("Reshape", ["big", "flat"], ["y"], name="back")
    flat = numpy_helper.from_array(np.array([1], np.int64), "flat")
    model = _model([node, out], [_vi("x", shape=(1, 1, 1))], [_vi("y", shape=(1,))], [shape, flat])
    (p,) = _by(check_compatibility(model, "tensorrt-10"), "rank")
    assert (p.node, p.op_type, p.severity) == ("to_rank9", "Reshape", "error") and "rank 9" in p.reason
    assert _by(check_compatibility(model, "onnxruntime"), "rank") == []


def test_failed_shape_inference_still_checks(monkeypatch):
    def boom(model):
        raise onnx.shape_inference.InferenceError("no")

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", boom)
    assert [p.op_type for p in check_compatibility(_dft_model(), "tensorrt-10")] == ["DFT"]


def _conv_model(weight_is_input: bool, bias_is_input: bool) -> onnx.ModelProto:
    inputs, inits = [_vi("x", shape=(1, 4, 16))], []
    for name, shape, is_input in (("w", (4, 1, 3), weight_is_input), ("b", (4,), bias_is_input)):
        if is_input:
            inputs.append(_vi(name, shape=shape))
        else:
            inits.append(numpy_helper.from_array(np.ones(shape, np.float32), name))
    conv = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", group=4, pads=[2, 0])
    return _model([conv], inputs, [_vi("y", shape=(1, 4, 16))], inits)


def test_conv_with_weight_as_graph_input_warns_and_bias_as_input_fails_on_tensorrt():
    (weight,) = check_compatibility(_conv_model(True, False), "tensorrt-10")
    assert weight.code == "constant-input" and weight.severity == "warning" and "'w'" in weight.reason
    (bias,) = check_compatibility(_conv_model(False, True), "tensorrt-11")
    assert bias.severity == "error" and "bias 'b'" in bias.reason
    assert check_compatibility(_conv_model(False, False), "tensorrt-10") == []
    assert check_compatibility(_conv_model(True, True), "onnxruntime") == []


def test_conv_bias_from_constant_node_is_fine():
    const = helper.make_node("Constant", [], ["b"], name="bias_const",
                             value=numpy_helper.from_array(np.zeros(4, np.float32)))
    w = numpy_helper.from_array(np.ones((4, 1, 3), np.float32), "w")
    conv = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", group=4, pads=[2, 0])
    model = _model([const, conv], [_vi("x", shape=(1, 4, 16))], [_vi("y", shape=(1, 4, 16))], [w])
    assert check_compatibility(model, "tensorrt-10") == []


def test_nodes_inside_subgraphs_are_checked():
    then_branch = helper.make_graph([helper.make_node("DFT", ["x"], ["t"], name="inner_dft")], "then", [],
                                    [_vi("t", shape=None)])
    else_branch = helper.make_graph([helper.make_node("Identity", ["x"], ["e"], name="inner_id")], "else", [],
                                    [_vi("e", shape=None)])
    cond = numpy_helper.from_array(np.array(True), "cond")
    node = helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then_branch, else_branch=else_branch)
    model = _model([node], [_vi("x")], [_vi("y", shape=None)], [cond])
    problems = check_compatibility(model, "tensorrt-10")
    assert {(p.node, p.severity) for p in problems} == {("branch", "warning"), ("inner_dft", "error")}


def test_unknown_target_is_a_user_error():
    with pytest.raises(HyenaDeployError, match="tensorrt-10"):
        check_compatibility(_dft_model(), "tensorrt-9")


def test_verdict_ignores_warnings():
    warn = compat.Problem("n", "Op", "r", "f", "warning")
    err = compat.Problem("n", "Op", "r", "f", "error")
    assert verdict([]) and verdict([warn]) and not verdict([warn, err])
    assert str(err) == "node 'n' (Op): r; fix: f"
