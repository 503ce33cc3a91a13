"""The finder: where sites start and end, and every inverse DFT it does not take, named by module."""

from __future__ import annotations

import contextlib
import io

import onnx
import torch
from torch import nn

from hyena_deploy.graph import constant_value, producers
from hyena_deploy.loaded import LoadedModel
from hyena_deploy.rewrite.find import SkippedSite, find_sites, module_path
from hyena_deploy.rewrite.replace import rewrite_fftconvs
from hyena_deploy.trace import trace
from tests import models_styles

LENGTH = 24


class Bilinear(nn.Module):
    """The product of two input-dependent spectra: no fixed filter."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = 2 * x.shape[1]
        u, v = self.a(x).transpose(1, 2), self.b(x).transpose(1, 2)
        return torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(v, n=n), n=n)[..., :x.shape[1]]


class Wrapper(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.mixer = nn.ModuleList([inner])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixer[0](x)


def _traced(module: nn.Module, example: torch.Tensor) -> onnx.ModelProto:
    with contextlib.redirect_stderr(io.StringIO()):
        return trace(LoadedModel(module.eval(), (example,), "m", "0"), example.shape[1], None, 20)


def test_a_product_of_two_signal_spectra_is_skipped_with_the_module_path() -> None:
    model = _traced(Wrapper(Bilinear()), torch.randn(1, LENGTH, 4))
    sites, skipped = find_sites(model)
    assert sites == []
    assert len(skipped) == 1 and skipped[0].module == "mixer.0"
    assert "product of 2 input-dependent forward DFTs" in skipped[0].reason
    assert "in mixer.0 left as traced" in str(skipped[0])
    _, done, reported = rewrite_fftconvs(model, lambda h: "monarch")
    assert done == [] and reported == skipped


def test_module_path_reads_dynamo_name_scopes() -> None:
    node = onnx.helper.make_node("DFT", ["x"], ["y"])
    # full module paths, outermost first, then the node's own name: as the dynamo exporter writes them
    node.metadata_props.add(key="pkg.torch.onnx.name_scopes", value="['', 'blocks.0', 'blocks.0.filter', '_fft_c2r']")
    assert module_path(node) == "blocks.0.filter"
    assert module_path(onnx.helper.make_node("DFT", ["x"], ["y"])) == ""
    assert str(SkippedSite("node_DFT_3", "", "why")) == "FFT convolution at node_DFT_3 left as traced: why"


def test_output_walk_stops_before_a_flip() -> None:
    """Caduceus' backward branch: the flip after the crop must stay outside the site."""
    module, example = models_styles.caduceus_bidirectional()
    model = _traced(module, example[0])
    sites, skipped = find_sites(model)
    made_by = producers(model.graph)
    assert len(sites) == 2 and skipped == []
    for site in sites:
        for name in site.outputs:
            node = made_by[name]
            steps = constant_value(model.graph, node.input[4]) if node.op_type == "Slice" and len(node.input) > 4 else None
            assert steps is None or (steps > 0).all(), name


def test_signal_walk_passes_casts_padding_and_norms() -> None:
    """The signal walk goes back through the cast of integer ids (excluded later by their type) and
    through padding written as a cat with zeros."""
    for factory, first_op in [(models_styles.integer_signal, "Cast"), (models_styles.cat_pad_split_crop, "Concat")]:
        module, example = factory()
        model = _traced(module, example[0])
        (site,), _ = find_sites(model)
        made_by = producers(model.graph)
        walked = {made_by[name].op_type for name in site.signals[1:] if name in made_by}
        assert first_op in walked, (factory.__name__, walked)


def test_an_inverse_dft_of_no_forward_dft_is_skipped() -> None:
    """A spectrum given directly by the input (no forward DFT of a signal): nothing to measure."""
    from onnx import TensorProto, helper

    node = helper.make_node("DFT", ["x", "", "axis"], ["y"], name="idft", inverse=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [helper.make_tensor("axis", TensorProto.INT64, [], [1])])
    sites, skipped = find_sites(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]))
    assert sites == [] and skipped == [SkippedSite("idft", "", "its spectrum comes from no forward DFT of the input")]
