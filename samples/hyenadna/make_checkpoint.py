"""Write a tiny random-init HyenaDNA checkpoint directory in a published layout.

    python samples/hyenadna/make_checkpoint.py OUT_DIR [--layout hf|lightning]
        [--head HyenaDNAForCausalLM|HyenaDNAModel|HyenaDNAForSequenceClassification]
        [--weights safetensors|bin] [--freq all|once:1|once:3|once:5|missing] [--seed S]

``hf``: a ``LongSafari/hyenadna-*-hf`` directory (``config.json`` with ``model_type: hyenadna``).
``lightning``: a ``LongSafari/hyenadna-*-seqlen`` directory (Hydra ``config.json`` and
``weights.ckpt`` with ``model.`` keys and the ``checkpoint_mixer`` ``.layer`` wrappers).
"""

from __future__ import annotations

import argparse
import json
import sys
import re
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for samples/_common.py
from _common import perturb  # noqa: E402
from hyena_deploy.exporters.hyenadna import HF_SHIFT, hf_operator
from hyena_deploy.exporters.safari_layout import build_backbone, build_operator
from hyena_deploy.models.backbone import CausalLM, EmbeddingModel, SequenceClassifier

HEADS = ("HyenaDNAForCausalLM", "HyenaDNAModel", "HyenaDNAForSequenceClassification")


def hf_config(head: str, d_model: int = 32, n_layer: int = 2, max_seq_len: int = 514) -> dict:
    """An ``-hf`` ``config.json`` (field names of ``configuration_hyena.py``)."""
    return {"architectures": [head], "model_type": "hyenadna", "d_model": d_model, "n_layer": n_layer,
            "d_inner": 4 * d_model, "vocab_size": 12, "pad_vocab_size_multiple": 8, "max_seq_len": max_seq_len,
            "emb_dim": 5, "filter_order": 16, "activation_freq": 10, "hyena_order": 2, "short_filter_order": 3,
            "num_inner_mlps": 2, "use_bias": True, "train_freq": True, "layer_norm_epsilon": 1e-5,
            "embed_dropout": 0.1, "hyena_dropout": 0.0, "hyena_filter_dropout": 0.0, "initializer_range": 0.02,
            "pad_token_id": 4, "tie_word_embeddings": False, "torch_dtype": "float32"}


def lightning_config(d_model: int = 32, n_layer: int = 2, l_max: int = 514, checkpoint_mixer: bool = True) -> dict:
    """The Hydra ``model`` dict of the original repos (``hg38_hyena.yaml``)."""
    return {"d_model": d_model, "n_layer": n_layer, "d_inner": 4 * d_model, "vocab_size": 12, "resid_dropout": 0.0,
            "embed_dropout": 0.1, "fused_mlp": False, "fused_dropout_add_ln": False,
            "checkpoint_mixer": checkpoint_mixer, "checkpoint_mlp": checkpoint_mixer, "residual_in_fp32": True, "pad_vocab_size_multiple": 8,
            "layer": {"_name_": "hyena", "emb_dim": 5, "filter_order": 16, "local_order": 3, "l_max": l_max,
                      "modulate": True, "w": 10, "lr": 6e-4, "wd": 0.0, "lr_pos_emb": 0.0}}


def hf_model(config: dict) -> nn.Module:
    """The module whose state dict is the ``-hf`` checkpoint (keys without the ``hyena.`` prefix)."""
    mixers = [hf_operator(config) for _ in range(config["n_layer"])]
    backbone = build_backbone(config, mixers, 1e-5, config["layer_norm_epsilon"])
    head = config["architectures"][0]
    if head == "HyenaDNAForCausalLM":
        return CausalLM(backbone, tie_embeddings=False)
    if head == "HyenaDNAForSequenceClassification":
        return SequenceClassifier(backbone, 3, config["pad_token_id"])
    return EmbeddingModel(backbone)


def hf_state(model: nn.Module, head: str, freq: str) -> dict[str, torch.Tensor]:
    """Published ``-hf`` key names; the shared Sin ``freq`` kept under all names, one, or none."""
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("backbone.") and head != "HyenaDNAModel":
            key = "hyena." + key
        match = re.search(r"implicit_filter\.(\d+)\.freq$", key)
        if match and (freq == "missing" or (freq.startswith("once:") and match.group(1) != freq[5:])):
            continue
        state[key] = value.detach().clone().contiguous()
    return state


def write_hf(directory: Path, head: str = "HyenaDNAForCausalLM", weights: str = "safetensors",
             freq: str = "once:1", seed: int = 0) -> Path:
    """An ``-hf`` directory; returns the weights path."""
    torch.manual_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    config = hf_config(head)
    state = hf_state(perturb(hf_model(config), seed), head, freq)
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    path = directory / ("model.safetensors" if weights == "safetensors" else "pytorch_model.bin")
    if weights == "safetensors":
        save_file(state, str(path), metadata={"format": "pt"})
    else:
        torch.save(state, path)
    return path


def write_lightning(directory: Path, checkpoint_mixer: bool = True, seed: int = 0) -> Path:
    """An original-repo directory: Hydra ``config.json`` + Lightning ``weights.ckpt``; returns its path."""
    torch.manual_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    config = lightning_config(checkpoint_mixer=checkpoint_mixer)
    mixers = [build_operator(config["layer"], config["d_model"], "standalone", HF_SHIFT)
              for _ in range(config["n_layer"])]
    model = perturb(CausalLM(build_backbone(config, mixers, 1e-5, 1e-5), tie_embeddings=True), seed)
    state = {}
    for key, value in model.state_dict().items():
        if checkpoint_mixer:
            key = re.sub(r"\.(mixer|mlp)\.", r".\1.layer.", key)
        state[f"model.{key}"] = value
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    path = directory / "weights.ckpt"
    torch.save({"state_dict": state, "epoch": 0, "global_step": 0, "pytorch-lightning_version": "1.8.6"}, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--layout", choices=("hf", "lightning"), default="hf")
    parser.add_argument("--head", choices=HEADS, default="HyenaDNAForCausalLM")
    parser.add_argument("--weights", choices=("safetensors", "bin"), default="safetensors")
    parser.add_argument("--freq", choices=("all", "once:1", "once:3", "once:5", "missing"), default="once:1")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.layout == "hf":
        path = write_hf(args.directory, args.head, args.weights, args.freq, args.seed)
    else:
        path = write_lightning(args.directory, seed=args.seed)
    print(f"wrote {args.directory / 'config.json'} and {path}")


if __name__ == "__main__":
    main()
