"""hyenadna family: -hf and Lightning layouts, heads, exact keys, parity with the published math, tokenizer, export.

The float64 reference math is shared with test_family_safari.py (same operator and prenorm block);
what differs here are the HyenaDNA quirks: shift 0.05, ``(o d)``, block LayerNorm eps fixed at 1e-5
in the HF port, the untied LM head and the classifier's pad-relative pooling.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.registry import families
from tests.test_family_safari import (assert_differs, assert_matches, expected_lm_keys, export_and_compare, forward,
                                load_script, raw_state, ref_backbone)

make = load_script("hyenadna")
make_safari = load_script("safari")
FAMILY = families()["hyenadna"]
HF = {"order": 2, "layout": "od", "shift": 0.05, "w": 10}
PAD = 4


def dna(batch: int, length: int) -> torch.Tensor:
    return torch.randint(7, 12, (batch, length))


def ref_hf(sd: dict, ids: torch.Tensor, head: str, final_eps: float = 1e-5, **quirks) -> torch.Tensor:
    """modeling_hyena.py: backbone (blocks at eps 1e-5, ln_f at layer_norm_epsilon), then the head."""
    prefix = "backbone." if head == "HyenaDNAModel" else "hyena.backbone."
    hidden = ref_backbone(sd, prefix, ids, 2, 1e-5, final_eps, **{**HF, **quirks})
    if head == "HyenaDNAModel":
        return hidden
    if head == "HyenaDNAForCausalLM":
        return hidden @ sd["lm_head.weight"].double().T
    logits = hidden @ sd["score.weight"].double().T
    rows = []
    for row, tokens in zip(logits, ids.tolist()):
        first_pad = tokens.index(PAD) if PAD in tokens else 0  # argmax of an all-False row is 0
        rows.append(row[first_pad - 1])
    return torch.stack(rows)


def lightning_state(path: Path) -> dict[str, torch.Tensor]:
    """weights.ckpt keys without the Lightning prefix and the checkpoint_mixer wrappers."""
    return {k.removeprefix("model.").replace(".mixer.layer.", ".mixer.").replace(".mlp.layer.", ".mlp."): v
            for k, v in raw_state(path).items()}


def edit_config(directory: Path, **changes) -> None:
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, **changes}))


def test_matches_hf_and_lightning_only(tmp_path: Path) -> None:
    make.write_hf(tmp_path / "hf")
    make.write_lightning(tmp_path / "pl")
    make_safari.write_checkpoint(tmp_path / "safari")
    assert FAMILY.matches(tmp_path / "hf") and FAMILY.matches(tmp_path / "pl")
    assert not FAMILY.matches(tmp_path / "safari") and not families()["safari"].matches(tmp_path / "pl")


@pytest.mark.parametrize("head", ["HyenaDNAForCausalLM", "HyenaDNAModel", "HyenaDNAForSequenceClassification"])
@pytest.mark.parametrize("weights", ["safetensors", "bin"])
def test_hf_heads_parity_and_keys(tmp_path: Path, head: str, weights: str) -> None:
    path = make.write_hf(tmp_path, head, weights, freq="all")
    sd = raw_state(path)
    head_key = {"HyenaDNAForCausalLM": {"lm_head.weight"}, "HyenaDNAModel": set(),
                "HyenaDNAForSequenceClassification": {"score.weight"}}[head]
    backbone = {k for k in expected_lm_keys() if k.startswith("backbone.")}
    prefix = "" if head == "HyenaDNAModel" else "hyena."
    assert set(sd) == {prefix + k for k in backbone} | head_key
    loaded = FAMILY.load(tmp_path)
    assert set(loaded.module.state_dict()) == backbone | head_key
    ids = dna(3, 37)
    if head == "HyenaDNAForSequenceClassification":
        ids[1, 20:] = PAD  # right padding: pool position 19
        ids[2, :5] = PAD   # left padding: pool the last token
    assert_matches(loaded.module, ids, ref_hf(sd, ids, head))
    assert_differs(loaded.module, ids, ref_hf(sd, ids, head, shift=0.0))


def test_hf_head_from_keys_and_layer_norm_eps(tmp_path: Path) -> None:
    path = make.write_hf(tmp_path, "HyenaDNAForSequenceClassification")
    config = json.loads((tmp_path / "config.json").read_text())
    del config["architectures"]
    (tmp_path / "config.json").write_text(json.dumps({**config, "layer_norm_epsilon": 1e-2}))
    loaded = FAMILY.load(tmp_path)
    assert loaded.name.startswith("hyenadna:HyenaDNAForSequenceClassification")
    ids = dna(3, 29)
    sd = raw_state(path)
    head = "HyenaDNAForSequenceClassification"
    assert_matches(loaded.module, ids, ref_hf(sd, ids, head, final_eps=1e-2))
    assert_differs(loaded.module, ids, ref_hf(sd, ids, head, final_eps=1e-5))


@pytest.mark.parametrize("freq", ["once:1", "once:3", "once:5", "missing"])
def test_hf_shared_freq(tmp_path: Path, freq: str) -> None:
    path = make.write_hf(tmp_path, freq=freq)
    sd = raw_state(path)
    assert sum(k.endswith(".freq") for k in sd) == (0 if freq == "missing" else 2)
    loaded = FAMILY.load(tmp_path)
    assert any("freq not stored" in n for n in loaded.notes) == (freq == "missing")
    ids = dna(2, 45)
    assert_matches(loaded.module, ids, ref_hf(sd, ids, "HyenaDNAForCausalLM"))


def test_hf_strict_keys_and_values(tmp_path: Path) -> None:
    path = make.write_hf(tmp_path, weights="bin")
    sd = raw_state(path)
    torch.save({k: v for k, v in sd.items() if k != "hyena.backbone.layers.0.mlp.fc2.bias"}, path)
    with pytest.raises(HyenaDeployError, match="fc2.bias"):
        FAMILY.load(tmp_path)
    torch.save({**sd, "hyena.backbone.layers.0.mixer.dropout.p": torch.zeros(1)}, path)
    with pytest.raises(HyenaDeployError, match="dropout"):
        FAMILY.load(tmp_path)
    torch.save(sd, path)
    for change in ({"hyena_order": 3}, {"short_filter_order": 5}, {"architectures": ["HyenaDNAForMaskedLM"]}):
        config = json.loads((tmp_path / "config.json").read_text())
        edit_config(tmp_path, **change)
        with pytest.raises(HyenaDeployError):
            FAMILY.load(tmp_path)
        (tmp_path / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("checkpoint_mixer", [True, False])
def test_lightning_layout(tmp_path: Path, checkpoint_mixer: bool) -> None:
    path = make.write_lightning(tmp_path, checkpoint_mixer=checkpoint_mixer)
    assert any(".mixer.layer." in k for k in raw_state(path)) == checkpoint_mixer
    sd = lightning_state(path)
    assert set(sd) == expected_lm_keys()
    loaded = FAMILY.load(tmp_path)
    assert loaded.output_names == ["hidden_states"]
    assert "pos_emb.z" not in dict(loaded.module.backbone.layers[0].mixer.filter_fn.pos_emb.named_parameters())
    ids = dna(3, 51)
    standalone = ref_backbone(sd, "backbone.", ids, 2, **HF)  # huggingface.py + standalone_hyenadna.py
    assert_matches(loaded.module, ids, standalone)
    edit_config(tmp_path, hyena_code="src")
    assert_matches(FAMILY.load(tmp_path).module, ids, ref_backbone(sd, "backbone.", ids, 2, **{**HF, "shift": 0.0}))
    edit_config(tmp_path, hyena_code="standalone", architectures=["HyenaDNAForCausalLM"])
    logits = standalone @ sd["backbone.embeddings.word_embeddings.weight"].double().T
    assert_matches(FAMILY.load(tmp_path).module, ids, logits)


def test_tokenizer_ids(tmp_path: Path) -> None:
    make.write_hf(tmp_path)
    loaded = FAMILY.load(tmp_path)
    (ids,) = loaded.tokenizer(["ACGTN", "acgtn"])
    assert ids.tolist() == [[0, 7, 8, 9, 10, 11, 1]] * 2 and ids.dtype == torch.long
    (ids,) = loaded.tokenizer(["A", "AXG"])
    assert ids.tolist() == [[4, 4, 0, 7, 1], [0, 7, 6, 9, 1]]
    with pytest.raises(HyenaDeployError, match="at most 514"):
        loaded.tokenizer(["A" * 513])
    assert forward(loaded.module, *loaded.tokenizer(["acgt" * 10])).shape == (1, 42, 16)
    (random,) = loaded.make_inputs(3, 17, np.random.default_rng())
    assert random.shape == (3, 17) and random.dtype == torch.int64
    assert random.min() >= 7 and random.max() <= 11


def test_malicious_pickle_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    make.write_lightning(tmp_path)
    torch.save({"state_dict": {"model.backbone.ln_f.weight": Evil()}}, tmp_path / "weights.ckpt")
    with pytest.raises(HyenaDeployError, match="refused"):
        FAMILY.load(tmp_path)
    assert not marker.exists()


def test_export_monarch(tmp_path: Path) -> None:
    make.write_hf(tmp_path / "lm")
    export_and_compare(tmp_path / "lm", tmp_path / "static.onnx", [41], seq_len=41)
    export_and_compare(tmp_path / "lm", tmp_path / "dynamic.onnx", [1, 37, 257, 513], max_seq_len=514)
    make.write_hf(tmp_path / "cls", "HyenaDNAForSequenceClassification")
    export_and_compare(tmp_path / "cls", tmp_path / "cls.onnx", [63], seq_len=63)
    with pytest.raises(HyenaDeployError, match="seq-len"):
        export_and_compare(tmp_path / "cls", tmp_path / "cls-dynamic.onnx", [63], max_seq_len=514)
