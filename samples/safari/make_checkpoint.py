"""Write a tiny random-init safari checkpoint directory in the published layout.

    python samples/safari/make_checkpoint.py OUT_DIR [--kind lm|operator] [--order N]
        [--hyena-code src|standalone] [--weights safetensors|bin|ckpt] [--seed S]

``lm``: ``ConvLMHeadModel`` keys (``backbone.*``, tied ``lm_head.weight``); ``operator``: one
``HyenaOperator``. Parameters are perturbed away from their initial values (LayerNorms, Sin
frequency, trained ``z``) so that loaders that ignore a tensor are caught.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_model
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for samples/_common.py
from _common import perturb  # noqa: E402
from hyena_deploy.exporters.safari_layout import build_backbone, build_operator
from hyena_deploy.models.backbone import CausalLM

WEIGHT_NAMES = {"safetensors": "model.safetensors", "bin": "pytorch_model.bin", "ckpt": "last.ckpt"}


def layer_config(order: int, l_max: int = 512) -> dict:
    """A Hydra ``layer`` dict for a tiny Hyena operator (Pile-like: w 14, trained z)."""
    return {"_name_": "hyena", "l_max": l_max, "order": order, "filter_order": 16, "emb_dim": 5, "w": 14,
            "modulate": True, "lr_pos_emb": 1e-5, "short_filter_order": 3, "num_heads": 1, "inner_factor": 1,
            "num_blocks": 1, "outer_mixing": False, "post_order_ffn": False, "activation": "id"}


def lm_config(order: int, hyena_code: str, d_model: int = 32, n_layer: int = 2) -> dict:
    """A safari LM ``config.json``: the Hydra model dict plus ``hyena_code``."""
    return {"hyena_code": hyena_code, "_name_": "lm", "d_model": d_model, "n_layer": n_layer, "d_inner": 2 * d_model,
            "vocab_size": 100, "pad_vocab_size_multiple": 8, "layer_norm_epsilon": 1e-5, "resid_dropout": 0.0,
            "embed_dropout": 0.1, "fused_mlp": False, "fused_dropout_add_ln": False, "residual_in_fp32": True,
            "layer": layer_config(order)}


def operator_config(order: int, hyena_code: str, d_model: int = 32) -> dict:
    """A bare operator ``config.json``: the Hydra layer dict with ``d_model``, plus ``hyena_code``."""
    return {"hyena_code": hyena_code, "d_model": d_model, **layer_config(order)}


def save(model: nn.Module, directory: Path, weights: str) -> Path:
    """safetensors stores each shared tensor once; ``bin``/``ckpt`` keep every name, like ``torch.save``."""
    path = directory / WEIGHT_NAMES[weights]
    if weights == "safetensors":
        save_model(model, str(path))
    elif weights == "bin":
        torch.save(model.state_dict(), path)
    else:
        torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "epoch": 0}, path)
    return path


def write_checkpoint(directory: Path, kind: str = "lm", order: int = 2, hyena_code: str = "src",
                     weights: str = "safetensors", seed: int = 0) -> Path:
    """Write ``config.json`` and the weights into ``directory``; returns the weights path."""
    torch.manual_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    config = lm_config(order, hyena_code) if kind == "lm" else operator_config(order, hyena_code)
    if kind == "lm":
        mixers = [build_operator(config["layer"], config["d_model"], hyena_code, 0.0) for _ in range(config["n_layer"])]
        model: nn.Module = CausalLM(build_backbone(config, mixers, 1e-5, 1e-5), tie_embeddings=True)
    else:
        model = build_operator(config, config["d_model"], hyena_code, 0.0)
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return save(perturb(model, seed), directory, weights)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--kind", choices=("lm", "operator"), default="lm")
    parser.add_argument("--order", type=int, default=2)
    parser.add_argument("--hyena-code", choices=("src", "standalone"), default="src")
    parser.add_argument("--weights", choices=tuple(WEIGHT_NAMES), default="safetensors")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    path = write_checkpoint(args.directory, args.kind, args.order, args.hyena_code, args.weights, args.seed)
    print(f"wrote {args.directory / 'config.json'} and {path}")


if __name__ == "__main__":
    main()
