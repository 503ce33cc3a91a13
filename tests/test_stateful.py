"""State kinds: each chunk-with-state layer, fed a sequence in chunks of any size, equals the full-sequence math."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hyena_deploy.models.hyena import fftconv
from hyena_deploy.models.striped import RotaryMHA
from hyena_deploy.stateful.attention import CachedRotaryAttention
from hyena_deploy.stateful.fir import conv_with_cache
from hyena_deploy.stateful.history import HistoryConv
from hyena_deploy.stateful.modal import RealModalConv
from hyena_deploy.stateful.modal_complex import ComplexModalConv

CHUNKINGS = [[1] * 9, [7, 7, 7], [1, 13, 2, 5], [40]]


def rel_l2(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).norm() / want.norm())


def chunked(layer, u: torch.Tensor, state: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Run ``layer(u_chunk, state)`` over ``u`` (B, C, L) in chunks of ``sizes`` (cycled), concatenating outputs."""
    outs, start, i = [], 0, 0
    while start < u.shape[-1]:
        end = min(u.shape[-1], start + sizes[i % len(sizes)])
        y, state = layer(u[..., start:end], state)
        outs.append(y)
        start, i = end, i + 1
    return torch.cat(outs, dim=-1)


@pytest.mark.parametrize("taps", [1, 3, 7, 128])
@pytest.mark.parametrize("sizes", CHUNKINGS)
def test_fir_cache_equals_padded_conv(taps: int, sizes: list[int]) -> None:
    u = torch.randn(3, 5, 41)
    weight = torch.randn(5, 1, taps)
    want = F.conv1d(u, weight, padding=taps - 1, groups=5)[..., :41]
    got = chunked(lambda x, s: conv_with_cache(s, x, weight), u, torch.zeros(3, 5, taps - 1), sizes)
    assert rel_l2(got, want) < 1e-6


@pytest.mark.parametrize("sizes", CHUNKINGS)
def test_history_equals_fft_convolution(sizes: list[int]) -> None:
    h, skip = torch.randn(4, 64) * torch.exp(-torch.arange(64) / 20.0), torch.randn(4)
    u = torch.randn(3, 4, 37)
    want = fftconv(u, h[:, :37], skip)
    layer = HistoryConv(h, skip)
    assert layer.state_length == 63
    assert rel_l2(chunked(layer, u, torch.zeros(3, 4, 63), sizes), want) < 1e-6


def real_modal_filter(log_p: torch.Tensor, residues: torch.Tensor, length: int) -> torch.Tensor:
    t = torch.arange(length, dtype=torch.float64)
    return (residues.double()[..., None] * torch.exp(log_p.double()[..., None] * t)).sum(1)


@pytest.mark.parametrize("sizes", CHUNKINGS)
def test_real_modal_equals_its_filter(sizes: list[int]) -> None:
    log_p, residues, skip = -torch.rand(6, 16) * 0.3, torch.randn(6, 16), torch.randn(6)
    u = torch.randn(3, 6, 45, dtype=torch.float64)
    want = fftconv(u, real_modal_filter(log_p, residues, 45), skip.double())
    got = chunked(RealModalConv(log_p, residues, skip), u.float(), torch.zeros(3, 6, 16), sizes)
    assert rel_l2(got.double(), want) < 1e-6


def test_real_modal_state_is_the_recurrence() -> None:
    """After a chunk, the state is ``s_{T-1} = Σ_k p^(T-1-k) u_k`` (StripedHyena's modal prefill formula)."""
    log_p, residues = -torch.rand(2, 3), torch.randn(2, 3)
    u = torch.randn(1, 2, 9)
    _, state = RealModalConv(log_p, residues, torch.zeros(2))(u, torch.zeros(1, 2, 3))
    k = torch.arange(9)
    want = (torch.exp(log_p[..., None] * (8 - k)) * u[:, :, None]).sum(-1)
    assert rel_l2(state, want) < 1e-6


@pytest.mark.parametrize("sizes", CHUNKINGS)
def test_complex_modal_equals_its_filter(sizes: list[int]) -> None:
    radius = 0.6 + 0.39 * torch.rand(5, 4, dtype=torch.float64)
    poles = torch.polar(radius, torch.rand(5, 4, dtype=torch.float64) * torch.pi)
    residues = torch.complex(torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64))
    skip = torch.randn(5, dtype=torch.float64)
    t = torch.arange(43, dtype=torch.float64)
    h = (residues[..., None] * poles[..., None] ** t).real.sum(1)
    u = torch.randn(2, 5, 43, dtype=torch.float64)
    want = fftconv(u, h, skip)
    got = chunked(ComplexModalConv(poles, residues, skip), u.float(), torch.zeros(2, 5, 4, 2), sizes)
    assert rel_l2(got.double(), want) < 2e-6


@pytest.mark.parametrize("heads, kv_heads", [(4, 4), (4, 2), (6, 1)])
@pytest.mark.parametrize("sizes", [[1] * 7, [5, 2], [17]])
def test_cached_attention_equals_full_attention(heads: int, kv_heads: int, sizes: list[int]) -> None:
    torch.manual_seed(0)
    mha = RotaryMHA(24, heads, kv_heads, qkv_bias=True, out_bias=True, rotary_base=10000.0, rotary_scaling=2.0).eval()
    x = torch.randn(3, 17, 24)
    with torch.no_grad():
        want = mha(x)
        layer = CachedRotaryAttention(mha, max_context=32)
        shape = layer.state_shape()
        keys, values = torch.zeros(3, *shape), torch.zeros(3, *shape)
        position = torch.zeros(3, 1, dtype=torch.long)
        outs, start, i = [], 0, 0
        while start < 17:
            end = min(17, start + sizes[i % len(sizes)])
            y, keys, values = layer(x[:, start:end], position, keys, values)
            position = position + (end - start)
            outs.append(y)
            start, i = end, i + 1
    assert rel_l2(torch.cat(outs, 1), want) < 1e-6


def test_cached_attention_rows_at_different_positions() -> None:
    """Rows prefilled separately (prompts of unequal length) and stacked decode exactly together."""
    torch.manual_seed(1)
    mha = RotaryMHA(16, 2, 1, qkv_bias=False, out_bias=False, rotary_base=10000.0).eval()
    layer = CachedRotaryAttention(mha, max_context=16)
    a, b = torch.randn(1, 5, 16), torch.randn(1, 9, 16)
    with torch.no_grad():
        zeros = torch.zeros(1, *layer.state_shape())
        _, ka, va = layer(a[:, :4], torch.zeros(1, 1, dtype=torch.long), zeros, zeros)
        _, kb, vb = layer(b[:, :8], torch.zeros(1, 1, dtype=torch.long), zeros, zeros)
        y, _, _ = layer(torch.cat([a[:, 4:], b[:, 8:]]), torch.tensor([[4], [8]]), torch.cat([ka, kb]),
                        torch.cat([va, vb]))
        want = torch.cat([mha(a)[:, -1:], mha(b)[:, -1:]])
    assert rel_l2(y, want) < 1e-6


def test_modal_layers_trace_without_complex_or_control_flow(tmp_path) -> None:
    """The complex modal layer exports to plain real ops with a dynamic chunk length."""
    import onnx

    from tests.helpers import FORBIDDEN_FOR_TENSORRT

    poles = torch.polar(torch.full((3, 2), 0.9, dtype=torch.float64), torch.full((3, 2), 0.5, dtype=torch.float64))
    layer = ComplexModalConv(poles, torch.ones(3, 2, dtype=torch.complex128), torch.zeros(3)).eval()
    tokens = torch.export.Dim("tokens", min=1, max=64)
    program = torch.onnx.export(layer, (torch.randn(2, 3, 5), torch.zeros(2, 3, 2, 2)), dynamo=True,
                                dynamic_shapes=({2: tokens}, None), verbose=False, report=False)
    path = tmp_path / "modal.onnx"
    program.save(str(path))
    model = onnx.load(str(path))
    assert not {n.op_type for n in model.graph.node} & FORBIDDEN_FOR_TENSORRT
    import onnxruntime as ort

    session = ort.InferenceSession(str(path))
    u = np.random.default_rng(0).standard_normal((2, 3, 11)).astype(np.float32)
    state = np.zeros((2, 3, 2, 2), np.float32)
    got = session.run(None, dict(zip([i.name for i in session.get_inputs()], [u, state])))[0]
    want = layer(torch.from_numpy(u), torch.from_numpy(state))[0].detach().numpy()
    assert np.abs(got - want).max() < 1e-5


def test_causal_lm_step_with_learned_positions_equals_full_forward() -> None:
    """Learned absolute positions add the model-wide position state; chunks of any size stay exact."""
    from hyena_deploy.models.backbone import Backbone, CausalLM, CausalLMStep, Embeddings, MixerBlock
    from hyena_deploy.models.hyena import HyenaOperator

    torch.manual_seed(0)
    blocks = [MixerBlock(HyenaOperator(16, 64, order=2, filter_order=16, emb_dim=5), 16, 32, 1e-5) for _ in range(2)]
    lm = CausalLM(Backbone(Embeddings(11, 16, max_position_embeddings=64), blocks, 16, 1e-5), True).eval()
    step = CausalLMStep(lm, 48).eval()
    assert step.specs[-1].kind == "position"
    ids = torch.randint(0, 11, (3, 30))
    with torch.no_grad():
        want = lm(ids)
        states = [torch.zeros(3, *s.shape, dtype=getattr(torch, s.dtype)) for s in step.specs]
        outs = []
        for start, end in ((0, 1), (1, 8), (8, 9), (9, 30)):
            logits, *states = step(ids[:, start:end], *states)
            outs.append(logits)
    assert rel_l2(torch.cat(outs, 1), want) < 1e-6
    assert states[-1].tolist() == [[30]] * 3


@pytest.mark.parametrize("order, layout", [(2, "od"), (3, "od"), (3, "vo")])
def test_modal_form_filters_get_modal_states(order: int, layout: str) -> None:
    """A long filter with ``modal_form()`` (a distilled filter, contract C3) decodes with modal states, exactly."""
    from hyena_deploy.models.hyena import HyenaOperator, HyenaOperatorStep
    from hyena_deploy.models.modal_filter import ModalFilter

    torch.manual_seed(order)
    operator = HyenaOperator(8, 64, order=order, filter_order=16, emb_dim=5, channel_layout=layout).eval()
    channels = 8 * (order - 1)
    poles = torch.polar(0.5 + 0.45 * torch.rand(channels, 3, dtype=torch.float64),
                        torch.rand(channels, 3, dtype=torch.float64) * 3)
    residues = torch.complex(torch.randn(channels, 3, dtype=torch.float64),
                             torch.randn(channels, 3, dtype=torch.float64))
    operator.filter_fn = ModalFilter(poles, residues, torch.randn(channels), length=64)
    step = HyenaOperatorStep(operator, 48)
    kinds = [kind for kind, _, _ in step.state_shapes()]
    assert kinds == ["fir"] + ["modal_complex"] * (order - 1)
    u = torch.randn(3, 29, 8)
    with torch.no_grad():
        want = operator(u)
        states = [torch.zeros(3, *shape) for _, _, shape in step.state_shapes()]
        outs = []
        for start, end in ((0, 1), (1, 12), (12, 13), (13, 29)):
            y, states = step(u[:, start:end], *states)
            outs.append(y)
    assert rel_l2(torch.cat(outs, 1), want) < 1e-5


def test_evo2_hcl_modal_form_is_its_filter() -> None:
    from hyena_deploy.models.evo2 import Evo2Config, HyenaCascade

    cfg = Evo2Config.from_vortex({"vocab_size": 8, "hidden_size": 8, "num_layers": 1, "num_attention_heads": 2,
                                  "state_size": 4, "eps": 1e-6, "short_filter_length": 3, "hcl_layer_idxs": [0]})
    cascade = HyenaCascade(cfg, "hcl")
    with torch.no_grad():
        cascade.log_poles.copy_(-torch.rand(8, 4, 1))
        cascade.residues.copy_(torch.randn(8, 4))
    poles, residues = cascade.modal_form()
    t = torch.arange(20, dtype=torch.float64)
    h = (residues[..., None] * poles[..., None] ** t).real.sum(1)
    assert rel_l2(h.float(), cascade.long_filter(20).detach()) < 1e-6
