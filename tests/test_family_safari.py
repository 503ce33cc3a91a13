"""safari family: layouts, exact keys, parity with a float64 re-statement of the published math, safety, export.

The reference below is written from the published formulas (docs/hyena-families.md §1), not from
the package: explicit Toeplitz causal convolution, explicit filter MLP, explicit channel split.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.jobs.export import export_model
from hyena_deploy.registry import families, load_directory

ROOT = Path(__file__).resolve().parents[1]
BANNED_OPS = {"DFT", "Sin", "Cos", "Exp", "Log"}
PARITY = 1e-5  # relative L2, ONNX Runtime vs PyTorch
MATH = 1e-10    # relative L2, the loaded module run in float64 vs the float64 reference: same math
FP32 = 1e-5     # relative L2, the loaded module in float32 vs the float64 reference


def load_script(family: str):
    """samples/<family>/make_checkpoint.py as a module."""
    spec = importlib.util.spec_from_file_location(f"make_{family}", ROOT / "samples" / family / "make_checkpoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make = load_script("safari")
FAMILY = families()["safari"]


# ----------------------------------------------------------------------------- reference math (float64)

def raw_state(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file exactly as stored."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    obj = torch.load(path, weights_only=True)
    return obj.get("state_dict", obj)


def rel_l2(got: torch.Tensor | np.ndarray, want: torch.Tensor | np.ndarray) -> float:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def causal_conv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``y[b, d, t] = sum_{s <= t} k[d, t - s] u[b, d, s]`` as an explicit Toeplitz product."""
    steps = torch.arange(u.shape[-1])
    lag = steps[:, None] - steps[None, :]
    toeplitz = torch.where(lag >= 0, k[:, lag.clamp(min=0)], torch.zeros((), dtype=k.dtype))
    return torch.einsum("dts,bds->bdt", toeplitz, u)


def ref_filter(sd: dict, p: str, length: int, w: float, shift: float, modulate: bool = True) -> torch.Tensor:
    """Implicit filter (length, channels): Sin MLP on the stored z, one shared freq, exponential window."""
    g = lambda name: sd[p + name].double()  # noqa: E731
    stored = [sd[p + f"implicit_filter.{i}.freq"] for i in (1, 3, 5) if p + f"implicit_filter.{i}.freq" in sd]
    width = g("implicit_filter.0.weight").shape[0]
    freq = stored[0].double() if stored else torch.full((1, width), float(w), dtype=torch.float64)
    h = g("pos_emb.z")[0, :length]
    for i in (0, 2, 4):
        h = torch.sin(freq * (h @ g(f"implicit_filter.{i}.weight").T + g(f"implicit_filter.{i}.bias")))
    h = h @ g("implicit_filter.6.weight").T
    if modulate:
        h = h * (torch.exp(-g("pos_emb.t")[0, :length] * g("modulation.deltas")[0].abs()) + shift)
    return h


def ref_operator(sd: dict, p: str, u: torch.Tensor, *, order: int, layout: str, shift: float, w: float,
                 modulate: bool = True) -> torch.Tensor:
    """Hyena operator on (B, L, D): in_proj, causal 3-tap FIR, gated long convs with D skip, out_proj."""
    g = lambda name: sd[p + name].double()  # noqa: E731
    length, d_model = u.shape[1], u.shape[2]
    z = (u @ g("in_proj.weight").T + g("in_proj.bias")).transpose(1, 2)
    taps = g("short_filter.weight")[:, 0]
    padded = F.pad(z, (taps.shape[1] - 1, 0))
    z = sum(taps[:, j, None] * padded[..., j:j + length] for j in range(taps.shape[1]))
    z = z + g("short_filter.bias")[:, None]
    *x, v = z.split(d_model, dim=1)
    h = ref_filter(sd, p + "filter_fn.", length, w, shift, modulate).T
    skip = g("filter_fn.bias")
    for o, x_i in enumerate(reversed(x[1:])):
        channels = [o * d_model + d if layout == "od" else d * (order - 1) + o for d in range(d_model)]
        gated = v * x_i
        v = causal_conv(gated, h[channels]) + skip[channels, None] * gated
    y = (v * x[0]).transpose(1, 2)
    return y @ g("out_proj.weight").T + g("out_proj.bias")


def layer_norm(x: torch.Tensor, sd: dict, name: str, eps: float) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], sd[name + ".weight"].double(), sd[name + ".bias"].double(), eps)


def ref_backbone(sd: dict, p: str, ids: torch.Tensor, n_layer: int, block_eps: float = 1e-5,
                 final_eps: float = 1e-5, **operator) -> torch.Tensor:
    """Prenorm stack: ``x += mixer(LN1 x); x += fc2(gelu_tanh(fc1(LN2 x)))``, then ``ln_f``."""
    x = sd[p + "embeddings.word_embeddings.weight"].double()[ids]
    for i in range(n_layer):
        q = f"{p}layers.{i}."
        x = x + ref_operator(sd, q + "mixer.", layer_norm(x, sd, q + "norm1", block_eps), **operator)
        hidden = layer_norm(x, sd, q + "norm2", block_eps) @ sd[q + "mlp.fc1.weight"].double().T
        hidden = F.gelu(hidden + sd[q + "mlp.fc1.bias"].double(), approximate="tanh")
        x = x + hidden @ sd[q + "mlp.fc2.weight"].double().T + sd[q + "mlp.fc2.bias"].double()
    return layer_norm(x, sd, p + "ln_f", final_eps)


def ref_safari_lm(sd: dict, ids: torch.Tensor, prefix: str = "", **operator) -> torch.Tensor:
    """Logits of ConvLMHeadModel: tied head, so ``ln_f(x) @ E^T``."""
    hidden = ref_backbone(sd, prefix + "backbone.", ids, 2, **operator)
    return hidden @ sd[prefix + "backbone.embeddings.word_embeddings.weight"].double().T


def forward(module: torch.nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module(*inputs)


def assert_matches(module: torch.nn.Module, inputs: torch.Tensor, want: torch.Tensor) -> None:
    """Same math as the reference (run in float64), and float32 close to it."""
    wide = inputs.double() if inputs.dtype.is_floating_point else inputs
    assert rel_l2(forward(copy.deepcopy(module).double(), wide), want) <= MATH
    assert rel_l2(forward(module, inputs), want) <= FP32


def assert_differs(module: torch.nn.Module, inputs: torch.Tensor, other: torch.Tensor) -> None:
    """The reference with a different quirk (layout, shift) is far from the module."""
    wide = inputs.double() if inputs.dtype.is_floating_point else inputs
    assert rel_l2(forward(copy.deepcopy(module).double(), wide), other) > 1e-4


def random_ids(vocab: int, length: int, batch: int = 3) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, length))


# ----------------------------------------------------------------------------- export helpers

def graph_ops(model: onnx.ModelProto) -> set[str]:
    return {n.op_type for n in model.graph.node} | {n.op_type for f in model.functions for n in f.node}


def export_and_compare(directory: Path, output: Path, lengths: list[int], **export_args) -> onnx.ModelProto:
    """Export with the Monarch rewrite, then ONNX Runtime vs PyTorch at ``lengths``, batch 3, fresh inputs."""
    export_model(str(directory), output, fftconv="monarch", **export_args)
    model = onnx.load(str(output))
    assert not graph_ops(model) & BANNED_OPS, graph_ops(model)
    loaded = load_directory(directory)
    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng()
    for length in lengths:
        inputs = loaded.make_inputs(3, length, rng)
        want = forward(loaded.module, *inputs).numpy()
        got = session.run(None, {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)})[0]
        assert got.shape == want.shape
        assert rel_l2(got, want) <= PARITY, (length, rel_l2(got, want))
    return model


# ----------------------------------------------------------------------------- tests

def expected_lm_keys(n_layer: int = 2) -> set[str]:
    """ConvLMHeadModel state-dict keys for an order-2 Hyena LM (docs §1.6)."""
    keys = {"backbone.embeddings.word_embeddings.weight", "backbone.ln_f.weight", "backbone.ln_f.bias",
            "lm_head.weight"}
    filter_keys = ["bias", "pos_emb.z", "pos_emb.t", "modulation.deltas",
                   *(f"implicit_filter.{i}.weight" for i in (0, 2, 4, 6)),
                   *(f"implicit_filter.{i}.bias" for i in (0, 2, 4)), *(f"implicit_filter.{i}.freq" for i in (1, 3, 5))]
    for i in range(n_layer):
        p = f"backbone.layers.{i}."
        keys |= {f"{p}mixer.{m}.{w}" for m in ("in_proj", "out_proj", "short_filter") for w in ("weight", "bias")}
        keys |= {f"{p}mixer.filter_fn.{k}" for k in filter_keys}
        keys |= {f"{p}{m}.{w}" for m in ("norm1", "norm2", "mlp.fc1", "mlp.fc2") for w in ("weight", "bias")}
    return keys


def test_matches_only_safari_configs(tmp_path: Path) -> None:
    make.write_checkpoint(tmp_path / "lm")
    (tmp_path / "dna").mkdir()
    (tmp_path / "dna" / "config.json").write_text(json.dumps({**make.lm_config(2, "src"), "vocab_size": 12}))
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(json.dumps({"model_type": "hyenadna"}))
    assert FAMILY.matches(tmp_path / "lm")
    assert not FAMILY.matches(tmp_path / "dna") and not FAMILY.matches(tmp_path / "hf")
    assert not FAMILY.matches(tmp_path / "missing")


@pytest.mark.parametrize("weights", ["safetensors", "bin", "ckpt"])
def test_lm_parity_and_exact_keys(tmp_path: Path, weights: str) -> None:
    path = make.write_checkpoint(tmp_path, weights=weights)
    sd = raw_state(path)
    prefix = "model." if weights == "ckpt" else ""
    stored = {k.removeprefix(prefix) for k in sd}
    if weights == "safetensors":  # shared tensors stored once: one freq per layer, no tied lm_head
        assert stored < expected_lm_keys() and len(expected_lm_keys() - stored) == 2 * 2 + 1
    else:
        assert stored == expected_lm_keys()
    loaded = FAMILY.load(tmp_path)
    assert set(loaded.module.state_dict()) == expected_lm_keys()
    assert loaded.max_seq_len == 512 and loaded.output_names == ["logits"] and not loaded.notes
    z = loaded.module.backbone.layers[0].mixer.filter_fn.pos_emb.z
    assert isinstance(z, torch.nn.Parameter)  # lr_pos_emb != 0: trained, loaded as stored, not recomputed
    assert torch.equal(z, sd[prefix + "backbone.layers.0.mixer.filter_fn.pos_emb.z"])
    for length in (1, 37, 511):
        ids = random_ids(100, length)
        assert_matches(loaded.module, ids, ref_safari_lm(sd, ids, prefix, order=2, layout="vo", shift=0.0, w=14))


@pytest.mark.parametrize("code", ["src", "standalone"])
def test_order3_channel_layout(tmp_path: Path, code: str) -> None:
    path = make.write_checkpoint(tmp_path, order=3, hyena_code=code, weights="bin")
    sd = raw_state(path)
    loaded = FAMILY.load(tmp_path)
    ids = random_ids(100, 129)
    right, wrong = ("vo", "od") if code == "src" else ("od", "vo")
    assert_matches(loaded.module, ids, ref_safari_lm(sd, ids, order=3, layout=right, shift=0.0, w=14))
    assert_differs(loaded.module, ids, ref_safari_lm(sd, ids, order=3, layout=wrong, shift=0.0, w=14))


def test_operator_checkpoint(tmp_path: Path) -> None:
    path = make.write_checkpoint(tmp_path, kind="operator", order=3, hyena_code="standalone")
    sd = raw_state(path)
    loaded = FAMILY.load(tmp_path)
    u = torch.randn(3, 77, 32)
    assert_matches(loaded.module, u, ref_operator(sd, "", u.double(), order=3, layout="od", shift=0.0, w=14))
    config = json.loads((tmp_path / "config.json").read_text())
    del config["hyena_code"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(HyenaDeployError, match="hyena_code"):
        FAMILY.load(tmp_path)


def test_shared_freq_stored_once_anywhere_or_missing(tmp_path: Path) -> None:
    path = make.write_checkpoint(tmp_path, weights="bin")
    full = raw_state(path)
    ids = random_ids(100, 45)
    want = ref_safari_lm(full, ids, order=2, layout="vo", shift=0.0, w=14)
    freq = [k for k in full if k.endswith(".freq")]
    for keep in (".3.freq", ".5.freq"):
        torch.save({k: v for k, v in full.items() if not k.endswith(".freq") or k.endswith(keep)}, path)
        assert_matches(FAMILY.load(tmp_path).module, ids, want)
    without = {k: v for k, v in full.items() if k not in freq}
    torch.save(without, path)
    loaded = FAMILY.load(tmp_path)
    assert any("freq not stored" in note for note in loaded.notes)
    assert_matches(loaded.module, ids, ref_safari_lm(without, ids, order=2, layout="vo", shift=0.0, w=14))
    assert_differs(loaded.module, ids, want)
    torch.save({**full, freq[1]: full[freq[1]] + 1}, path)
    with pytest.raises(HyenaDeployError, match="shared"):
        FAMILY.load(tmp_path)


def test_strict_keys(tmp_path: Path) -> None:
    path = make.write_checkpoint(tmp_path, weights="bin")
    full = raw_state(path)
    torch.save({**full, "backbone.layers.0.mixer.extra": torch.zeros(1)}, path)
    with pytest.raises(HyenaDeployError, match="extra"):
        FAMILY.load(tmp_path)
    torch.save({k: v for k, v in full.items() if k != "backbone.layers.1.mixer.in_proj.bias"}, path)
    with pytest.raises(HyenaDeployError, match="in_proj.bias"):
        FAMILY.load(tmp_path)
    torch.save({**full, "lm_head.weight": full["lm_head.weight"] * 2}, path)
    with pytest.raises(HyenaDeployError, match="ties"):
        FAMILY.load(tmp_path)


def test_legacy_names_remapped(tmp_path: Path) -> None:
    """Old checkpoints: ``embedding.``, ``output_linear``, post-norm LayerNorm order (ConvLMHeadModel remap)."""
    path = make.write_checkpoint(tmp_path, weights="bin")
    new = raw_state(path)
    ids = random_ids(100, 33)
    want = forward(FAMILY.load(tmp_path).module, ids)
    moves = {"backbone.layers.0.norm1": "backbone.norm", "backbone.layers.0.norm2": "backbone.layers.0.norm1",
             "backbone.layers.1.norm1": "backbone.layers.0.norm2", "backbone.layers.1.norm2": "backbone.layers.1.norm1",
             "backbone.ln_f": "backbone.layers.1.norm2"}
    old = {}
    for key, value in new.items():
        stem, _, part = key.rpartition(".")
        key = f"{moves[stem]}.{part}" if stem in moves else key
        key = key.replace("backbone.embeddings.word_embeddings.", "embedding.").replace(".out_proj.", ".output_linear.")
        old[key] = value
    torch.save(old, path)
    assert torch.equal(forward(FAMILY.load(tmp_path).module, ids), want)


def test_malicious_pickle_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    make.write_checkpoint(tmp_path, weights="bin")
    torch.save({"state_dict": {"backbone.ln_f.weight": Evil()}}, tmp_path / "pytorch_model.bin")
    with pytest.raises(HyenaDeployError, match="refused"):
        FAMILY.load(tmp_path)
    assert not marker.exists()


def test_bad_config_values(tmp_path: Path) -> None:
    make.write_checkpoint(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for change in ({"hyena_code": "other"}, {"layer": {**config["layer"], "num_heads": 2}},
                   {"layer": {**config["layer"], "l_max": "long"}}, {"attn_layer_idx": [1]}):
        (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
        with pytest.raises(HyenaDeployError):
            FAMILY.load(tmp_path)


def test_export_monarch_static_and_dynamic(tmp_path: Path) -> None:
    make.write_checkpoint(tmp_path / "lm", order=2)
    export_and_compare(tmp_path / "lm", tmp_path / "static.onnx", [37], seq_len=37)
    make.write_checkpoint(tmp_path / "op3", kind="operator", order=3, hyena_code="src")
    export_and_compare(tmp_path / "op3", tmp_path / "dynamic.onnx", [1, 37, 255, 511], max_seq_len=512)
