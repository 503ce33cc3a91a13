"""The target table: export refuses what a target rejects, and a new target is one entry plus its runner."""

from __future__ import annotations

import onnx
import pytest
from click.testing import CliRunner

from hyena_deploy import compat, targets
from hyena_deploy.cli import main
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.jobs.export import export_model
from hyena_deploy.runners.reference_runner import ReferenceRunner


def test_export_for_tensorrt_10_refuses_dft_with_the_fix(tmp_path):
    result = CliRunner().invoke(main, ["export", "hyena-tiny", "-o", str(tmp_path / "x.onnx"), "--seq-len", "32",
                                       "--target", "tensorrt-10", "--fftconv", "dft"])
    assert result.exit_code == 1
    line = result.output.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "does not run on tensorrt-10" in line and "DFT" in line and "--fftconv monarch" in line
    assert not (tmp_path / "x.onnx").exists()


def test_export_for_tensorrt_11_accepts_dft_and_records_the_target(tmp_path):
    result = export_model("hyena-tiny", tmp_path / "x.onnx", fftconv="dft", seq_len=32, target="tensorrt-11",
                          verify=False)
    model = onnx.load(str(result.files[0]))
    assert {p.key: p.value for p in model.metadata_props}["hyena_deploy.target"] == "tensorrt-11"


def test_engine_targets_have_no_graph_runner():
    with pytest.raises(HyenaDeployError, match="tensorrt-10 here: it runs built engines"):
        targets.get("tensorrt-10").make_runner(onnx.ModelProto())
    assert targets.names(runnable=True) == ["onnxruntime", "onnxruntime-gpu"]


def test_the_gpu_runner_says_why_it_cannot_run_here(monkeypatch):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(HyenaDeployError, match="onnxruntime-gpu here: ONNX Runtime has no CUDA execution provider"):
        targets.get("onnxruntime-gpu").make_runner(onnx.ModelProto())


@pytest.fixture
def reference_target():
    """A target added the documented way: one table entry and its runner."""
    entry = targets.register(targets.Target("onnx-reference", compat.ONNXRUNTIME, crossovers="onnxruntime",
                                            runner=lambda graph, threads: ReferenceRunner(
                                                onnx.load(str(graph)) if not isinstance(graph, onnx.ModelProto)
                                                else graph)))
    yield entry
    targets._TABLE.pop(entry.name)


def test_a_new_target_is_one_entry_and_its_runner(reference_target, tmp_path):
    assert "onnx-reference" in targets.names(runnable=True)
    result = export_model("hyena-tiny", tmp_path / "x.onnx", fftconv="monarch", seq_len=24,
                          target="onnx-reference", verify=False)
    runner = targets.get("onnx-reference").make_runner(result.files[0])
    from hyena_deploy.jobs.export import check_parity
    from hyena_deploy.sources import load_source
    from hyena_deploy.verify import Tolerance

    reports = check_parity(load_source("hyena-tiny"), runner, [24], 2, Tolerance())
    assert reports and all(r.passed for r in reports)
    with pytest.raises(HyenaDeployError, match="unknown target 'nope'; choose one of onnxruntime, .*onnx-reference"):
        targets.get("nope")
