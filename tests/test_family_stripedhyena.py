"""StripedHyena family: published layouts, the stripedhyena package's own forward, attention, export."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.registry import families, load_directory
from tests.helpers import assert_tensorrt_safe

pytest.importorskip("stripedhyena.model", reason="stripedhyena (pip install stripedhyena==0.2.2 --no-deps; einops) "
                                                  "is not importable")

ROOT = Path(__file__).resolve().parent.parent


def _maker():
    path = ROOT / "samples" / "stripedhyena" / "make_checkpoint.py"
    spec = importlib.util.spec_from_file_location("sh_make_checkpoint", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """hf (hybrid, sharded), yml (hybrid) and hyena-only (hf) sample directories."""
    maker, root = _maker(), tmp_path_factory.mktemp("stripedhyena")
    made = {"hf": (root / "hf", "hf", False), "yml": (root / "yml", "yml", False),
            "hyena_only": (root / "hyena_only", "hf", True)}
    for directory, layout, hyena_only in made.values():
        maker.write_checkpoint(directory, layout, hyena_only, seed=1)
    return {name: spec[0] for name, spec in made.items()}


def rel_l2(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def random_ids(vocab: int, batch: int, length: int) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, length))


def stored_state(directory: Path) -> dict[str, torch.Tensor]:
    state = {}
    for path in sorted(directory.glob("*.bin")) + sorted(directory.glob("*.pt")):
        state.update(torch.load(path, weights_only=True))
    return {k.removeprefix("backbone."): v for k, v in state.items()}


@pytest.mark.parametrize("layout", ["hf", "yml"])
def test_layout_loads_every_stored_tensor(checkpoints, layout):
    directory = checkpoints[layout]
    assert [name for name, f in families().items() if f.matches(directory)] == ["stripedhyena"]
    loaded = load_directory(directory)
    model_state = loaded.module.model.state_dict()
    stored = stored_state(directory)
    assert set(stored) == set(model_state)
    for key, value in stored.items():
        if not key.endswith("inv_freq"):
            assert torch.equal(model_state[key], value), key
    ids = random_ids(loaded.vocab_size, 2, 11)
    with torch.no_grad():
        assert loaded.module(ids).shape == (2, 11, loaded.vocab_size)


def test_strict_key_mapping(checkpoints, tmp_path):
    source = checkpoints["yml"]
    (tmp_path / "config.yml").write_text((source / "config.yml").read_text())
    state = torch.load(source / "sh-tiny.pt", weights_only=True)
    torch.save({k: v for k, v in state.items() if k != "blocks.0.filter.poles"}, tmp_path / "sh-tiny.pt")
    with pytest.raises(HyenaDeployError, match="blocks.0.filter.poles"):
        load_directory(tmp_path)
    torch.save({**state, "blocks.0.filter.extra": torch.zeros(1)}, tmp_path / "sh-tiny.pt")
    with pytest.raises(HyenaDeployError, match="blocks.0.filter.extra"):
        load_directory(tmp_path)


def test_matches_the_packages_own_forward(checkpoints):
    from stripedhyena.model import StripedHyena
    from stripedhyena.utils import dotdict

    from hyena_deploy.exporters.stripedhyena import package_config

    directory = checkpoints["hyena_only"]
    loaded = load_directory(directory)
    config = json.loads((directory / "config.json").read_text())
    reference = StripedHyena(dotdict(package_config(config))).eval()  # unmodified: complex compute_filter
    reference.load_state_dict(stored_state(directory), strict=True)
    assert all("compute_filter" not in vars(block.filter) for block in reference.blocks)
    ids = random_ids(loaded.vocab_size, 3, 53)
    with torch.no_grad():
        want = reference(ids)[0]
        got = loaded.module(ids)
        for ours, theirs in zip(loaded.module.model.blocks, reference.blocks):
            h_ours = ours.filter.compute_filter(53, torch.device("cpu"))[0]
            h_theirs = theirs.filter.compute_filter(53, torch.device("cpu"))[0]
            assert rel_l2(h_ours, h_theirs) < 1e-6
    assert rel_l2(got, want) < 1e-5


def test_attention_matches_flash_attn_semantics(checkpoints):
    """GQA, [q; k; v] rows, NeoX rotary with positions t / scaling_factor, causal softmax."""
    directory = checkpoints["hf"]
    config = json.loads((directory / "config.json").read_text())
    mha = load_directory(directory).module.model.blocks[config["attn_layer_idxs"][0]].inner_mha_cls
    dim, heads = config["hidden_size"], config["num_attention_heads"]
    kv_heads, d = heads // config["proj_groups"], dim // heads
    batch, length = 2, 19
    x = torch.randn(batch, length, dim)
    with torch.no_grad():
        got = mha(x)
    w = {k: v.double() for k, v in mha.state_dict().items()}
    qkv = x.double() @ w["Wqkv.weight"].T + w["Wqkv.bias"]
    q = qkv[..., :heads * d].reshape(batch, length, heads, d)
    k = qkv[..., heads * d:(heads + kv_heads) * d].reshape(batch, length, kv_heads, d)
    v = qkv[..., (heads + kv_heads) * d:].reshape(batch, length, kv_heads, d)
    positions = torch.arange(length, dtype=torch.float64) / config["rotary_emb_scaling_factor"]
    angle = positions[:, None] * config["rotary_emb_base"] ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    cos, sin = angle.cos()[:, None], angle.sin()[:, None]

    def rotate(t):
        a, b = t[..., :d // 2], t[..., d // 2:]
        return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)

    q, k = rotate(q), rotate(k)
    out = torch.empty(batch, length, heads, d, dtype=torch.float64)
    future = torch.triu(torch.ones(length, length, dtype=torch.bool), 1)
    for head in range(heads):
        kv = head // (heads // kv_heads)
        scores = torch.einsum("bld,bmd->blm", q[:, :, head], k[:, :, kv]) / math.sqrt(d)
        out[:, :, head] = torch.softmax(scores.masked_fill(future, -math.inf), -1) @ v[:, :, kv]
    want = out.reshape(batch, length, dim) @ w["out_proj.weight"].T + w["out_proj.bias"]
    assert rel_l2(got, want) < 1e-5


def test_byte_tokenizer_for_char_level_configs(checkpoints):
    (ids,) = load_directory(checkpoints["hf"]).tokenizer(["ACGT", "A"])
    assert ids.tolist() == [[65, 67, 71, 84], [65, 1, 1, 1]]
    assert load_directory(checkpoints["yml"]).tokenizer is None


@pytest.mark.parametrize("layout,lengths", [("hf", {"seq_len": 45}), ("yml", {"max_seq_len": 96})])
def test_export_monarch(checkpoints, tmp_path, layout, lengths):
    from hyena_deploy.jobs import export as pipeline

    loaded = load_directory(checkpoints[layout])
    output = tmp_path / "model.onnx"
    result = pipeline.export_model(loaded, output, fftconv="monarch", **lengths)
    assert len(result.sites) == 3  # one per Hyena block
    assert_tensorrt_safe(output)
    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    for length in ([45] if "seq_len" in lengths else [1, 17, 51, 95]):
        ids = random_ids(loaded.vocab_size, 3, length)
        with torch.no_grad():
            want = loaded.module(ids).numpy()
        got = session.run(None, {session.get_inputs()[0].name: ids.numpy()})[0]
        assert rel_l2(got, want) <= 1e-5, length
