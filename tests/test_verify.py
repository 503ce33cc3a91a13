"""The comparator, the scale-aware rule, the cases and the per-layer bisect."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.metadata import GraphInfo
from hyena_deploy.jobs.export import export_model
from hyena_deploy.names import FFTCONV_PREFIX
from hyena_deploy.sources import load_source
from hyena_deploy.verify import Tolerance, compare_output
from hyena_deploy.verify.bisect import bisect, first_divergence
from hyena_deploy.verify.cases import InputSpec, example_scale, random_array, random_cases
from hyena_deploy.verify.comparator import compare, require_parity

LENGTH = 64


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, onnx.ModelProto]:
    loaded = load_source("hyena-tiny")
    path = tmp_path_factory.mktemp("tiny") / "m.onnx"
    export_model(loaded, path, fftconv="monarch", seq_len=LENGTH, verify=False)
    return loaded, onnx.load(str(path))


def _corrupt_site(model: onnx.ModelProto, index: int, gain: float) -> onnx.ModelProto:
    """A copy whose FFT-conv site ``index`` has every constant of its replacement scaled by ``gain``."""
    bad = onnx.ModelProto()
    bad.CopyFrom(model)
    prefix = f"{FFTCONV_PREFIX}{index}"
    for i, init in enumerate(bad.graph.initializer):
        if init.name.startswith(prefix) and init.data_type == onnx.TensorProto.FLOAT:
            bad.graph.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * gain, init.name))
    return bad


def test_bisect_finds_no_divergence_in_a_clean_graph(tiny):
    loaded, model = tiny
    reports = bisect(loaded, model, Tolerance())
    modules = {r.module for r in reports}
    assert {"layers.0.mixer", "layers.1.mixer", ""} <= modules  # the mixers and the whole model are compared
    assert first_divergence(reports) is None, [r for r in reports if not r.report.passed]


@pytest.mark.parametrize("index", [0, 1])
def test_bisect_names_the_first_diverging_module_and_its_site(tiny, index):
    loaded, model = tiny
    bad = _corrupt_site(model, index, 1.01)
    first = first_divergence(bisect(loaded, bad, Tolerance()))
    assert first is not None
    assert first.module == f"layers.{index}.mixer" and first.kind == "HyenaOperator"
    site = GraphInfo.of(model).sites[index]["output"]
    assert first.sites == [site]
    assert first.report.rel_l2 > 1e-5
    assert "first diverging module: layers." in first.summary()


def test_export_failure_names_the_first_diverging_module(tiny, tmp_path, monkeypatch):
    import hyena_deploy.jobs.export as pipeline

    loaded, _ = tiny
    real = pipeline.run_passes

    def corrupting(model, passes):
        result = real(model, passes)
        result.model = _corrupt_site(result.model, 1, 1.01)
        return result

    monkeypatch.setattr(pipeline, "run_passes", corrupting)
    with pytest.raises(HyenaDeployError, match=r"parity failed: logits .*first diverging module: layers\.1\.mixer"):
        export_model(loaded, tmp_path / "x.onnx", fftconv="monarch", seq_len=LENGTH)
    assert not (tmp_path / "x.onnx").exists()


class _Scaled:
    """A runner returning its reference's outputs, one element perturbed."""

    name, output_names = "scaled", ["y"]

    def __init__(self, delta: float, at: int = 0) -> None:
        self.delta, self.at = delta, at

    def run(self, inputs):
        out = inputs[0].astype(np.float64).copy()
        out.flat[self.at] += self.delta
        return [out]


class _Identity:
    name, output_names = "identity", None

    def run(self, inputs):
        return [inputs[0].astype(np.float64)]


def test_compare_pairs_outputs_and_require_parity_fails_closed():
    rng = np.random.default_rng(0)
    cases = random_cases(lambda b, n, r: [r.standard_normal((b, n, 4))], [5, 9], None, rng)
    assert [c.label for c in cases] == ["B=3 L=5", "B=1 L=9"]
    good = compare(_Identity(), _Scaled(0.0), cases, Tolerance())
    assert all(r.passed for r in good) and [r.output for r in good] == ["y", "y"]
    bad = compare(_Identity(), _Scaled(1.0), cases, Tolerance())
    with pytest.raises(HyenaDeployError, match=r"^differs: y at B=1 L=9: rel L2 .*; where y is \(nothing written\)$"):
        require_parity(bad, "differs", explain=lambda worst: f"where {worst.output} is")


def test_absolute_bound_scales_with_the_output_rms():
    """An isolated 2e-4 error passes on an output of RMS 1 and of RMS 1e3, but not on one of RMS 0.1."""
    rng = np.random.default_rng(1)
    for rms, passes in [(1.0, True), (1e3, True), (0.1, False)]:
        ref = rms * rng.standard_normal(200_000)
        ref[7] = 1e-3 * rms  # near zero: only the absolute bound can let its error pass
        got = ref.copy()
        got[7] += 2e-4 * max(rms, 1.0) if passes else 2e-4
        report = compare_output("y", "c", ref, got, Tolerance(max_rel_l2=1.0))
        assert report.passed is passes, (rms, report)


def test_random_floats_take_the_example_scale():
    example = 10.0 * np.random.default_rng(2).standard_normal((2, 100))
    scale = example_scale(example)
    assert 9 < scale < 11
    drawn = random_array(InputSpec((4, 1000), np.dtype(np.float32), scale=scale), np.random.default_rng(3))
    assert 9 < drawn.std() < 11 and drawn.dtype == np.float32
    ids = random_array(InputSpec((4, 1000), np.dtype(np.int64), high=7), np.random.default_rng(3))
    assert ids.min() >= 0 and ids.max() == 6
    assert example_scale(np.zeros((1, 3))) == 1.0


def test_the_exported_example_is_among_the_verified_cases(tiny, tmp_path):
    loaded, _ = tiny
    result = export_model(loaded, tmp_path / "m.onnx", fftconv="direct", seq_len=LENGTH)
    assert "example inputs" in {r.case for r in result.reports}
    assert Path(result.files[0]).exists()


def test_check_bisect_on_the_command_line(tiny, tmp_path):
    from click.testing import CliRunner

    from hyena_deploy.cli import main

    _, model = tiny
    clean, bad = tmp_path / "clean.onnx", tmp_path / "bad.onnx"
    onnx.save(model, str(clean))
    onnx.save(_corrupt_site(model, 0, 1.01), str(bad))
    ok = CliRunner().invoke(main, ["check", "hyena-tiny", str(clean), "--bisect"])
    assert ok.exit_code == 0 and "no module diverges" in ok.output, ok.output
    failed = CliRunner().invoke(main, ["check", "hyena-tiny", str(bad), "--bisect"])
    assert failed.exit_code == 1
    last = failed.output.strip().splitlines()[-1]
    assert last.startswith("error: FAILED") and "first diverging module: layers.0.mixer (HyenaOperator)" in last
