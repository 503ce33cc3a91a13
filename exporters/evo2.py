"""Evo 2 checkpoints (vortex layout) in hyena-deploy's own modules (:mod:`hyena_deploy.models.evo2`).

Directory layout:

- config: a vortex config, i.e. ``evo2/configs/evo2-*.yml`` copied in (any ``*.yml``/``*.yaml``
  name, read with ``yaml.safe_load``), or the same keys as ``config.json``; recognised by
  ``hcl_layer_idxs``/``hcm_layer_idxs``/``hcs_layer_idxs``;
- weights: one vortex state dict, e.g. ``evo2_7b.pt`` as published on the Hugging Face Hub (a
  ``torch.save`` pickle, read with ``weights_only=True`` allowing only ``io.BytesIO``), or
  ``model.safetensors``. Split downloads (``*.pt.part0``, ...) must be concatenated first.
  Transformer Engine ``*._extra_state`` entries (FP8 metadata) are dropped; every other key must
  map onto the model. With ``column_split`` (vortex's default) the attention ``Wqkv`` rows are
  stored per head as ``(head, q|k|v, head_dim)`` and reordered to ``(q|k|v, head, head_dim)`` as
  ``StripedHyena.custom_load_state_dict`` does. The stored ``rotary_emb.inv_freq`` is used (vortex
  loads it into fp32 buffers).
- tokenizer: UTF-8 bytes (``CharLevelTokenizer(512)``), right-padded with the pad id 1.
"""

from __future__ import annotations

from pathlib import Path

import torch

from hyena_deploy.checkpoints import find_config, load_into, load_state_dict, sha256_files, weight_files
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.loaded import LoadedModel
from hyena_deploy.models.evo2 import Evo2, Evo2Config
from hyena_deploy.models.striped import byte_tokenize
from hyena_deploy.registry import register

_EXAMPLE_LENGTH = 64


def is_evo2_config(config: dict) -> bool:
    """A vortex StripedHyena 2 config: it names HCS/HCM/HCL layers."""
    return any(f"{kind}_layer_idxs" in config for kind in ("hcl", "hcm", "hcs"))


def unsplit_wqkv(state: dict[str, torch.Tensor], cfg: Evo2Config) -> dict[str, torch.Tensor]:
    """Reorder every attention ``Wqkv`` from per-head ``(h, qkv, d)`` rows to ``(qkv, h, d)``."""
    if cfg.proj_groups != 1:
        raise HyenaDeployError("Evo 2 config: column_split with proj_groups != 1 is not defined by vortex")
    heads = cfg.num_attention_heads
    state = dict(state)
    for index, kind in enumerate(cfg.layer_kinds):
        if kind != "attn":
            continue
        for name in ("weight", "bias"):
            key = f"blocks.{index}.inner_mha_cls.Wqkv.{name}"
            if key in state:
                value = state[key]
                state[key] = value.reshape(heads, 3, -1, *value.shape[1:]).transpose(0, 1).reshape(value.shape)
    return state


def notes_for(config: dict) -> list[str]:
    """Where the fp32 export differs from how the published models were validated."""
    notes = ["fp32 throughout; vortex runs Evo 2 in bf16 with fp32 filters"]
    if config.get("use_flash_rmsnorm"):
        notes.append("config asks for flash_attn's fused RMSNorm (eps inside the sqrt); vortex's own RMSNorm "
                     "(eps added to the RMS) is used")
    if config.get("use_fp8_input_projections"):
        notes.append("config uses FP8 (Transformer Engine) input projections; exported in fp32: Evo 2 40B/20B/1B "
                     "were validated only with FP8, expect a wider gap to the reference")
    return notes


class Evo2Family:
    """Evo 2 1B/7B/20B/40B in vortex's layout."""

    name = "evo2"

    def matches(self, directory: Path) -> bool:
        try:
            return find_config(directory, is_evo2_config) is not None
        except HyenaDeployError:
            return False

    def load(self, directory: Path) -> LoadedModel:
        found = find_config(directory, is_evo2_config)
        if found is None:
            raise HyenaDeployError(f"{directory}: no Evo 2 (vortex) config")
        config_path, config = found
        parts = sorted(directory.glob("*.pt.part*"))
        if parts and not any(directory.glob("*.pt")):
            whole = parts[0].name.split(".part")[0]
            raise HyenaDeployError(f"{directory}: split checkpoint; join {whole}.part0, .part1, ... in that order "
                                   f"into {whole} first")
        files = weight_files(directory)
        cfg = Evo2Config.from_vortex(config)
        model = Evo2(cfg).eval()
        state: dict[str, torch.Tensor] = {}
        for path in files:
            state.update(load_state_dict(path, drop_extra_state=True))
        if config.get("column_split", True):
            state = unsplit_wqkv(state, cfg)
        load_into(model, state, files[0] if len(files) == 1 else directory)
        max_len = config.get("max_seqlen")
        return LoadedModel(
            module=model, example_inputs=(torch.zeros(1, min(max_len or _EXAMPLE_LENGTH, _EXAMPLE_LENGTH),
                                                      dtype=torch.long),),
            name=directory.name, source_sha256=sha256_files(config_path, *files), max_seq_len=max_len,
            vocab_size=cfg.vocab_size, output_names=["logits"], tokenizer=byte_tokenize, notes=notes_for(config))


register(Evo2Family())
