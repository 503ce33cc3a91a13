"""Write a tiny random-init StripedHyena checkpoint directory in a published layout (needs ``stripedhyena``).

    python samples/stripedhyena/make_checkpoint.py OUT_DIR [--layout hf|yml] [--hyena-only] [--seed S]

``hf``: Evo 1-like Hugging Face port: ``config.json`` (``model_type: stripedhyena``, byte vocabulary,
tied embeddings, GELU MLPs) + two ``pytorch_model-*.bin`` shards under ``backbone.`` with
``pytorch_model.bin.index.json``. ``yml``: original repo: ``config.yml`` (StripedHyena-7B-like:
untied, SiLU) + ``sh-tiny.pt``. Width 32, 4 layers: Hyena 0, 1, 3 and GQA attention 2 with
interpolated rotary (``--hyena-only``: 3 Hyena layers). Every parameter is moved off its initial
value; poles get magnitudes in [0.5, 0.95] so the long filters span tens of steps.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn

from hyena_deploy.exporters.stripedhyena import build_model

COMMON = {
    "hidden_size": 32, "num_filters": 32, "num_attention_heads": 4, "proj_groups": 2, "short_filter_length": 3,
    "short_filter_bias": True, "state_size": 2, "hyena_filter_groups": 1, "column_split_hyena": True,
    "column_split": False, "inner_mlp_size": 64, "eps": 1e-5, "rotary_emb_base": 10000,
    "use_interpolated_rotary_pos_emb": True, "rotary_emb_scaling_factor": 4, "qkv_proj_bias": True,
    "mha_out_proj_bias": True, "model_parallel_size": 1, "pipe_parallel_size": 1, "final_norm": True,
    "max_seqlen": 512, "max_batch_size": 1, "use_flash_attn": True, "use_flash_rmsnorm": False,
    "use_flash_depthwise": False, "use_flashfft": False, "inference_mode": False, "prefill_style": "fft",
}
LAYOUTS = {
    "hf": {"model_type": "stripedhyena", "architectures": ["StripedHyenaModelForCausalLM"], "vocab_size": 512,
           "tie_embeddings": True, "mlp_activation": "gelu", "tokenizer_type": "CharLevelTokenizer"},
    "yml": {"model_name": "sh-tiny", "vocab_size": 256, "tie_embeddings": False},
}


def tiny_config(layout: str, hyena_only: bool) -> dict:
    """The config written for ``layout``."""
    layers = {"num_layers": 3, "hyena_layer_idxs": [0, 1, 2], "attn_layer_idxs": []} if hyena_only else \
        {"num_layers": 4, "hyena_layer_idxs": [0, 1, 3], "attn_layer_idxs": [2]}
    return {**COMMON, **layers, **LAYOUTS[layout]}


def randomize(model: nn.Module, seed: int) -> nn.Module:
    """Perturb every parameter; stable complex poles ``r e^{jθ}`` and residues of scale 0.1."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if name.endswith("poles"):
                radius = 0.5 + 0.45 * torch.rand(param.shape[:-1], generator=generator)
                angle = 0.5 * noise[..., 0]
                param.copy_(torch.stack([radius * angle.cos(), radius * angle.sin()], dim=-1))
            elif name.endswith("residues"):
                param.copy_(0.1 * noise)
            else:
                param.add_(0.05 * noise)
    return model


def write_checkpoint(directory: Path, layout: str = "hf", hyena_only: bool = False, seed: int = 0) -> list[Path]:
    """Write config and weights into ``directory``; returns the files written."""
    config = tiny_config(layout, hyena_only)
    torch.manual_seed(seed)
    state = randomize(build_model(config), seed).state_dict()
    directory.mkdir(parents=True, exist_ok=True)
    if layout == "yml":
        import yaml

        (directory / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        torch.save(state, directory / "sh-tiny.pt")
        return [directory / "config.yml", directory / "sh-tiny.pt"]
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    keys = list(state)
    shards = {f"pytorch_model-0000{i + 1}-of-00002.bin": keys[i * len(keys) // 2:(i + 1) * len(keys) // 2]
              for i in range(2)}
    for name, names in shards.items():
        torch.save({f"backbone.{k}": state[k] for k in names}, directory / name)
    index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())},
             "weight_map": {f"backbone.{k}": name for name, names in shards.items() for k in names}}
    (directory / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return [directory / "config.json", *(directory / n for n in shards), directory / "pytorch_model.bin.index.json"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--layout", choices=tuple(LAYOUTS), default="hf")
    parser.add_argument("--hyena-only", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for path in write_checkpoint(args.directory, args.layout, args.hyena_only, args.seed):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
