"""Tracing: complex filter math exports (through every strategy and a dynamic length), one-line PyTorch-side errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from hyena_deploy.cli import main
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.loaded import LoadedModel
from hyena_deploy.jobs.export import export_model
from hyena_deploy.trace import check_runs_in_torch
from tests.helpers import assert_tensorrt_safe

COMPLEX = Path(__file__).resolve().parent / "models_complex.py"
SITES = {"s4d": 2, "h3_m2": 3, "m2_operator": 1, "stripedhyena": 2, "spectrum_layouts": 1, "guarded_kernel": 1}


def _needs(name: str) -> None:
    if name == "stripedhyena":
        pytest.importorskip("stripedhyena.model", reason="stripedhyena is not installed (pip install --no-deps "
                                                          "stripedhyena==0.2.2)")


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, needle: str) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0], result.output
    assert "Traceback" not in result.output and "Next steps" not in result.output
    return lines[0]


CASES = [(name, *case) for name in sorted(SITES) if name not in ("spectrum_layouts", "guarded_kernel")
         for case in [("monarch", 61, None), ("direct", 61, None), ("monarch", None, 80)]]


@pytest.mark.parametrize("name,strategy,seq_len,max_seq_len", [
    *CASES, ("spectrum_layouts", "direct", None, 80), ("guarded_kernel", "monarch", None, 80)])
def test_complex_filter_models_export(tmp_path: Path, name: str, strategy: str, seq_len, max_seq_len) -> None:
    """Complex kernels and the unmodified stripedhyena model: every site found, exact, nothing of the filter left."""
    _needs(name)
    out = tmp_path / f"{name}.onnx"
    result = export_model(f"{COMPLEX}:{name}", out, fftconv=strategy, seq_len=seq_len, max_seq_len=max_seq_len)
    assert len(result.sites) == SITES[name]
    assert result.dynamic_seq_len == (max_seq_len is not None)
    worst = max(r.rel_l2 for r in result.reports)
    assert worst <= 1e-5 and all(r.passed for r in result.reports), worst
    assert {r.case for r in result.reports} >= ({"B=3 L=61"} if seq_len else {"B=3 L=1", "B=1 L=17", "B=1 L=80"})
    assert_tensorrt_safe(out)


def test_untranslatable_complex_op_names_op_and_module(tmp_path: Path) -> None:
    line = assert_one_line_error(run("export", f"{COMPLEX}:untranslatable", "-o", tmp_path / "x.onnx"),
                                 "aten.exp.default on a complex tensor in blocks.0.filter (models_complex.py:")
    assert not (tmp_path / "x.onnx").exists() and len(line) < 300


def test_export_failure_names_the_model_line(tmp_path: Path) -> None:
    line = assert_one_line_error(run("export", f"{COMPLEX}:branches_on_value", "-o", tmp_path / "x.onnx"),
                                 "data-dependent control flow cannot be exported), at models_complex.py:")
    assert line.endswith("in forward: if x.sum() > 0:")


@pytest.mark.parametrize("flag", ["--seq-len", "--max-seq-len"])
def test_model_failing_in_pytorch_at_the_length(tmp_path: Path, flag: str) -> None:
    assert_one_line_error(run("export", f"{COMPLEX}:short_table", "-o", tmp_path / "x.onnx", flag, "200"),
                          "the model fails in PyTorch at L=200: RuntimeError: The size of tensor a (200)")


def test_nan_weights_are_named(tmp_path: Path) -> None:
    assert_one_line_error(run("export", f"{COMPLEX}:nan_weights", "-o", tmp_path / "x.onnx", "--max-seq-len", "64"),
                          "PyTorch itself returns NaN at L=64 (output 0, 2 of 1024 values): non-finite weights in table")


class Overflows(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x * 1e3)


def test_inf_from_the_models_own_arithmetic() -> None:
    loaded = LoadedModel(Overflows(), (torch.ones(1, 4, 2),), "overflows", "0")
    with pytest.raises(HyenaDeployError, match=r"returns Inf at L=4 \(output 0, 8 of 8 values\): no weight is NaN/Inf"):
        check_runs_in_torch(loaded, loaded.example_inputs)
    check_runs_in_torch(loaded, (torch.full((1, 4, 2), -1.0),))  # finite outputs: accepted
