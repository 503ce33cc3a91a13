"""TensorRT build decisions without TensorRT: shapes, plans for 10.x vs 11.x, the sidecar, the build command."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from hyena_deploy import files, metadata
from hyena_deploy.files import write_atomic
from hyena_deploy.cli import main
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.tensorrt import engine_meta, trt_api
from hyena_deploy.tensorrt.engine_meta import BuildEnvironment, check_loadable
from hyena_deploy.tensorrt.plan import BuildOptions, check_build_device, make_plan
from hyena_deploy.tensorrt.shapes import InputShape, default_profile, parse_shapes, resolve_profile

TRT10, TRT11 = (10, 8), (11, 4)


# ---------------------------------------------------------------- tiny models

def _model(shape=("batch", "seq"), meta=None, elem=TensorProto.INT64, nodes=None, inputs=None,
           initializers=(), domains=()) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("input_ids", elem, shape)
    y = helper.make_tensor_value_info("y", elem, None)
    graph = helper.make_graph(nodes or [helper.make_node("Identity", ["input_ids"], ["y"], name="id")], "g",
                              inputs or [x], [y], list(initializers))
    opsets = [helper.make_opsetid("", 20)] + [helper.make_opsetid(d, 1) for d in domains]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=10)
    metadata.write(model, meta if meta is not None else {
        metadata.MAX_SEQ_LEN: "4096", metadata.DYNAMIC_SEQ: "true", metadata.DYNAMIC_BATCH: "true",
        metadata.PRECISION: "fp32", metadata.STRATEGY: "monarch"})
    return model


def _dft_model() -> onnx.ModelProto:
    u = helper.make_tensor_value_info("u", TensorProto.FLOAT, ["batch", "seq", 1])
    axis = numpy_helper.from_array(np.array(-2, np.int64), "axis")
    node = helper.make_node("DFT", ["u", "", "axis"], ["y"], name="hyena_fftconv/dft", onesided=1)
    return _model(nodes=[node], inputs=[u], initializers=[axis], elem=TensorProto.FLOAT)


def _plugin_model() -> onnx.ModelProto:
    u = helper.make_tensor_value_info("u", TensorProto.FLOAT, ["batch", "seq", 8])
    node = helper.make_node("FFTConv", ["u"], ["y"], name="hyena_fftconv/0", domain="hyena_deploy",
                            plugin_namespace="hyena_deploy", plugin_version="1")
    return _model(nodes=[node], inputs=[u], elem=TensorProto.FLOAT, domains=["hyena_deploy"])


# ---------------------------------------------------------------- shape strings

def test_parse_shapes():
    assert parse_shapes(None, "--opt-shapes") == {}
    assert parse_shapes("u:1x4096, v:2x8x16", "--opt-shapes") == {"u": (1, 4096), "v": (2, 8, 16)}
    assert parse_shapes("input:0:1x2", "--opt-shapes") == {"input:0": (1, 2)}  # name = up to the last ':'


@pytest.mark.parametrize("text, message", [
    ("u", "not NAME:DIMS"), (":1x2", "not NAME:DIMS"), ("u:", "integers joined by 'x'"),
    ("u:1x", "integers joined by 'x'"), ("u:1xa", "integers joined by 'x'"), ("u:-1x4", "integers joined by 'x'"),
    ("u:0x4", "positive"), ("u:1x2,u:1x2", "given twice"), ("u:1x2,", "not NAME:DIMS"),
])
def test_parse_shapes_errors_name_the_option(text, message):
    with pytest.raises(HyenaDeployError, match=message) as info:
        parse_shapes(text, "--max-shapes")
    assert str(info.value).startswith("--max-shapes")


# ---------------------------------------------------------------- default profiles

def test_default_profile_dynamic_batch_and_seq():
    (shape,) = default_profile(_model())
    assert shape == InputShape("input_ids", (1, 1), (1, 4096), (8, 4096))


def test_default_profile_static_dims_fixed_and_dim_params_recognised_without_flags():
    meta = {metadata.MAX_SEQ_LEN: "512"}
    (shape,) = default_profile(_model(shape=("batch", "seq", 16), meta=meta))
    assert shape == InputShape("input_ids", (1, 1, 16), (1, 512, 16), (8, 512, 16))
    (fixed,) = default_profile(_model(shape=(2, 128), meta={}))
    assert fixed == InputShape("input_ids", (2, 128), (2, 128), (2, 128))


def test_initializers_listed_as_inputs_are_not_profiled():
    w = numpy_helper.from_array(np.zeros(3, np.int64), "w")
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
              helper.make_tensor_value_info("w", TensorProto.INT64, [3])]
    assert [s.name for s in default_profile(_model(inputs=inputs, initializers=[w]))] == ["input_ids"]


@pytest.mark.parametrize("shape, meta, axis_text", [
    (("batch", "seq", "channels"), None, "axis 2 (channels)"),
    (("batch", "seq"), {metadata.DYNAMIC_SEQ: "true", metadata.DYNAMIC_BATCH: "true"}, "axis 1 (seq)"),
    (("n", 16), {}, "axis 0 (n)"),
])
def test_unknown_dynamic_dims_need_a_spec(shape, meta, axis_text):
    with pytest.raises(HyenaDeployError, match=r"input 'input_ids' .*--max-shapes input_ids:") as info:
        default_profile(_model(shape=shape, meta=meta))
    assert axis_text in str(info.value)


def test_input_without_shape_needs_a_spec():
    with pytest.raises(HyenaDeployError, match="no shape"):
        default_profile(_model(shape=None))
    (shape,) = resolve_profile(_model(shape=None), max_shapes="input_ids:2x8")
    assert shape == InputShape("input_ids", (1, 1), (2, 8), (2, 8))


def test_bad_max_seq_len_metadata():
    with pytest.raises(HyenaDeployError, match="max_seq_len"):
        default_profile(_model(meta={metadata.MAX_SEQ_LEN: "lots", metadata.DYNAMIC_SEQ: "true"}))


# ---------------------------------------------------------------- merging user shapes

def test_user_max_only_keeps_default_min_and_clamps_opt():
    (shape,) = resolve_profile(_model(), max_shapes="input_ids:4x2048")
    assert shape == InputShape("input_ids", (1, 1), (1, 2048), (4, 2048))


def test_user_opt_only_grows_the_max():
    (shape,) = resolve_profile(_model(), opt_shapes="input_ids:16x1024")
    assert shape == InputShape("input_ids", (1, 1), (16, 1024), (16, 4096))


def test_user_min_clamps_default_opt_up():
    (shape,) = resolve_profile(_model(), min_shapes="input_ids:2x2048")
    assert shape == InputShape("input_ids", (2, 2048), (2, 4096), (8, 4096))


def test_unknown_dim_with_max_only():
    (shape,) = resolve_profile(_model(shape=("batch", "seq", "ch")), max_shapes="input_ids:2x64x32")
    assert shape == InputShape("input_ids", (1, 1, 1), (1, 64, 32), (2, 64, 32))


@pytest.mark.parametrize("kwargs, message", [
    (dict(min_shapes="input_ids:4x64", opt_shapes="input_ids:2x64"), "min 4 <= opt 2"),
    (dict(max_shapes="input_ids:1x8192"), "exceeds the model's max_seq_len 4096"),
    (dict(opt_shapes="tokens:1x64"), "unknown input.*'tokens'.*'input_ids'"),
    (dict(max_shapes="input_ids:1x64x2"), "3 dims; the model input has 2"),
])
def test_merge_errors(kwargs, message):
    with pytest.raises(HyenaDeployError, match=message):
        resolve_profile(_model(), **kwargs)


def test_static_dim_cannot_be_overridden():
    with pytest.raises(HyenaDeployError, match="axis 2 .* fixed at 16"):
        resolve_profile(_model(shape=("batch", "seq", 16)), max_shapes="input_ids:1x64x32")


# ---------------------------------------------------------------- plans: TensorRT 10 vs 11

def test_plan_on_tensorrt_10_creates_a_strongly_typed_network_and_clears_tf32():
    plan = make_plan(_model(), BuildOptions(), TRT10)
    assert plan.strongly_typed and plan.network_flags == ("STRONGLY_TYPED",)
    assert plan.set_flags == () and plan.cleared_flags == ("TF32",) and not plan.tf32
    assert plan.compat_target == "tensorrt-10" and plan.precision == "fp32"
    assert plan.builder_opt_level == 3 and plan.workspace_mb is None and plan.hardware_level == "NONE"
    assert plan.profile == default_profile(_model())


def test_plan_on_tensorrt_11_passes_no_typing_flag_and_no_precision_flags():
    plan = make_plan(_model(), BuildOptions(tf32=True, version_compatible=True, hardware_compat="ampere+"), TRT11)
    assert plan.strongly_typed and plan.network_flags == ()
    assert plan.set_flags == ("TF32", "VERSION_COMPATIBLE") and plan.cleared_flags == ()
    assert plan.compat_target == "tensorrt-11" and plan.hardware_level == "AMPERE_PLUS"
    assert not {"FP16", "BF16", "INT8"} & set(plan.set_flags)


def test_precision_comes_from_metadata_or_the_inputs():
    assert make_plan(_model(meta={metadata.PRECISION: "bf16"}, shape=(1, 8)), BuildOptions(), TRT11).precision == "bf16"
    fp16 = _model(meta={}, shape=(1, 8), elem=TensorProto.FLOAT16)
    assert make_plan(fp16, BuildOptions(), TRT10).precision == "fp16"
    with pytest.raises(HyenaDeployError, match="precision"):
        make_plan(_model(meta={metadata.PRECISION: "int8"}, shape=(1, 8)), BuildOptions(), TRT10)


def test_dft_graph_builds_only_from_tensorrt_11_2():
    with pytest.raises(HyenaDeployError, match=r"TensorRT 10\.8: node 'hyena_fftconv/dft' \(DFT\).*--fftconv monarch"):
        make_plan(_dft_model(), BuildOptions(), TRT10)
    with pytest.raises(HyenaDeployError, match="DFT"):
        make_plan(_dft_model(), BuildOptions(), (11, 1))
    assert make_plan(_dft_model(), BuildOptions(), (11, 2)).compat_target == "tensorrt-11"


def test_plugin_graph_needs_plugin_lib(tmp_path):
    with pytest.raises(HyenaDeployError, match="--plugin-lib"):
        make_plan(_plugin_model(), BuildOptions(), TRT11)
    lib = tmp_path / "libhyena_fftconv.so"
    lib.write_bytes(b"\x7fELF")
    plan = make_plan(_plugin_model(), BuildOptions(plugin_libs=(str(lib), str(lib))), TRT11)
    assert plan.plugin_libs == (str(lib.resolve()),) and plan.plugins_to_serialize == ()
    assert not any("plugin" in w for w in plan.warnings)


def test_version_compatible_serializes_plugin_libraries(tmp_path):
    lib = tmp_path / "libhyena_fftconv.so"
    lib.write_bytes(b"\x7fELF")
    plan = make_plan(_plugin_model(), BuildOptions(plugin_libs=(str(lib),), version_compatible=True), TRT10)
    assert plan.plugins_to_serialize == (str(lib.resolve()),) and "VERSION_COMPATIBLE" in plan.set_flags


@pytest.mark.parametrize("version, options, message", [
    ((9, 3), BuildOptions(), "TensorRT 9.3 is not supported"),
    (TRT11, BuildOptions(builder_opt_level=6), "--builder-opt-level must be 0..5"),
    (TRT11, BuildOptions(builder_opt_level=-1), "--builder-opt-level"),
    (TRT11, BuildOptions(workspace_mb=0), "--workspace"),
    (TRT11, BuildOptions(hardware_compat="volta+"), "unknown --hardware-compat 'volta\\+'"),
    ((10, 8), BuildOptions(hardware_compat="same-cc"), "same-cc needs TensorRT 10.9"),
    (TRT11, BuildOptions(plugin_libs=("/nonexistent/libx.so",)), "--plugin-lib /nonexistent/libx.so: no such file"),
    (TRT11, BuildOptions(max_shapes="input_ids:0x1"), "--max-shapes"),
])
def test_plan_validation_errors(version, options, message):
    with pytest.raises(HyenaDeployError, match=message):
        make_plan(_model(), options, version)


def test_same_cc_from_10_9_and_timing_cache_checks(tmp_path):
    assert make_plan(_model(), BuildOptions(hardware_compat="same-cc"), (10, 9)).hardware_level == \
        "SAME_COMPUTE_CAPABILITY"
    with pytest.raises(HyenaDeployError, match="is a directory"):
        make_plan(_model(), BuildOptions(timing_cache=str(tmp_path)), TRT11)
    plan = make_plan(_model(), BuildOptions(timing_cache=str(tmp_path / "tc.cache"), builder_opt_level=0), TRT11)
    assert plan.timing_cache == str((tmp_path / "tc.cache").resolve())
    assert any("ignores the timing cache" in w for w in plan.warnings)


def test_build_device_check():
    plan = make_plan(_model(), BuildOptions(hardware_compat="ampere+"), TRT11)
    with pytest.raises(HyenaDeployError, match="compute capability 8.0 or newer; this GPU is 7.5"):
        check_build_device(plan, (7, 5))
    check_build_device(plan, (8, 6))
    check_build_device(make_plan(_model(), BuildOptions(), TRT11), (6, 1))


# ---------------------------------------------------------------- sidecar

def _meta(**changes) -> engine_meta.EngineMeta:
    base = engine_meta.EngineMeta(
        tensorrt_version="10.8.0.43", gpu_name="NVIDIA A100", compute_capability=(8, 0),
        profile=(InputShape("input_ids", (1, 1), (1, 4096), (8, 4096)),), precision="fp32", tf32=False,
        hardware_compat="none", version_compatible=False, plugin_libraries=(), plugins_serialized=False,
        builder_opt_level=3, workspace_mb=None, source_onnx="/m.onnx", source_onnx_sha256="ab" * 32,
        engine_sha256="cd" * 32, hyena_deploy_version="0.1.0")
    return replace(base, **changes)


def test_sidecar_round_trip(tmp_path):
    path = engine_meta.sidecar_path(tmp_path / "m.engine")
    assert path.name == "m.engine.json"
    meta = _meta(plugin_libraries=("/opt/libhyena.so",), workspace_mb=2048)
    engine_meta.write_sidecar(path, meta)
    assert engine_meta.read_sidecar(path) == meta
    data = json.loads(path.read_text())
    assert data["format"] == 1 and data["compute_capability"] == [8, 0]
    assert data["profile"] == [{"name": "input_ids", "min": [1, 1], "opt": [1, 4096], "max": [8, 4096]}]
    assert list(tmp_path.iterdir()) == [path]


def test_sidecar_read_errors(tmp_path):
    with pytest.raises(HyenaDeployError, match="not found"):
        engine_meta.read_sidecar(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    for text in ("{not json", json.dumps({"format": 99}), json.dumps({"format": 1, "gpu_name": "x"})):
        bad.write_text(text)
        with pytest.raises(HyenaDeployError, match="not valid"):
            engine_meta.read_sidecar(bad)


def test_write_atomic_cleans_up_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "m.engine"
    target.write_bytes(b"old")

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", fail)
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]


def test_parse_version():
    assert engine_meta.parse_version("10.8.0.43") == (10, 8, 0, 43)
    assert engine_meta.parse_version("11.4.0rc1") == (11, 4, 0)
    assert engine_meta.parse_version((11, 4)) == (11, 4)
    with pytest.raises(HyenaDeployError):
        engine_meta.parse_version("dev")


def test_loadable_on_the_build_setup():
    check_loadable(_meta(), "10.8.0.43", "NVIDIA A100", (8, 0))
    check_loadable(_meta(), (10, 8), "NVIDIA A100-SXM4-80GB", (8, 0))  # compared on common components


@pytest.mark.parametrize("meta, version, message", [
    (_meta(), "10.9.0.1", "built with TensorRT 10.8.0.43 and this is TensorRT 10.9.0.1.*--version-compatible"),
    (_meta(), "10.8.1.2", "built with TensorRT 10.8.0.43"),
    (_meta(version_compatible=True), "10.7.0.1", "needs that release or newer"),
    (_meta(version_compatible=True, tensorrt_version="11.2.0.1"), "12.0.0.1",
     "TensorRT 11 does not run on TensorRT 12"),
])
def test_tensorrt_version_mismatch(meta, version, message):
    with pytest.raises(HyenaDeployError, match=message):
        check_loadable(meta, version, "NVIDIA A100", (8, 0))


def test_version_compatible_runs_on_newer_same_major_and_10_on_11():
    check_loadable(_meta(version_compatible=True), "10.15.1.29", "NVIDIA A100", (8, 0))
    check_loadable(_meta(version_compatible=True), "11.4.0.106", "NVIDIA A100", (8, 0))


@pytest.mark.parametrize("compat, built, here, ok", [
    ("none", (8, 0), (8, 0), True), ("none", (8, 0), (9, 0), False), ("none", (8, 6), (8, 0), False),
    ("ampere+", (8, 0), (9, 0), True), ("ampere+", (9, 0), (8, 6), True), ("ampere+", (8, 0), (7, 5), False),
    ("same-cc", (8, 9), (8, 9), True), ("same-cc", (8, 9), (8, 6), False),
])
def test_compute_capability_rules(compat, built, here, ok):
    meta = _meta(hardware_compat=compat, compute_capability=built)
    if ok:
        check_loadable(meta, "10.8.0.43", "GPU", here)
    else:
        with pytest.raises(HyenaDeployError, match=rf"this GPU \(GPU\) is {here[0]}\.{here[1]}"):
            check_loadable(meta, "10.8.0.43", "GPU", here)


def test_missing_plugin_libraries(tmp_path):
    recorded = tmp_path / "build" / "libhyena_fftconv.so"
    meta = _meta(plugin_libraries=(str(recorded),))
    with pytest.raises(HyenaDeployError, match="libhyena_fftconv.so, not found here: pass --plugin-lib"):
        check_loadable(meta, "10.8.0.43", "NVIDIA A100", (8, 0))
    offered = tmp_path / "libhyena_fftconv.so"
    offered.write_bytes(b"\x7fELF")
    check_loadable(meta, "10.8.0.43", "NVIDIA A100", (8, 0), plugin_libs=[str(offered)])
    with pytest.raises(HyenaDeployError, match="plugin"):
        check_loadable(meta, "10.8.0.43", "NVIDIA A100", (8, 0), plugin_libs=[str(tmp_path / "other.so")])
    check_loadable(replace(meta, plugins_serialized=True), "10.8.0.43", "NVIDIA A100", (8, 0))
    recorded.parent.mkdir()
    recorded.write_bytes(b"\x7fELF")
    check_loadable(meta, "10.8.0.43", "NVIDIA A100", (8, 0))


def test_engine_file_must_match_sidecar(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"ENGINE")
    engine_meta.check_engine_file(_meta(engine_sha256=hashlib.sha256(b"ENGINE").hexdigest()), engine)
    with pytest.raises(HyenaDeployError, match="does not match its sidecar"):
        engine_meta.check_engine_file(_meta(), engine)


# ---------------------------------------------------------------- the build command

@pytest.fixture
def cli():
    return main


@pytest.fixture
def onnx_file(tmp_path) -> Path:
    path = tmp_path / "model.onnx"
    onnx.save(_model(), str(path))
    return path


@pytest.fixture
def no_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` raises ImportError


def test_build_without_tensorrt_fails_with_one_line(cli, onnx_file, tmp_path, no_tensorrt):
    out = tmp_path / "out" / "model.engine"
    result = CliRunner().invoke(cli, ["build", str(onnx_file), "-o", str(out)])
    assert result.exit_code == 1
    assert result.stderr == "error: TensorRT is not installed: pip install 'hyena-deploy[gpu]'\n"
    assert not out.exists() and not engine_meta.sidecar_path(out).exists()


@pytest.mark.parametrize("args, message", [
    (["--max-shapes", "input_ids:1x8192"], "exceeds the model's max_seq_len"),
    (["--builder-opt-level", "9"], "--builder-opt-level must be 0..5"),
    (["--plugin-lib", "/nonexistent/lib.so"], "no such file"),
])
def test_build_validates_before_tensorrt(cli, onnx_file, tmp_path, no_tensorrt, args, message):
    result = CliRunner().invoke(cli, ["build", str(onnx_file), "-o", str(tmp_path / "m.engine"), *args])
    assert result.exit_code == 1 and message in result.stderr and "TensorRT is not installed" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")


def test_build_reports_missing_and_corrupt_models(cli, tmp_path):
    result = CliRunner().invoke(cli, ["build", str(tmp_path / "none.onnx"), "-o", str(tmp_path / "m.engine")])
    assert result.exit_code == 1 and "no such ONNX file" in result.stderr
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"definitely not protobuf")
    result = CliRunner().invoke(cli, ["build", str(corrupt), "-o", str(tmp_path / "m.engine")])
    assert result.exit_code == 1 and "not a readable ONNX model" in result.stderr
    assert result.stderr.count("\n") == 1


def test_build_help_documents_every_option(cli):
    result = CliRunner().invoke(cli, ["build", "--help"])
    for option in ("--output", "--min-shapes", "--opt-shapes", "--max-shapes", "--timing-cache", "--workspace",
                   "--tf32 / --no-tf32", "--hardware-compat", "--version-compatible", "--plugin-lib",
                   "--builder-opt-level"):
        assert option in result.output


@pytest.fixture
def fake_tensorrt(monkeypatch):
    """trt_api with TensorRT 10.8 on an A100, whose build_engine records its plan and returns fixed bytes."""
    calls = []

    def build_engine(onnx_path, plan):
        calls.append((Path(onnx_path), plan))
        return b"SERIALIZED-ENGINE"

    monkeypatch.setattr(trt_api, "trt_version", lambda: (10, 8))
    monkeypatch.setattr(trt_api, "environment", lambda: BuildEnvironment("10.8.0.43", "NVIDIA A100", (8, 0)))
    monkeypatch.setattr(trt_api, "build_engine", build_engine)
    return calls


def test_build_writes_engine_and_sidecar_atomically(cli, onnx_file, tmp_path, fake_tensorrt, monkeypatch):
    replaced = []
    real_replace = os.replace

    def spy(src, dst):
        replaced.append((Path(src), Path(dst), Path(src).read_bytes()))
        real_replace(src, dst)

    monkeypatch.setattr(engine_meta.os, "replace", spy)
    out = tmp_path / "engines" / "model.engine"
    result = CliRunner().invoke(cli, ["build", str(onnx_file), "-o", str(out), "--opt-shapes", "input_ids:1x1024",
                                      "--tf32", "--builder-opt-level", "4"])
    assert result.exit_code == 0, result.output
    sidecar = engine_meta.sidecar_path(out)
    assert out.read_bytes() == b"SERIALIZED-ENGINE"
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.engine", "model.engine.json"]
    assert [(dst, src.parent) for src, dst, _ in replaced] == [(out, out.parent), (sidecar, out.parent)]
    assert replaced[0][2] == b"SERIALIZED-ENGINE"
    (path, plan), = fake_tensorrt
    assert path == onnx_file and plan.tf32 and plan.builder_opt_level == 4 and plan.network_flags == ("STRONGLY_TYPED",)
    data = json.loads(sidecar.read_text())
    assert data["tensorrt_version"] == "10.8.0.43" and data["gpu_name"] == "NVIDIA A100"
    assert data["compute_capability"] == [8, 0] and data["precision"] == "fp32" and data["tf32"] is True
    assert data["profile"] == [{"name": "input_ids", "min": [1, 1], "opt": [1, 1024], "max": [8, 4096]}]
    assert data["engine_sha256"] == hashlib.sha256(b"SERIALIZED-ENGINE").hexdigest()
    assert data["source_onnx_sha256"] == hashlib.sha256(onnx_file.read_bytes()).hexdigest()
    assert data["hardware_compat"] == "none" and data["version_compatible"] is False
    engine_meta.check_loadable(engine_meta.read_sidecar(sidecar), "10.8.0.43", "NVIDIA A100", (8, 0))
    engine_meta.check_engine_file(engine_meta.read_sidecar(sidecar), out)


def test_failed_build_leaves_previous_engine_alone(cli, onnx_file, tmp_path, fake_tensorrt, monkeypatch):
    def failing(onnx_path, plan):
        raise HyenaDeployError("TensorRT failed to build the engine (see its log above)")

    monkeypatch.setattr(trt_api, "build_engine", failing)
    out = tmp_path / "model.engine"
    out.write_bytes(b"previous")
    result = CliRunner().invoke(cli, ["build", str(onnx_file), "-o", str(out)])
    assert result.exit_code == 1 and "failed to build" in result.stderr
    assert out.read_bytes() == b"previous" and not engine_meta.sidecar_path(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.engine", "model.onnx"]


def test_build_checks_the_gpu_for_ampere_plus(cli, onnx_file, tmp_path, fake_tensorrt, monkeypatch):
    monkeypatch.setattr(trt_api, "environment", lambda: BuildEnvironment("10.8.0.43", "Tesla T4", (7, 5)))
    result = CliRunner().invoke(cli, ["build", str(onnx_file), "-o", str(tmp_path / "m.engine"),
                                      "--hardware-compat", "ampere+"])
    assert result.exit_code == 1 and "this GPU is 7.5" in result.stderr and not fake_tensorrt


# ---------------------------------------------------------------- trt_api against a recording stand-in

class _FakeTensorRT(types.ModuleType):
    """Only the TensorRT Python API names trt_api may use (checked against pyCore.cpp / pyOnnx.cpp), recording calls."""

    def __init__(self, parses: bool = True):
        super().__init__("tensorrt")
        log: list = []
        self.log, self.__version__ = log, "10.8.0.43"
        self.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=1)
        self.BuilderFlag = types.SimpleNamespace(TF32="TF32", VERSION_COMPATIBLE="VERSION_COMPATIBLE")
        self.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
        self.HardwareCompatibilityLevel = types.SimpleNamespace(NONE="NONE", AMPERE_PLUS="AMPERE_PLUS",
                                                                SAME_COMPUTE_CAPABILITY="SAME_COMPUTE_CAPABILITY")
        self.Logger = type("Logger", (), {"WARNING": 2,
                                          "__init__": lambda s, severity: log.append(("logger", severity))})
        self.init_libnvinfer_plugins = lambda logger, namespace: log.append(("init_plugins", namespace))
        registry = types.SimpleNamespace(load_library=lambda path: log.append(("load_library", path)) or "handle")
        cache = types.SimpleNamespace(serialize=lambda: b"NEW-CACHE")

        class Config(types.SimpleNamespace):
            def set_memory_pool_limit(self, pool, size): log.append(("pool", pool, size))
            def set_flag(self, flag): log.append(("set_flag", flag))
            def clear_flag(self, flag): log.append(("clear_flag", flag))
            def add_optimization_profile(self, profile): log.append(("profile", profile.shapes)); return 0
            def create_timing_cache(self, data): log.append(("timing_cache", data)); return cache
            def set_timing_cache(self, c, ignore_mismatch): return c is cache and ignore_mismatch is False
            def get_timing_cache(self): return cache

        class Profile:
            def __init__(self): self.shapes = []
            def set_shape(self, name, min, opt, max): self.shapes.append((name, min, opt, max))

        class Builder:
            def __init__(self, logger): self.config = Config()
            def get_plugin_registry(self): return registry
            def create_network(self, flags): log.append(("network", flags)); return "network"
            def create_builder_config(self): return self.config
            def create_optimization_profile(self): return Profile()
            def build_serialized_network(self, network, config): log.append(("build", vars(config))); return b"PLAN"

        class OnnxParser:
            def __init__(self, network, logger): self.num_errors = 0 if parses else 2
            def parse_from_file(self, path): log.append(("parse", path)); return parses
            def get_error(self, i): return f"node n{i}:\n  bad op"
            def get_used_vc_plugin_libraries(self): return ["/usr/lib/libnvinfer_plugin.so.10"]

        self.Builder, self.OnnxParser = Builder, OnnxParser


def test_build_engine_applies_the_plan(tmp_path, monkeypatch):
    fake = _FakeTensorRT()
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(trt_api, "_loaded_libraries", set())
    lib = tmp_path / "libhyena_fftconv.so"
    lib.write_bytes(b"\x7fELF")
    cache = tmp_path / "caches" / "tc.cache"
    options = BuildOptions(plugin_libs=(str(lib),), version_compatible=True, workspace_mb=512,
                           hardware_compat="ampere+", builder_opt_level=4, timing_cache=str(cache))
    plan = make_plan(_plugin_model(), options, trt_api.trt_version())
    assert trt_api.trt_version() == (10, 8)
    assert trt_api.build_engine(tmp_path / "m.onnx", plan) == b"PLAN"
    log = fake.log
    steps = [entry[0] for entry in log]
    assert steps.index("load_library") < steps.index("parse")  # plugins registered before parsing
    assert ("network", 1 << 1) in log and ("parse", str(tmp_path / "m.onnx")) in log
    assert ("pool", "WORKSPACE", 512 << 20) in log and ("clear_flag", "TF32") in log
    assert ("set_flag", "VERSION_COMPATIBLE") in log and ("timing_cache", b"") in log
    assert ("profile", [("u", (1, 1, 8), (1, 4096, 8), (8, 4096, 8))]) in log
    (built,) = [entry[1] for entry in log if entry[0] == "build"]
    assert built["hardware_compatibility_level"] == "AMPERE_PLUS" and built["builder_optimization_level"] == 4
    assert built["plugins_to_serialize"] == [str(lib.resolve()), "/usr/lib/libnvinfer_plugin.so.10"]
    assert cache.read_bytes() == b"NEW-CACHE"


def test_build_engine_reports_parser_errors_on_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", _FakeTensorRT(parses=False))
    plan = make_plan(_model(), BuildOptions(), TRT10)
    with pytest.raises(HyenaDeployError) as info:
        trt_api.build_engine(tmp_path / "m.onnx", plan)
    assert str(info.value).endswith("node n0: bad op | node n1: bad op") and "\n" not in str(info.value)


def test_real_tensorrt_build_and_run(tmp_path):
    pytest.importorskip("tensorrt", reason="needs TensorRT (pip install 'hyena-deploy[gpu]') and a CUDA GPU")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    w = np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 4])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g", [x], [y],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    metadata.write(model, {metadata.MAX_SEQ_LEN: "64", metadata.DYNAMIC_SEQ: "true", metadata.DYNAMIC_BATCH: "true"})
    onnx.save(model, str(tmp_path / "m.onnx"))
    result = CliRunner().invoke(main, ["build", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.engine")])
    assert result.exit_code == 0, result.output
    feed = np.random.default_rng(1).standard_normal((2, 16, 4)).astype(np.float32)
    got = trt_api.TensorRTRunner(tmp_path / "m.engine").run({"x": feed})["y"]
    np.testing.assert_allclose(got, feed @ w, rtol=1e-5, atol=1e-5)
