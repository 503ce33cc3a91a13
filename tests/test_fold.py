"""Folding input-independent subgraphs of an exported program (hyena_deploy.trace.fold)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hyena_deploy.trace.fold import fold_input_independent, input_dependent
from tests import models_complex

BATCH = torch.export.Dim("batch", min=1, max=64)


def export(module: nn.Module, *example: torch.Tensor) -> torch.export.ExportedProgram:
    return torch.export.export(module.eval(), example, dynamic_shapes=tuple({0: BATCH} for _ in example))


def targets(program: torch.export.ExportedProgram) -> set[str]:
    return {str(n.target) for n in program.graph.nodes if n.op == "call_function"}


def assert_same(program: torch.export.ExportedProgram, module: nn.Module, *inputs: torch.Tensor) -> None:
    with torch.no_grad():
        want, got = module(*inputs), program.module()(*inputs)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


class SignalScaledFilter(nn.Module):
    """The filter's gain depends on the signal: ``spectrum / clamp(rms(u), min=2)`` must never be folded."""

    def __init__(self) -> None:
        super().__init__()
        self.h = nn.Parameter(torch.randn(4, 16))
        self.freq = nn.Parameter(torch.rand(4, 1))

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # (B, 4, 16)
        h = self.h * torch.exp(-self.freq * torch.arange(16.0)) * torch.sin(self.freq)
        spectrum = torch.fft.rfft(h, n=32) * 0.5  # a complex value computed from the filter's spectrum
        gain = torch.sqrt((u * u).mean()).clamp(min=2.0)
        return torch.fft.irfft(torch.fft.rfft(u, n=32) * spectrum / gain, n=32)[..., :16]


def test_filter_math_is_folded_and_signal_dependent_gain_kept() -> None:
    module, u = SignalScaledFilter(), torch.randn(2, 4, 16)
    program = export(module, u)
    folded = fold_input_independent(program)
    left = targets(program)
    assert not left & {"aten.exp.default", "aten.sin.default", "aten.arange.start_step", "aten.arange.default"}, left
    assert {"aten.sqrt.default", "aten.clamp.default", "aten.mean.default"} <= left  # the gain stays computed
    assert any(f.dtype == "complex64" for f in folded)  # the filter's spectrum
    for scale in (1e-3, 1.0, 10.0, 1e3):  # the gain switches regime at rms 2: both sides are checked
        assert_same(program, module, scale * torch.randn(5, 4, 16))


def test_complex_constant_enters_as_real_view() -> None:
    module, u = SignalScaledFilter(), torch.randn(2, 4, 16)
    program = export(module, u)
    fold_input_independent(program)
    assert all(not c.is_complex() for c in program.constants.values())
    views = [n for n in program.graph.nodes if n.target == torch.ops.aten.view_as_complex.default]
    assert views and all(n.args[0].op == "placeholder" for n in views)


class ComplexBuffer(nn.Module):
    """A stored complex spectrum read directly by the signal path."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("k_f", torch.fft.rfft(torch.randn(3, 8), n=16))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft(torch.fft.rfft(u, n=16) * self.k_f, n=16)[..., :8]


def test_complex_buffer_becomes_real_constant() -> None:
    module = ComplexBuffer()
    program = export(module, torch.randn(2, 3, 8))
    fold_input_independent(program)
    assert "k_f" not in program.state_dict and all(not c.is_complex() for c in program.constants.values())
    assert_same(program, module, torch.randn(4, 3, 8))


class BatchShaped(nn.Module):
    """Values built from the batch size (symbolic) and a random draw: neither may be folded."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ones = torch.ones(x.shape[0], 1, 6) * torch.tanh(self.w)
        noise = torch.rand(6) * 0  # a random op: its value may differ per run, it is never evaluated here
        return x * ones + noise


def test_symbolic_sizes_and_random_ops_are_not_folded() -> None:
    module = BatchShaped()
    program = export(module, torch.randn(2, 5, 6))
    dependent = input_dependent(program)
    random_nodes = [n for n in program.graph.nodes if "rand" in str(n.target)]
    ones = [n for n in program.graph.nodes if str(n.target).startswith("aten.ones")]
    assert random_nodes and all(n in dependent for n in random_nodes + ones)
    fold_input_independent(program)
    assert "aten.tanh.default" not in targets(program)
    assert random_nodes[0] in program.graph.nodes
    for batch in (1, 7):
        assert_same(program, module, torch.randn(batch, 5, 6))


class TiedHead(nn.Module):
    """A tied LM head reads the embedding transposed: no transposed copy of the weight is made."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 8)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embed(ids) @ self.embed.weight.t()


def test_relabelled_weights_are_not_copied() -> None:
    module = TiedHead()
    program = export(module, torch.randint(0, 50, (2, 9)))
    assert fold_input_independent(program) == []
    assert not program.constants and "embed.weight" in program.state_dict


@pytest.mark.parametrize("factory", ["s4d", "h3_m2"])
def test_complex_kernels_fold_to_real_constants(factory: str) -> None:
    module = getattr(models_complex, factory)()
    ids = torch.randint(0, 32, (2, 37))
    program = export(module, ids)
    fold_input_independent(program)
    left = targets(program)
    assert not {t for t in left if t.split(".")[1:2] in (["exp"], ["log"], ["sin"], ["cos"], ["einsum"])}, left
    assert all(not c.is_complex() for c in program.constants.values())
    assert_same(program, module, torch.randint(0, 32, (3, 37)))


class PlainFilter(nn.Module):
    """A real filter from a decaying MLP, then its rfft read by the signal path."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = nn.Linear(1, 4)

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # (B, 4, 16)
        h = torch.sin(self.mlp(torch.linspace(0, 1, 16)[:, None])).t() * torch.exp(-torch.arange(16.0))
        return torch.fft.irfft(torch.fft.rfft(u, n=32) * torch.fft.rfft(h, n=32), n=32)[..., :16]


def test_transform_of_a_real_filter_stays_and_its_input_folds() -> None:
    """The (C, L) real filter is stored, not its (C, L + 1, 2) spectrum; the rewrite drops the transform."""
    module = PlainFilter()
    program = export(module, torch.randn(2, 4, 16))
    folded = fold_input_independent(program)
    assert [(f.shape, f.dtype) for f in folded] == [((4, 16), "float32")]
    assert [str(n.target) for n in program.graph.nodes].count("aten.fft_rfft.default") == 2
    assert not targets(program) & {"aten.sin.default", "aten.exp.default", "aten.linear.default"}
    assert_same(program, module, torch.randn(3, 4, 16))
