"""Resolving sources: samples, factories taking the export length, models refused before anything is traced."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from hyena_deploy.cli import main
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.sources import SAMPLES_DIR, load_source, sample_names

COMPLEX = Path(__file__).resolve().parent / "models_complex.py"


def test_samples_are_found_inside_the_package() -> None:
    assert SAMPLES_DIR.parent.name == "hyena_deploy"
    assert {"hyena-tiny", "hyena-tiny-order3"} <= set(sample_names())
    assert load_source("hyena-tiny").max_seq_len == 2048


def test_factory_gets_the_export_length() -> None:
    loaded = load_source(f"{COMPLEX}:sized", seq_len=300)
    assert loaded.module.table.shape[1] == 300
    assert any("sized(seq_len=300)" in note for note in loaded.notes)
    default = load_source(f"{COMPLEX}:sized")
    assert default.module.table.shape[1] == 64 and not default.notes


def test_factory_requiring_the_length() -> None:
    assert load_source(f"{COMPLEX}:sized_required", seq_len=40).example_inputs[0].shape[1] == 40
    with pytest.raises(HyenaDeployError, match=r"sized_required takes the sequence length \(seq_len\): give "
                                               r"--seq-len or --max-seq-len"):
        load_source(f"{COMPLEX}:sized_required")


def test_model_failing_at_the_length_is_refused_at_load() -> None:
    load_source(f"{COMPLEX}:short_table", seq_len=100)
    with pytest.raises(HyenaDeployError, match=r"^the model fails in PyTorch at L=101: RuntimeError: The size of "
                                               r"tensor a \(101\) must match"):
        load_source(f"{COMPLEX}:short_table", seq_len=101)


def test_nan_weights_are_refused_at_load() -> None:
    with pytest.raises(HyenaDeployError, match=r"^PyTorch itself returns NaN at L=32 .*non-finite weights in table$"):
        load_source(f"{COMPLEX}:nan_weights")


def test_factory_errors_are_one_line() -> None:
    with pytest.raises(HyenaDeployError, match=r"^.*:raises_multiline\(\) raised ValueError: checkpoint missing$"):
        load_source(f"{COMPLEX}:raises_multiline")


def test_checkpoint_with_nan_weights_is_refused_in_one_line(tmp_path: Path) -> None:
    """Default export (dynamic length): refused before the causality check could report a 'nan' difference."""
    directory = tmp_path / "nan"
    shutil.copytree(SAMPLES_DIR / "hyena-tiny", directory)
    weights = load_file(directory / "model.safetensors")
    name = sorted(k for k in weights if k.endswith("weight") and weights[k].dim() == 2)[0]
    weights[name][0, 0] = float("nan")
    save_file(weights, directory / "model.safetensors")
    result = CliRunner().invoke(main, ["export", str(directory), "-o", str(tmp_path / "x.onnx")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert line.startswith("error: PyTorch itself returns NaN at L=") and line.endswith(f"non-finite weights in {name}")
    assert not (tmp_path / "x.onnx").exists()
