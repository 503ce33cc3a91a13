"""Every refusal of the probe: a site that is not a fixed per-channel convolution is left exactly as traced."""

from __future__ import annotations

import contextlib
import io
from collections import Counter

import numpy as np
import onnx
import pytest
import torch
from onnx.reference import ReferenceEvaluator
from torch import nn

from hyena_deploy.loaded import LoadedModel
from hyena_deploy.rewrite.replace import rewrite_fftconvs
from hyena_deploy.trace import trace
from tests import models_styles

LENGTH = 24


def _conv(u: torch.Tensor, k_f: torch.Tensor) -> torch.Tensor:
    n = 2 * u.shape[-1]
    return torch.fft.irfft(torch.fft.rfft(u, n=n) * k_f, n=n)


class _Base(nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(width, width)
        self.k = nn.Parameter(torch.randn(width, LENGTH) / LENGTH)

    def spectrum(self) -> torch.Tensor:
        return torch.fft.rfft(self.k, n=2 * LENGTH)


class GainFromTheModelInput(_Base):
    """The filter's gain is the RMS of the model input, upstream of the signal."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.proj(x).transpose(1, 2)
        gain = torch.clamp(torch.sqrt(torch.mean(x * x)), min=2.0)
        return _conv(u, self.spectrum() / gain)[..., :LENGTH].transpose(1, 2)


class GainFromTheSpectrum(_Base):
    """The gain is the RMS of the signal's own spectrum: invisible to the static check, caught by input scales."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.proj(x).transpose(1, 2)
        u_f = torch.fft.rfft(u, n=2 * LENGTH)
        gain = torch.clamp(torch.sqrt(torch.mean(u_f.real ** 2 + u_f.imag ** 2)), min=2.0)
        return torch.fft.irfft(u_f * self.spectrum() / gain, n=2 * LENGTH)[..., :LENGTH].transpose(1, 2)


class ChannelMixing(_Base):
    """A spectral product summed over input channels: a dense filter matrix, not per channel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.proj(x).transpose(1, 2)
        u_f = torch.fft.rfft(u, n=2 * LENGTH)
        y_f = (u_f + torch.roll(u_f, 1, dims=1)) * self.spectrum()
        return torch.fft.irfft(y_f, n=2 * LENGTH)[..., :LENGTH].transpose(1, 2)


class TimeReversedSpectrum(_Base):
    """The conjugate of the signal's spectrum is its time reversal: linear, but a correlation, not a convolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.proj(x).transpose(1, 2)
        u_f = torch.fft.rfft(u, n=2 * LENGTH).conj()
        return torch.fft.irfft(u_f * self.spectrum(), n=2 * LENGTH)[..., :LENGTH].transpose(1, 2)


class TimeWindowBeforeTheCrop(_Base):
    """A window over time multiplies the inverse transform before the crop."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.proj(x).transpose(1, 2)
        window = torch.linspace(1.0, 2.0, 2 * LENGTH)
        return (_conv(u, self.spectrum()) * window)[..., :LENGTH].transpose(1, 2)


class ConcatOnes(_Base):
    """Padding with ones is not zero padding: the region is affine in the signal."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.proj(x).transpose(1, 2)
        padded = torch.cat([u, torch.ones_like(u)], dim=-1)
        return torch.fft.irfft(torch.fft.rfft(padded) * self.spectrum(), n=2 * LENGTH)[..., :LENGTH].transpose(1, 2)


class HalfCrop(_Base):
    """Only the first half of the outputs is kept."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.proj(x).transpose(1, 2)
        return _conv(u, self.spectrum())[..., :LENGTH // 2].transpose(1, 2)


def _traced(module: nn.Module, example: torch.Tensor) -> onnx.ModelProto:
    loaded = LoadedModel(module.eval(), (example,), type(module).__name__, "0")
    with contextlib.redirect_stderr(io.StringIO()):
        return trace(loaded, example.shape[1], None, 20)


def _left_as_traced(model: onnx.ModelProto, strategy: str = "monarch") -> list[str]:
    """Rewrite ``model``; assert nothing was replaced and it computes what it did; return the reasons."""
    new, done, skipped = rewrite_fftconvs(model, lambda h: strategy)
    assert done == []
    assert Counter(n.op_type for n in new.graph.node)["DFT"] == Counter(n.op_type for n in model.graph.node)["DFT"]
    feeds = {model.graph.input[0].name: 10 * np.random.default_rng(0).standard_normal((2, LENGTH, 4)).astype(np.float32)}
    np.testing.assert_allclose(ReferenceEvaluator(new).run(None, feeds)[0],
                               ReferenceEvaluator(model).run(None, feeds)[0], rtol=1e-6, atol=1e-6)
    return [s.reason for s in skipped]


@pytest.mark.parametrize(("module", "reason"), [
    (GainFromTheModelInput, "depends on the model's inputs other than through the signal's FFT"),
    (GainFromTheSpectrum, "not a fixed per-channel convolution at input scale"),
    (ChannelMixing, "mixes several input channels"),
    (TimeReversedSpectrum, "changes with the signal or with time"),
])
def test_a_site_that_is_not_a_fixed_convolution_is_left_as_traced(module: type, reason: str) -> None:
    reasons = _left_as_traced(_traced(module(), torch.randn(1, LENGTH, 4)))
    assert len(reasons) == 1 and reason in reasons[0], reasons


def test_a_signal_dependent_gain_is_refused_statically() -> None:
    module, _ = models_styles.signal_dependent_gain()
    model = _traced(module, torch.randn(1, LENGTH, 6))
    new, done, skipped = rewrite_fftconvs(model, lambda h: "monarch")
    assert done == [] and "the signal also reaches the filter side (a Mul" in skipped[0].reason


def test_two_sided_filter_with_a_causal_only_strategy_is_left_as_traced() -> None:
    module, example = models_styles.centred_same()
    model = _traced(module, example[0])
    new, done, skipped = rewrite_fftconvs(model, lambda h: "plugin")
    assert done == [] and "takes causal filters only" in skipped[0].reason
    assert Counter(n.op_type for n in new.graph.node)["DFT"] == 2


def test_a_dynamic_graph_whose_filter_changes_with_length_is_left_as_traced() -> None:
    """A circular convolution (n = L) wraps differently at every length: no one rewrite serves them all."""
    module, _ = models_styles.circular()
    shapes = ({0: torch.export.Dim("B"), 1: torch.export.Dim("L", min=2, max=64)},)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        program = torch.onnx.export(module, (torch.randn(2, 40, 6),), dynamo=True, dynamic_shapes=shapes,
                                    opset_version=20)
    model = program.model_proto
    new, done, skipped = rewrite_fftconvs(model, lambda h: "monarch", max_seq_len=64)
    assert done == [] and "not the filter at the maximum length 64 cut to those lags" in skipped[0].reason


@pytest.mark.parametrize("module", [TimeWindowBeforeTheCrop, ConcatOnes, HalfCrop])
def test_a_time_varying_op_around_the_transforms_narrows_the_site(module: type) -> None:
    """The window (the padding with ones, the crop to half) stays in the graph; what is rewritten is
    the circular convolution of the padded signal, which is exact."""
    model = _traced(module(), torch.randn(1, LENGTH, 4))
    new, done, skipped = rewrite_fftconvs(model, lambda h: "monarch")
    assert len(done) == 1 and done[0].lead > 0 and skipped == []
    assert Counter(n.op_type for n in new.graph.node)["DFT"] == 0
    feeds = {model.graph.input[0].name: 10 * np.random.default_rng(0).standard_normal((2, LENGTH, 4)).astype(np.float32)}
    want = ReferenceEvaluator(model).run(None, feeds)[0]
    got = ReferenceEvaluator(new).run(None, feeds)[0]
    assert np.linalg.norm(got - want) / np.linalg.norm(want) <= 1e-5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_dft_kernel_matches_the_reference_kernel(dtype: type) -> None:
    from onnx import TensorProto, helper

    from hyena_deploy.rewrite.fast_dft import DFT

    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    rng = np.random.default_rng(0)
    for parts in (1, 2):
        for inverse in (0, 1):
            for onesided in (0, 1):
                for n in (10, 9):
                    x = rng.standard_normal((2, 3, 7, parts)).astype(dtype)
                    node = helper.make_node("DFT", ["x", "n", "axis"], ["y"], inverse=inverse, onesided=onesided)
                    graph = helper.make_graph(
                        [node], "g", [helper.make_tensor_value_info("x", elem, None)],
                        [helper.make_tensor_value_info("y", elem, None)],
                        [helper.make_tensor("n", TensorProto.INT64, [], [n]),
                         helper.make_tensor("axis", TensorProto.INT64, [], [2])])
                    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
                    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
                    got = ReferenceEvaluator(model, new_ops=[DFT]).run(None, {"x": x})[0]
                    assert got.shape == want.shape and got.dtype == want.dtype
                    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max())


def test_a_float64_site_is_left_as_traced() -> None:
    """The strategies build float32 graphs: a float64 convolution keeps its DFTs."""
    module = GainFromTheSpectrum().double()
    model = _traced(module, torch.randn(1, LENGTH, 4, dtype=torch.float64))
    new, done, skipped = rewrite_fftconvs(model, lambda h: "monarch")
    assert done == [] and "not float32 tensors" in skipped[0].reason


def test_float32_rounding_is_not_an_anticausal_filter(tmp_path) -> None:
    """hyena-tiny's causal filters, measured through float32 casts at 512, stay causal (plugin takes them)."""
    from hyena_deploy.jobs.export import export_model

    result = export_model("hyena-tiny", tmp_path / "m.onnx", fftconv="plugin", max_seq_len=512, verify=False)
    assert [(s.strategy, s.lead) for s in result.sites] == [("plugin", 0), ("plugin", 0)]
