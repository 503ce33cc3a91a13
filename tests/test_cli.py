"""The command line: happy paths and every kind of bad input (one line, non-zero exit, nothing written)."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hyena_deploy.cli import main
from hyena_deploy.sources import SAMPLES_DIR


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, needle: str) -> None:
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0], result.output
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "tiny.onnx"
    result = run("export", "hyena-tiny", "-o", out, "--fftconv", "monarch", "--max-seq-len", "256")
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.output and "2 long convolution(s) rewritten (monarch)" in result.output
    return out


def test_check_passes_and_writes_a_report(exported: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    result = run("check", "hyena-tiny", exported, "--report", report)
    assert result.exit_code == 0, result.output
    payload = json.loads(report.read_text())
    assert payload["passed"] and len({r["case"] for r in payload["results"]}) >= 2


def test_check_fails_on_a_different_model(exported: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(SAMPLES_DIR / "hyena-tiny", other)
    from safetensors.torch import load_file, save_file

    state = load_file(other / "model.safetensors")
    key = next(k for k in state if k.endswith("mixer.out_proj.weight"))
    state[key] = state[key] * 1.01
    save_file(state, other / "model.safetensors")
    report = tmp_path / "r.json"
    result = run("check", other, exported, "--report", report)
    assert_one_line_error(result, "FAILED")
    assert json.loads(report.read_text())["passed"] is False


def test_check_accepts_npz_inputs_and_per_output_tolerances(exported: Path, tmp_path: Path) -> None:
    import numpy as np

    np.savez(tmp_path / "in.npz", input_ids=np.random.default_rng().integers(0, 16, (2, 33)))
    result = run("check", "hyena-tiny", exported, "--inputs", tmp_path / "in.npz", "--atol", "logits:1e-3",
                 "--seq-len", "5")
    assert result.exit_code == 0, result.output
    assert "in.npz" in result.output


def test_inspect_reports_and_judges_targets(exported: Path) -> None:
    result = run("inspect", exported)
    assert result.exit_code == 0 and "MatMul" in result.output and "max sequence length: 256" in result.output
    assert run("inspect", exported, "--target", "tensorrt-10").exit_code == 0


@pytest.mark.parametrize("strategy", ["direct", "plugin"])
def test_inspect_accepts_tensorrt_safe_strategies(tmp_path: Path, strategy: str) -> None:
    out = tmp_path / f"{strategy}.onnx"
    assert run("export", "hyena-tiny", "-o", out, "--fftconv", strategy, "--seq-len", "64").exit_code == 0
    for target in ("tensorrt-10", "tensorrt-11", "onnxruntime"):
        result = run("inspect", out, "--target", target)
        assert result.exit_code == 0 and f"compatible with {target}" in result.output, result.output


def test_inspect_rejects_dft_for_tensorrt_10_only(tmp_path: Path) -> None:
    out = tmp_path / "dft.onnx"
    assert run("export", "hyena-tiny", "-o", out, "--fftconv", "dft", "--seq-len", "64").exit_code == 0
    result = run("inspect", out, "--target", "tensorrt-10")
    assert result.exit_code != 0 and "DFT" in result.output and "monarch" in result.output
    assert run("inspect", out, "--target", "tensorrt-11").exit_code == 0
    assert run("inspect", out, "--target", "onnxruntime").exit_code == 0


def _bad_checkpoint_dir(tmp_path: Path, weights: bytes | None = None, config: str | None = None) -> Path:
    d = tmp_path / "bad"
    shutil.copytree(SAMPLES_DIR / "hyena-tiny", d)
    if weights is not None:
        (d / "model.safetensors").write_bytes(weights)
    if config is not None:
        (d / "config.json").write_text(config)
    return d


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize("case,needle", [
    ("missing", "no such directory"),
    ("unknown_sample", "no such directory, sample"),
    ("corrupt_weights", "not a readable safetensors"),
    ("corrupt_config", "not valid JSON"),
    ("no_weights", "expected one weights file"),
    ("pickle", "refused"),
    ("factory_raises", "raised RuntimeError: factory exploded"),
    ("factory_missing", "has no callable"),
    ("bad_module", "cannot import"),
    ("len0", "must be >= 1"),
    ("past_max", "past the model's maximum"),
    ("impossible_tol", "atol must be a finite number"),
    ("zero_tol", "both 0"),
    ("not_causal", "not causal"),
    ("bad_opset", "opset"),
])
def test_bad_input(tmp_path: Path, elsewhere: str, case: str, needle: str) -> None:
    out = tmp_path / "out.onnx"
    args = {
        "missing": [tmp_path / "nope"],
        "unknown_sample": ["no-such-sample"],
        "corrupt_weights": lambda: [_bad_checkpoint_dir(tmp_path, weights=b"\x00garbage")],
        "corrupt_config": lambda: [_bad_checkpoint_dir(tmp_path, config="{not json")],
        "no_weights": [tmp_path],
        "pickle": [],
        "factory_raises": [elsewhere + "raises"],
        "factory_missing": [elsewhere + "nothing_here"],
        "bad_module": ["no_such_package_xyz.mod:factory"],
        "len0": ["hyena-tiny", "--seq-len", "0"],
        "past_max": ["hyena-tiny", "--max-seq-len", "999999"],
        "impossible_tol": ["hyena-tiny", "--atol", "-1"],
        "zero_tol": ["hyena-tiny", "--atol", "0", "--rtol", "0"],
        "not_causal": [elsewhere + "bidirectional", "--max-seq-len", "64"],
        "bad_opset": ["hyena-tiny", "--opset", "13"],
    }[case]
    args = args() if callable(args) else args
    if case == "no_weights":
        (tmp_path / "config.json").write_text((SAMPLES_DIR / "hyena-tiny" / "config.json").read_text())
    if case == "pickle":
        d = _bad_checkpoint_dir(tmp_path)
        (d / "model.safetensors").unlink()
        with open(d / "pytorch_model.bin", "wb") as handle:
            pickle.dump({"w": _Evil()}, handle)
        args = [d]
    result = run("export", *args, "-o", out)
    assert_one_line_error(result, needle)
    assert not out.exists() and not list(tmp_path.glob(".hyena-deploy-*"))


def test_unknown_strategy_is_rejected(tmp_path: Path) -> None:
    result = run("export", "hyena-tiny", "-o", tmp_path / "o.onnx", "--fftconv", "fast")
    assert_one_line_error(result, "'fast' is not one of")
    assert result.exit_code == 2


def test_model_without_long_convolution_still_exports(tmp_path: Path, elsewhere: str) -> None:
    out = tmp_path / "o.onnx"
    result = run("export", elsewhere + "no_long_conv", "-o", out)
    assert result.exit_code == 0, result.output
    assert "no FFT long convolution found" in result.output and out.exists()


def test_parity_failure_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "o.onnx"
    result = run("export", "hyena-tiny", "-o", out, "--seq-len", "64", "--max-rel-l2", "1e-12",
                 "--atol", "1e-12", "--rtol", "1e-12")
    assert_one_line_error(result, "parity failed")
    assert not out.exists()


def test_length_past_maximum_is_refused_at_run_time(exported: Path) -> None:
    import numpy as np

    from hyena_deploy.errors import HyenaDeployError
    from hyena_deploy.runtime import OrtModel

    runner = OrtModel(exported)
    assert runner.run([np.zeros((1, 256), np.int64)])[0].shape == (1, 256, 16)
    with pytest.raises(HyenaDeployError, match="exceeds the model's maximum 256"):
        runner.run([np.zeros((1, 257), np.int64)])
    raw = __import__("onnxruntime").InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match="Size"):  # the graph itself refuses too
        raw.run(None, {"input_ids": np.zeros((1, 257), np.int64)})


def test_static_batch_export(tmp_path: Path) -> None:
    out = tmp_path / "o.onnx"
    result = run("export", "hyena-tiny", "-o", out, "--batch", "2", "--seq-len", "33", "--fftconv", "monarch")
    assert result.exit_code == 0, result.output
    import onnx

    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [2, 33]


def test_external_data_past_the_protobuf_limit(tmp_path: Path, monkeypatch) -> None:
    """Models past 2 GB go to OUT.onnx + OUT.onnx.data (the limit is lowered here to keep the test small)."""
    import numpy as np
    import onnx

    from hyena_deploy import onnx_io
    from hyena_deploy.runtime import OrtModel

    monkeypatch.setattr(onnx_io, "PROTOBUF_LIMIT", 10_000)
    out = tmp_path / "big.onnx"
    result = run("export", "hyena-tiny", "-o", out, "--seq-len", "16", "--fftconv", "monarch")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "big.onnx.data").stat().st_size > 100_000 and out.stat().st_size < 100_000
    model = onnx.load(str(out))
    assert OrtModel(model).run([np.zeros((1, 16), np.int64)])[0].shape == (1, 16, 16)


def test_low_precision_export_and_check(tmp_path: Path) -> None:
    import onnx

    from hyena_deploy import metadata

    out = tmp_path / "half.onnx"
    result = run("export", "hyena-tiny", "-o", out, "--precision", "fp16", "--max-seq-len", "128")
    assert result.exit_code == 0, result.output
    assert metadata.read(onnx.load(str(out)))["precision"] == "fp16"
    assert run("check", "hyena-tiny", out).exit_code == 0


@pytest.mark.parametrize("arrays, needle", [
    ({"ids": np.zeros((1, 8), np.int64)}, "missing ['input_ids']; unexpected ['ids']"),
    ({"input_ids": np.zeros((1, 8), np.int64), "extra": np.zeros(1)}, "unexpected ['extra']"),
    ({"input_ids": np.zeros((1, 8), np.float32)}, "'input_ids' is float32, the model takes int64"),
    ({"input_ids": np.zeros((1, 8, 2), np.int64)}, "'input_ids' has 3 dims (1, 8, 2), the model takes 2"),
    ({"input_ids": np.zeros((1, 300), np.int64)}, "'input_ids' has length 300; the model takes 1..256"),
])
def test_check_inputs_are_validated_before_anything_runs(exported: Path, tmp_path: Path, arrays, needle) -> None:
    path = tmp_path / "in.npz"
    np.savez(path, **arrays)
    assert_one_line_error(run("check", "hyena-tiny", exported, "--inputs", path), needle)


def test_check_runs_the_users_inputs(exported: Path, tmp_path: Path) -> None:
    path = tmp_path / "mine.npz"
    np.savez(path, input_ids=np.random.default_rng(0).integers(0, 16, (2, 33)))
    result = run("check", "hyena-tiny", exported, "--inputs", path)
    assert result.exit_code == 0 and "mine.npz" in result.output, result.output
