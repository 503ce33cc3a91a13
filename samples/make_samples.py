"""Write the bundled sample checkpoints (random init, fixed seed): ``python samples/make_samples.py``."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file, save_model

from hyena_deploy.models.lm import HyenaLM, HyenaLMConfig

SAMPLES = {
    # A small DNA-sized LM: 2 blocks, width 64, filters up to 2048 positions.
    "hyena-tiny": HyenaLMConfig(vocab_size=16, d_model=64, n_layer=2, d_inner=256, l_max=2048, order=2),
    # Order 3 (two long convolutions per block) to exercise the (o d) channel layout.
    "hyena-tiny-order3": HyenaLMConfig(vocab_size=16, d_model=32, n_layer=1, d_inner=128, l_max=1024, order=3),
}


def write_sample(directory: Path, config: HyenaLMConfig, seed: int = 0) -> None:
    """Random-init ``config`` with ``seed`` and write config.json + model.safetensors into ``directory``."""
    torch.manual_seed(seed)
    model = HyenaLM(config)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    save_model(model, str(directory / "model.safetensors"))  # the shared Sin frequency is stored once


def write_hyenadna_64k(directory: Path, seed: int = 0) -> None:
    """A HyenaDNA ``-hf`` checkpoint (width 32, 2 layers) with a 64k context: ``samples/hyenadna`` weights,
    except that the positional table ``z`` keeps its computed value (HyenaDNA trains it with
    ``lr_pos_emb: 0``, so a released checkpoint holds it unchanged) instead of carrying random noise."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent / "hyenadna"))
    from make_checkpoint import hf_config, hf_model, hf_state, perturb

    torch.manual_seed(seed)
    config = hf_config("HyenaDNAForCausalLM", max_seq_len=65536)
    model = hf_model(config)
    tables = {name: p.detach().clone() for name, p in model.named_parameters() if name.endswith("pos_emb.z")}
    perturb(model, seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in tables:
                p.copy_(tables[name])
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file(hf_state(model, "HyenaDNAForCausalLM", "once:1"), str(directory / "model.safetensors"),
              metadata={"format": "pt"})


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    for name, config in SAMPLES.items():
        write_sample(here / name, config)
        print(f"wrote {here / name}")
    write_hyenadna_64k(here / "hyenadna-64k")
    print(f"wrote {here / 'hyenadna-64k'}")
