"""FFT convolutions in the styles of public code bases export exactly, DFT-free, with monarch and direct."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from hyena_deploy.jobs import export as pipeline
from hyena_deploy.loaded import LoadedModel
from hyena_deploy.jobs.export import export_model
from hyena_deploy.sources import load_source
from tests.helpers import assert_tensorrt_safe, op_counts
from tests.models_styles import STATIC_STYLES

STYLES = Path(__file__).with_name("models_styles.py")
LENGTH = 45  # odd, and not a power of two
TWO_SIDED = {"m2_bert_bidirectional", "centred_same", "circular"}
SITES = {"h3_real_kernel": 2, "caduceus_bidirectional": 2}


@pytest.fixture(scope="module")
def loaded_styles():
    """Each style loaded once and traced once: the strategies differ only after the trace."""
    cache: dict[tuple, onnx.ModelProto] = {}
    real = pipeline.trace

    def trace_once(loaded: LoadedModel, seq_len: int, batch: int | None, opset: int) -> onnx.ModelProto:
        key = (loaded.name, seq_len, batch, opset)
        if key not in cache:
            cache[key] = real(loaded, seq_len, batch, opset)
        copy = onnx.ModelProto()
        copy.CopyFrom(cache[key])
        return copy

    patch = pytest.MonkeyPatch()
    patch.setattr(pipeline, "trace", trace_once)
    models: dict[str, LoadedModel] = {}
    yield lambda style: models.setdefault(style, load_source(f"{STYLES}:{style}"))
    patch.undo()


def _worst_rel_l2(path: Path, loaded: LoadedModel, lengths: list[int], scales: tuple[float, ...]) -> float:
    """Independent check against PyTorch on fresh inputs (batch 3) at every length and input scale."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng()
    worst = 0.0
    for length in lengths:
        for scale in scales:
            inputs = tuple(x * scale if x.dtype.is_floating_point else x for x in loaded.make_inputs(3, length, rng))
            with torch.no_grad():
                want = loaded.module(*inputs).numpy()
            got = session.run(None, {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)})[0]
            worst = max(worst, float(np.linalg.norm(got - want) / np.linalg.norm(want)))
    return worst


@pytest.mark.parametrize("strategy", ["monarch", "direct"])
@pytest.mark.parametrize("style", STATIC_STYLES)
def test_style_exports_exactly_at_a_static_length(tmp_path: Path, loaded_styles, style: str, strategy: str) -> None:
    loaded = loaded_styles(style)
    out = tmp_path / "m.onnx"
    result = export_model(loaded, out, fftconv=strategy, seq_len=LENGTH)
    assert len(result.sites) == SITES.get(style, 1), result.notes
    assert {s.strategy for s in result.sites} == {strategy}
    assert any(s.lead > 0 for s in result.sites) == (style in TWO_SIDED)
    assert_tensorrt_safe(out)
    assert _worst_rel_l2(out, loaded, [LENGTH], (1.0, 10.0)) <= 1e-5


@pytest.mark.parametrize("strategy", ["monarch", "direct"])
def test_channels_last_exports_with_a_dynamic_length(tmp_path: Path, loaded_styles, strategy: str) -> None:
    loaded = loaded_styles("channels_last")
    out = tmp_path / "m.onnx"
    result = export_model(loaded, out, fftconv=strategy, max_seq_len=64)
    assert result.dynamic_seq_len and len(result.sites) == 1
    assert_tensorrt_safe(out)
    assert _worst_rel_l2(out, loaded, [1, 17, 33, 64], (1.0,)) <= 1e-5


def test_signal_dependent_filter_is_left_as_traced(tmp_path: Path, loaded_styles) -> None:
    """``spectrum / clamp(rms(u), min=2)``: folding it would be exact only while rms(u) <= 2."""
    loaded = loaded_styles("signal_dependent_gain")
    out = tmp_path / "m.onnx"
    result = export_model(loaded, out, fftconv="monarch", seq_len=32)  # ORT's DFT is accurate at 64 points
    assert result.sites == []
    assert any("signal-dependent filter is never folded" in note for note in result.notes), result.notes
    assert op_counts(out)["DFT"] == 2
    assert _worst_rel_l2(out, loaded, [32], (1.0, 10.0)) <= 1e-5  # exact at scales where the gain changes
