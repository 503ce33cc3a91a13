"""Complex ops on signal spectra rewritten into ones torch.onnx translates (hyena_deploy.trace.complex_lowering)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hyena_deploy.trace.complex_lowering import lower_complex_ops
from hyena_deploy.trace.fold import fold_input_independent
from tests.models_complex import SpectrumLayouts

BATCH = torch.export.Dim("batch", min=1, max=64)
PATTERNS = {
    "unsqueeze": lambda z: z.unsqueeze(-2).unsqueeze(1)[:, 0, :, 0],
    "expand": lambda z: z.unsqueeze(1).expand(-1, 3, -1, -1).sum(1),
    "repeat": lambda z: z.repeat(1, 2, 1)[:, 1:5],
    "select": lambda z: torch.stack([z[:, i] for i in range(4)], dim=1),
    "split": lambda z: torch.cat(z.split([1, 3], dim=-2)[::-1], dim=1),
    "chunk": lambda z: torch.cat(z.chunk(2, dim=1), dim=1),
    "unbind": lambda z: torch.stack(z.unbind(-2), dim=-2),
    "tensor_split": lambda z: torch.cat(torch.tensor_split(z, 2, dim=-1), dim=-1),
    "to": lambda z: z.to(torch.complex128).to(torch.complex64),
    "einsum": lambda z: torch.einsum("bcf,bcf->bcf", z, z.conj()) + torch.einsum("bcf,cf->bcf", z, z[0].real),
}


class Promoted(nn.Module):
    """A complex64 signal spectrum times a complex128 filter spectrum (promoted), cast back at the end."""

    def __init__(self) -> None:
        super().__init__()
        self.k = nn.Parameter(torch.randn(4, 8))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        k_f = torch.fft.rfft(self.k.double(), n=16)
        return torch.fft.irfft(torch.fft.rfft(u, n=16) * k_f, n=16).float()


class Pattern(nn.Module):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.k = nn.Parameter(torch.randn(4, 8))

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # (B, 4, 8)
        u_f = PATTERNS[self.name](torch.fft.rfft(u, n=16))
        return torch.fft.irfft(u_f * torch.fft.rfft(self.k, n=16), n=16)


def lowered(module: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    program = torch.export.export(module.eval(), (example,), dynamic_shapes=({0: BATCH},))
    fold_input_independent(program)
    assert lower_complex_ops(program) > 0
    for node in program.graph.nodes:  # no listed op reads a complex tensor any more
        if node.op == "call_function" and node.target.__name__.split(".")[0] in PATTERNS and node.args:
            assert not any(a.meta["val"].is_complex() for a in node.all_input_nodes), node.format_node()
    return program


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_pattern_is_exact(name: str) -> None:
    module = Pattern(name)
    program = lowered(module, torch.randn(2, 4, 8))
    for batch in (1, 5):
        u = torch.randn(batch, 4, 8)
        with torch.no_grad():
            torch.testing.assert_close(program.module()(u), module(u), rtol=1e-6, atol=1e-6)


def test_filter_bank_layouts_are_exact() -> None:
    torch.manual_seed(0)
    module = SpectrumLayouts()
    program = lowered(module, torch.randn(2, 40, 8))
    x = torch.randn(3, 40, 8)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), module(x), rtol=1e-6, atol=1e-6)


def test_mixed_precision_product_is_cast_explicitly() -> None:
    module = Promoted()
    program = lowered(module, torch.randn(2, 4, 8))
    muls = [n for n in program.graph.nodes if n.target == torch.ops.aten.mul.Tensor]
    assert muls and all(a.meta["val"].dtype == torch.complex128 for n in muls for a in n.all_input_nodes)
    u = torch.randn(5, 4, 8)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(u), module(u), rtol=1e-6, atol=1e-6)
