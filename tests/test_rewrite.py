"""``rewrite``: stock torch.onnx dynamo exports (DFT nodes, bad dynamic value_info) become DFT-free."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from hyena_deploy.cli import main
from hyena_deploy.sources import load_source
from tests.helpers import assert_tensorrt_safe, op_counts


def _stock_export(module: torch.nn.Module, example: torch.Tensor, path: Path, dynamic: bool) -> None:
    shapes = ({0: torch.export.Dim("B"), 1: torch.export.Dim("L", min=2, max=512)},) if dynamic else None
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        program = torch.onnx.export(module, (example,), dynamo=True, dynamic_shapes=shapes, opset_version=20)
    program.save(str(path))


@pytest.mark.parametrize("factory", ["order2", "order3"])
@pytest.mark.parametrize("dynamic", [False, True])
@pytest.mark.parametrize("strategy", ["monarch", "direct"])
def test_stock_dynamo_export_is_rewritten(tmp_path: Path, elsewhere: str, factory: str, dynamic: bool,
                                         strategy: str) -> None:
    loaded = load_source(elsewhere + factory)
    stock, out = tmp_path / "stock.onnx", tmp_path / "out.onnx"
    _stock_export(loaded.module, torch.randn(2, 100, loaded.example_inputs[0].shape[2]), stock, dynamic)
    assert op_counts(stock)["DFT"] > 0
    args = ["rewrite", str(stock), "-o", str(out), "--fftconv", strategy]
    if dynamic:
        args += ["--max-seq-len", "512"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.output
    assert_tensorrt_safe(out)
    # Independent check against PyTorch itself, at lengths the rewrite did not verify.
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng()
    batch = 3 if dynamic else 2  # a static stock export also fixes the batch it was traced with
    for length in ([3, 255, 512] if dynamic else [100]):
        x = rng.standard_normal((batch, length, loaded.example_inputs[0].shape[2])).astype(np.float32)
        with torch.no_grad():
            want = loaded.module(torch.from_numpy(x)).numpy()
        got = session.run(None, {session.get_inputs()[0].name: x})[0]
        assert np.linalg.norm(got - want) / np.linalg.norm(want) <= 1e-5


def test_dynamic_graph_needs_a_maximum(tmp_path: Path, elsewhere: str) -> None:
    loaded = load_source(elsewhere + "order2")
    stock = tmp_path / "stock.onnx"
    _stock_export(loaded.module, torch.randn(2, 100, 24), stock, dynamic=True)
    result = CliRunner().invoke(main, ["rewrite", str(stock), "-o", str(tmp_path / "o.onnx")])
    assert result.exit_code == 1 and "--max-seq-len" in result.output


def test_graph_without_fft_is_refused(tmp_path: Path, elsewhere: str) -> None:
    loaded = load_source(elsewhere + "no_long_conv")
    stock = tmp_path / "stock.onnx"
    _stock_export(loaded.module, loaded.example_inputs[0], stock, dynamic=False)
    result = CliRunner().invoke(main, ["rewrite", str(stock), "-o", str(tmp_path / "o.onnx")])
    assert result.exit_code == 1 and "no FFT convolution" in result.output
    assert not (tmp_path / "o.onnx").exists()


def test_value_info_of_the_input_is_not_trusted(tmp_path: Path, elsewhere: str) -> None:
    """The dynamic stock export annotates IRFFT outputs wrongly; ORT fails on it as exported."""
    loaded = load_source(elsewhere + "order2")
    stock = tmp_path / "stock.onnx"
    _stock_export(loaded.module, torch.randn(2, 100, 24), stock, dynamic=True)
    assert len(onnx.load(str(stock)).graph.value_info) > 0


@pytest.mark.parametrize("strategy", ["monarch", "direct"])
def test_two_sided_filter_of_a_dynamic_stock_export_is_rewritten(tmp_path: Path, strategy: str) -> None:
    """A 'same'-centred convolution: its lags do not depend on the length, and the strategies pad the
    signal with zeros themselves, so one two-sided rewrite is exact at every length."""
    from tests.models_styles import centred_same

    module, _ = centred_same()
    stock, out = tmp_path / "stock.onnx", tmp_path / "out.onnx"
    _stock_export(module, torch.randn(2, 40, 6), stock, dynamic=True)
    result = CliRunner().invoke(main, ["rewrite", str(stock), "-o", str(out), "--fftconv", strategy,
                                       "--max-seq-len", "64"])
    assert result.exit_code == 0, result.output
    assert_tensorrt_safe(out)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng()
    for length in [3, 31, 64]:
        x = rng.standard_normal((2, length, 6)).astype(np.float32)
        with torch.no_grad():
            want = module(torch.from_numpy(x)).numpy()
        got = session.run(None, {session.get_inputs()[0].name: x})[0]
        assert np.linalg.norm(got - want) / np.linalg.norm(want) <= 1e-5
