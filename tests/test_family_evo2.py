"""Evo 2 family: vortex layout, the published math restated explicitly, export."""

from __future__ import annotations

import fractions
import importlib.util
import io
import json
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.registry import families, load_directory
from tests.helpers import assert_tensorrt_safe

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = "evo2_tiny.pt"


def _maker():
    spec = importlib.util.spec_from_file_location("evo2_make_checkpoint", ROOT / "samples/evo2/make_checkpoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("evo2") / "yml"
    _maker().write_checkpoint(directory, "yml", seed=1)
    return directory


@pytest.fixture(scope="module")
def config() -> dict:
    return _maker().CONFIG


def rel_l2(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def raw_state(directory: Path) -> dict:
    """The checkpoint as stored, ``_extra_state`` (io.BytesIO) included."""
    with torch.serialization.safe_globals([io.BytesIO]):
        return torch.load(directory / WEIGHTS, weights_only=True)


def stored_state(directory: Path) -> dict[str, torch.Tensor]:
    return {k: v.double() for k, v in raw_state(directory).items() if isinstance(v, torch.Tensor)}


def causal(u: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """``y[c, t] = Σ_s taps[c, s] u[c, t - s]`` by explicit shifts."""
    y = torch.zeros_like(u)
    for s in range(min(taps.shape[1], u.shape[-1])):
        y[..., s:] += taps[:, s, None] * u[..., :u.shape[-1] - s]
    return y


def reference_logits(state: dict, cfg: dict, ids: torch.Tensor) -> torch.Tensor:
    """The vortex forward restated in float64 from the stored tensors (vortex layout, column-split Wqkv)."""
    dim, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["eps"]
    d, (batch, length) = dim // heads, ids.shape

    def rms(x, scale):
        return scale * x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps)

    x = state["embedding_layer.weight"][ids]
    for i in range(cfg["num_layers"]):
        p = f"blocks.{i}."
        xn = rms(x, state[p + "pre_norm.scale"])
        if i in cfg["attn_layer_idxs"]:
            w = state[p + "inner_mha_cls.Wqkv.weight"].reshape(heads, 3, d, dim)  # stored per head: q, k, v
            q, k, v = (torch.einsum("hed,bld->blhe", w[:, j], xn) for j in range(3))
            angle = (torch.arange(length, dtype=torch.float64) / cfg["rotary_emb_scaling_factor"])[:, None] \
                * state[p + "inner_mha_cls.rotary_emb.inv_freq"][None]
            cos, sin = angle.cos()[:, None], angle.sin()[:, None]
            rot = lambda t: torch.cat([t[..., :d // 2] * cos - t[..., d // 2:] * sin,  # noqa: E731
                                       t[..., d // 2:] * cos + t[..., :d // 2] * sin], -1)
            scores = torch.einsum("blhe,bmhe->bhlm", rot(q), rot(k)) / math.sqrt(d)
            scores = scores.masked_fill(torch.triu(torch.ones(length, length, dtype=torch.bool), 1), -math.inf)
            ctx = torch.einsum("bhlm,bmhe->blhe", torch.softmax(scores, -1), v).reshape(batch, length, dim)
            x = x + ctx @ state[p + "inner_mha_cls.out_proj.weight"].T + state[p + "inner_mha_cls.out_proj.bias"]
        else:
            z = (xn @ state[p + "projections.weight"].T).transpose(1, 2)  # (B, 3D, L)
            z = causal(z, state[p + "filter.short_filter_weight"][:, 0].flip(1))  # conv1d = cross-correlation
            z = z[:, [c for r in range(3) for c in range(r, 3 * dim, 3)]]  # interleave
            x2, x1, v = z[:, :dim], z[:, dim:2 * dim], z[:, 2 * dim:]
            u = x1 * v
            if i in cfg["hcs_layer_idxs"]:  # cross-correlation, no D
                h = state[p + "filter.h"][:, 0].repeat_interleave(dim // cfg["hcs_filter_groups"], 0)
                y = causal(u, h.flip(1))
            elif i in cfg["hcm_layer_idxs"]:  # true convolution, D skip
                h = state[p + "filter.h"][:, 0].repeat_interleave(dim // cfg["hcm_filter_groups"], 0)
                y = causal(u, h) + state[p + "filter.D"][:, None] * u
            else:  # modal sum over 16 real modes, D skip
                t = torch.arange(length, dtype=torch.float64)
                h = (state[p + "filter.residues"][..., None] * torch.exp(state[p + "filter.log_poles"] * t)).sum(1)
                y = causal(u, h) + state[p + "filter.D"][:, None] * u
            y = (x2 * y).transpose(1, 2)
            x = x + y @ state[p + "out_filter_dense.weight"].T + state[p + "out_filter_dense.bias"]
        zn = rms(x, state[p + "post_norm.scale"])
        a, b = zn @ state[p + "mlp.l1.weight"].T, zn @ state[p + "mlp.l2.weight"].T
        x = x + ((F.gelu(a) if i == 0 else a) * b) @ state[p + "mlp.l3.weight"].T  # GELU in layer 0 only
    return rms(x, state["norm.scale"]) @ state["embedding_layer.weight"].T


def test_matches_the_published_math(checkpoint, config):
    loaded = load_directory(checkpoint)
    ids = torch.randint(0, config["vocab_size"], (2, 150))  # longer than the 128-tap HCM filter
    with torch.no_grad():
        got = loaded.module(ids)
    assert rel_l2(got, reference_logits(stored_state(checkpoint), config, ids)) < 1e-5


def test_filter_orientations(checkpoint):
    """A unit tap at index s delays x1*v by 6 - s in HCS (cross-correlation) and by s in HCM (convolution)."""
    model = load_directory(checkpoint).module
    z = torch.randn(2, 20, 3 * 32)
    for index, delay in ((0, 6 - 2), (1, 5)):
        cascade = model.blocks[index].filter
        tap = 2 if index == 0 else 5
        with torch.no_grad():
            cascade.h.zero_()
            cascade.h[:, 0, tap] = 1.0
            if cascade.D is not None:
                cascade.D.zero_()
            x2, x1, v = cascade.gates(z)
            got = cascade(z).transpose(1, 2)
        want = x2 * F.pad(x1 * v, (delay, 0))[..., :20]
        assert torch.allclose(got, want, atol=1e-6), index
    assert isinstance(model.blocks[0].mlp.act, nn.GELU)
    assert all(isinstance(block.mlp.act, nn.Identity) for block in model.blocks[1:])


def test_layout_and_strict_keys(checkpoint, tmp_path):
    assert [name for name, f in families().items() if f.matches(checkpoint)] == ["evo2"]
    reference = load_directory(checkpoint)
    json_dir = tmp_path / "json"
    json_dir.mkdir()
    (json_dir / "config.json").write_text(json.dumps(_maker().CONFIG))
    (json_dir / WEIGHTS).write_bytes((checkpoint / WEIGHTS).read_bytes())
    ids = torch.randint(0, 512, (1, 33))
    with torch.no_grad():
        assert torch.equal(load_directory(json_dir).module(ids), reference.module(ids))
    state = raw_state(checkpoint)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.yml").write_text((checkpoint / "config.yml").read_text())
    cases = {"blocks.2.filter.log_poles": {k: v for k, v in state.items() if k != "blocks.2.filter.log_poles"},
             "blocks.1.filter.unknown": {**state, "blocks.1.filter.unknown": torch.zeros(1)},
             "refused": {**state, "blocks.0.note": fractions.Fraction(1, 2)}}
    for expected, bad in cases.items():
        torch.save(bad, broken / WEIGHTS)
        with pytest.raises(HyenaDeployError, match=expected):
            load_directory(broken)


def test_byte_tokenizer(checkpoint):
    (ids,) = load_directory(checkpoint).tokenizer(["ACGT", "AC", "é"])
    assert ids.tolist() == [[65, 67, 71, 84], [65, 67, 1, 1], [195, 169, 1, 1]]


@pytest.mark.parametrize("lengths", [{"seq_len": 45}, {"max_seq_len": 160}])
def test_export_monarch(checkpoint, tmp_path, lengths):
    from hyena_deploy.jobs import export as pipeline

    loaded = load_directory(checkpoint)
    output = tmp_path / "model.onnx"
    result = pipeline.export_model(loaded, output, fftconv="monarch", **lengths)
    assert len(result.sites) == 2  # HCM and HCL; the 7-tap HCS stays a Conv
    assert_tensorrt_safe(output)
    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    for length in ([45] if "seq_len" in lengths else [1, 17, 129, 159]):
        ids = torch.randint(0, loaded.vocab_size, (3, length))
        with torch.no_grad():
            want = loaded.module(ids).numpy()
        got = session.run(None, {session.get_inputs()[0].name: ids.numpy()})[0]
        assert rel_l2(got, want) <= 1e-5, length
