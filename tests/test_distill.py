"""``hyena-deploy distill``: the success path, the export of its output, the fail-closed path, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_model

from hyena_deploy.cli import main
from hyena_deploy.distill.checkpoint import read_layers
from hyena_deploy.models.lm import HyenaLM, HyenaLMConfig
from hyena_deploy.models.modal_filter import ModalFilter
from hyena_deploy.sources import load_source


@pytest.fixture(scope="module")
def smooth_lm(tmp_path_factory) -> Path:
    """A hyena_lm checkpoint whose Sin MLP is nearly linear (small w): its filters are close to modal."""
    directory = tmp_path_factory.mktemp("smooth")
    config = HyenaLMConfig(vocab_size=12, d_model=16, n_layer=2, d_inner=32, l_max=200, filter_order=16, w=0.5)
    torch.manual_seed(0)
    (directory / "config.json").write_text(json.dumps(config.to_dict()))
    save_model(HyenaLM(config), str(directory / "model.safetensors"))
    return directory


@pytest.fixture(scope="module")
def distilled(smooth_lm: Path, tmp_path_factory) -> tuple[Path, Path, Path]:
    out = tmp_path_factory.mktemp("runs") / "distilled"
    report, plot = out.parent / "report.json", out.parent / "hankel.png"
    result = CliRunner().invoke(main, ["distill", str(smooth_lm), "-o", str(out), "--tol", "1e-4",
                                       "--max-order", "24", "--report", str(report), "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    return out, report, plot


def test_distilled_checkpoint_loads_with_modal_filters(smooth_lm: Path, distilled) -> None:
    out, report_path, plot = distilled
    config, layers = read_layers(out)
    assert [layer.module for layer in layers] == ["layers.0.mixer.filter_fn", "layers.1.mixer.filter_fn"]
    assert all(np.all(np.abs(layer.poles) < 1) for layer in layers)
    assert all(1 <= o <= 24 for layer in config["layers"] for o in layer["orders"])
    original, model = load_source(str(smooth_lm)), load_source(str(out))
    filters = [m for m in model.module.modules() if isinstance(m, ModalFilter)]
    assert len(filters) == 2
    poles, residues = filters[0].modal_form()
    assert poles.is_complex() and poles.shape == residues.shape == (16, filters[0].modes)
    ids = torch.randint(0, 12, (3, 199))
    with torch.no_grad():
        want, got = original.module(ids), model.module(ids)
    assert float((got - want).norm() / want.norm()) <= 1e-2
    report = json.loads(report_path.read_text())
    assert max(report["logits_rel_l2"].values()) <= 1e-2
    layer = report["layers"][0]
    assert layer["groups"][0]["filter_error_max"] <= 1e-4
    assert layer["state_bytes"]["modal"] < layer["state_bytes"]["history"]
    values = layer["hankel_singular_values"]
    assert values[0] == 1.0 and all(a >= b for a, b in zip(values, values[1:]))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_modal_filter_matches_its_modal_form(distilled) -> None:
    model = load_source(str(distilled[0]))
    module = next(m for m in model.module.modules() if isinstance(m, ModalFilter))
    poles, residues = module.modal_form()
    t = torch.arange(150, dtype=torch.float64)
    expected = (residues[:, :, None] * poles[:, :, None] ** t).real.sum(1)
    assert torch.allclose(module.filter(150)[0].t().double(), expected, atol=1e-6 * float(expected.abs().max()))


@pytest.mark.parametrize("fftconv", ["modal", "monarch"])
def test_export_accepts_the_distilled_checkpoint(distilled, tmp_path: Path, fftconv: str) -> None:
    out = tmp_path / f"{fftconv}.onnx"
    result = CliRunner().invoke(main, ["export", str(distilled[0]), "-o", str(out), "--fftconv", fftconv])
    assert result.exit_code == 0, result.output
    assert out.is_file() and f"({fftconv})" in result.output


def test_too_low_an_order_fails_closed_naming_the_worst_layer(tmp_path: Path) -> None:
    out = tmp_path / "never"
    result = CliRunner().invoke(main, ["distill", "hyena-tiny-order3", "-o", str(out), "--max-order", "2",
                                       "--report", str(tmp_path / "r.json")])
    assert result.exit_code == 1
    assert result.output.startswith("error: distilled outputs differ") and "worst layer layers.0" in result.output
    assert "Traceback" not in result.output and "nothing written" in result.output
    assert not out.exists() and not (tmp_path / "r.json").exists()
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("args, message", [
    (["hyena-tiny", "-o", "{tmp}/x", "--max-logits-err", "0"], "--max-logits-err"),
    (["hyena-tiny", "-o", "{tmp}", "--max-order", "1"], "not an empty directory"),
    (["hyena-tiny", "-o", "{tmp}/x", "--tol", "0"], "--tol"),
])
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "occupied").write_text("")
    result = CliRunner().invoke(main, ["distill", *[a.format(tmp=tmp_path) for a in args]])
    assert result.exit_code == 1 and result.output.startswith("error:") and message in result.output
    assert len(result.output.strip().splitlines()) == 1
