"""Write a tiny random-init Evo 2 checkpoint directory in vortex's published layout.

    python samples/evo2/make_checkpoint.py OUT_DIR [--config yml|json] [--seed S]

Writes ``config.yml`` (an ``evo2/configs/evo2-*.yml`` look-alike; ``--config json``: the same keys
as ``config.json``) and ``evo2_tiny.pt``, a ``torch.save`` state dict with vortex's key names:
attention ``Wqkv`` rows stored per head (``column_split``) and a Transformer Engine style
``projections._extra_state`` (``io.BytesIO``) in every Hyena block. Width 32, 4 blocks: HCS (7
taps, 8 groups), HCM (128 taps, 8 groups), HCL (16 real modes per channel), attention; byte
vocabulary, interleaved projections, GELU only in block 0, tied embeddings, interpolated rotary.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import torch

from hyena_deploy.models.evo2 import Evo2, Evo2Config

CONFIG = {
    "model_name": "evo2-tiny", "vocab_size": 512, "hidden_size": 32, "num_filters": 32,
    "hcs_layer_idxs": [0], "hcm_layer_idxs": [1], "hcl_layer_idxs": [2], "attn_layer_idxs": [3],
    "hcm_filter_length": 128, "hcl_filter_groups": 32, "hcm_filter_groups": 8, "hcs_filter_groups": 8,
    "hcs_filter_length": 7, "num_layers": 4, "short_filter_length": 3, "num_attention_heads": 4,
    "short_filter_bias": False, "eps": 1e-6, "state_size": 16, "rotary_emb_base": 10000,
    "rotary_emb_scaling_factor": 4, "use_interpolated_rotary_pos_emb": True, "make_vocab_size_divisible_by": 8,
    "inner_size_multiple_of": 16, "inner_mlp_size": 64, "proj_groups": 1, "hyena_filter_groups": 1,
    "column_split_hyena": False, "column_split": True, "interleave": True, "evo2_style_activations": True,
    "model_parallel_size": 1, "pipe_parallel_size": 1, "tie_embeddings": True, "mha_out_proj_bias": True,
    "hyena_out_proj_bias": True, "hyena_flip_x1x2": False, "qkv_proj_bias": False,
    "use_fp8_input_projections": False, "max_seqlen": 512, "max_batch_size": 1, "final_norm": True,
    "use_flash_attn": True, "use_flash_rmsnorm": False, "use_flash_depthwise": False, "use_flashfft": False,
    "inference_mode": True, "tokenizer_type": "CharLevelTokenizer", "prefill_style": "fft",
    "mlp_activation": "gelu",
}


def randomize(model: Evo2, seed: int) -> Evo2:
    """Moderate random weights: decaying explicit filters, real modes with poles in [e^-0.5, e^-0.02]."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if name.endswith("log_poles"):
                param.copy_(-(0.02 + 0.48 * torch.rand(param.shape, generator=generator)))
            elif name.endswith("residues") or name.endswith(".D"):
                param.copy_(0.1 * noise)
            elif name.endswith(".h"):
                param.copy_(0.3 * noise * torch.exp(-torch.arange(param.shape[-1]) / 24.0))
            elif name.endswith("short_filter_weight"):
                param.copy_(0.5 * noise)
            elif name.endswith("scale"):
                param.copy_(1 + 0.1 * noise)
            else:
                param.add_(0.05 * noise)
    return model


def vortex_state(model: Evo2, cfg: Evo2Config) -> dict:
    """``model.state_dict()`` as vortex stores it: per-head ``Wqkv`` rows, TE extra state on projections."""
    state: dict = dict(model.state_dict())
    heads = cfg.num_attention_heads
    for index, kind in enumerate(cfg.layer_kinds):
        if kind == "attn":
            key = f"blocks.{index}.inner_mha_cls.Wqkv.weight"
            state[key] = state[key].reshape(3, heads, -1, cfg.hidden_size).transpose(0, 1).reshape(state[key].shape)
        else:
            state[f"blocks.{index}.projections._extra_state"] = io.BytesIO(b"fp8 metadata")
    return state


def write_checkpoint(directory: Path, config_format: str = "yml", seed: int = 0) -> list[Path]:
    """Write the config and ``evo2_tiny.pt`` into ``directory``; returns the files written."""
    cfg = Evo2Config.from_vortex(CONFIG)
    torch.manual_seed(seed)
    model = randomize(Evo2(cfg), seed)
    directory.mkdir(parents=True, exist_ok=True)
    if config_format == "yml":
        import yaml

        config_path = directory / "config.yml"
        config_path.write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    else:
        config_path = directory / "config.json"
        config_path.write_text(json.dumps(CONFIG, indent=2) + "\n")
    torch.save(vortex_state(model, cfg), directory / "evo2_tiny.pt")
    return [config_path, directory / "evo2_tiny.pt"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--config", choices=("yml", "json"), default="yml")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for path in write_checkpoint(args.directory, args.config, args.seed):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
