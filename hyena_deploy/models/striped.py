"""Shared by the StripedHyena and Evo 2 adapters: config and weight files, byte tokens, rotary attention.

``RotaryMHA`` restates flash_attn's ``MHA`` in eval mode (``causal=True``, no KV cache):
``Wqkv`` rows are ``[q (H·d); k (H_kv·d); v (H_kv·d)]``, query head ``i`` reads key/value head
``i // (H / H_kv)``, GPT-NeoX rotary (halves, not interleaved) on q and k with positions
``t / scaling`` in fp32, softmax scale ``d^-1/2``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hyena_deploy.checkpoints import WEIGHT_FILES
from hyena_deploy.errors import HyenaDeployError, first_line

YAML_SUFFIXES = (".yml", ".yaml")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def read_config_file(path: Path) -> dict:
    """A JSON config, or a YAML one read with ``yaml.safe_load``, as a dict."""
    try:
        text = path.read_text()
        if path.suffix in YAML_SUFFIXES:
            try:
                import yaml
            except ImportError:
                raise HyenaDeployError(f"{path}: reading YAML configs needs PyYAML (pip install pyyaml)") from None
            config = yaml.safe_load(text)
        else:
            config = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # yaml.YAMLError and JSONDecodeError are ValueErrors
        raise HyenaDeployError(f"{path}: not a readable config ({first_line(exc)})") from None
    if not isinstance(config, dict):
        raise HyenaDeployError(f"{path}: expected a mapping of settings")
    return config


def find_config(directory: Path, accept: Callable[[dict], bool]) -> tuple[Path, dict] | None:
    """The config that ``accept`` recognises: ``config.json``, else the only such ``*.yml``/``*.yaml``."""
    found = []
    for path in [directory / "config.json", *sorted(p for p in directory.iterdir() if p.suffix in YAML_SUFFIXES)]:
        try:
            config = read_config_file(path) if path.is_file() else None
        except HyenaDeployError:
            continue
        if config is not None and accept(config):
            if path.suffix == ".json":
                return path, config
            found.append((path, config))
    if len(found) > 1:
        raise HyenaDeployError(f"{directory}: several model configs ({', '.join(p.name for p, _ in found)}); keep one")
    return found[0] if found else None


def weight_files(directory: Path) -> list[Path]:
    """Shards named by a Hugging Face index, else a standard weights file, else the directory's one weights file."""
    for index in SHARD_INDEXES:
        if (directory / index).is_file():
            weight_map = json.loads((directory / index).read_text()).get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise HyenaDeployError(f"{directory / index}: no weight_map")
            return [directory / name for name in sorted(set(weight_map.values()))]
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return [directory / name]
    found = sorted(p for p in directory.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
    if len(found) != 1:
        what = ", ".join(p.name for p in found) if found else "none"
        raise HyenaDeployError(f"{directory}: expected one weights file ({', '.join(WEIGHT_SUFFIXES)}), found {what}")
    return found


def byte_tokenize(texts: list[str], pad_id: int = 1) -> tuple[torch.Tensor]:
    """UTF-8 bytes as token ids (vortex ``CharLevelTokenizer``), right-padded with ``pad_id`` to the longest."""
    encoded = [list(text.encode("utf-8")) for text in texts]
    length = max((len(e) for e in encoded), default=0)
    return (torch.tensor([e + [pad_id] * (length - len(e)) for e in encoded], dtype=torch.long),)


class RotaryEmbedding(nn.Module):
    """GPT-NeoX rotary embedding; ``inv_freq`` is a persistent buffer, as the checkpoints store it."""

    def __init__(self, dim: int, base: float, scaling: float = 1.0) -> None:
        super().__init__()
        self.scaling = scaling
        self.register_buffer("inv_freq", inv_freq(dim, base))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate ``x`` (B, L, heads, head_dim) by position."""
        positions = torch.arange(x.shape[1], device=x.device, dtype=torch.float32) / self.scaling
        freqs = torch.outer(positions, self.inv_freq.float())[:, None]
        cos, sin = freqs.cos().to(x.dtype), freqs.sin().to(x.dtype)
        first, second = x.chunk(2, dim=-1)
        return torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1)


def inv_freq(dim: int, base: float) -> torch.Tensor:
    """``base^(-2i/dim)`` in fp32, as flash_attn computes it."""
    return 1.0 / (float(base) ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))


class RotaryMHA(nn.Module):
    """Causal multi-head (or grouped-query) self-attention with rotary positions."""

    def __init__(self, dim: int, heads: int, kv_heads: int, qkv_bias: bool, out_bias: bool,
                 rotary_base: float, rotary_scaling: float = 1.0) -> None:
        super().__init__()
        if dim % heads or heads % kv_heads:
            raise HyenaDeployError(f"attention: width {dim}, {heads} heads, {kv_heads} key/value heads do not divide")
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, dim // heads
        self.Wqkv = nn.Linear(dim, (heads + 2 * kv_heads) * self.head_dim, bias=qkv_bias)
        self.out_proj = nn.Linear(dim, dim, bias=out_bias)
        self.rotary_emb = RotaryEmbedding(self.head_dim, rotary_base, rotary_scaling)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        d = self.head_dim
        q, k, v = self.Wqkv(x).split([self.heads * d, self.kv_heads * d, self.kv_heads * d], dim=-1)
        q = self.rotary_emb(q.reshape(batch, length, self.heads, d))
        k = self.rotary_emb(k.reshape(batch, length, self.kv_heads, d))
        v = v.reshape(batch, length, self.kv_heads, d)
        group = self.heads // self.kv_heads
        k, v = k.repeat_interleave(group, dim=2), v.repeat_interleave(group, dim=2)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, self.heads * d))
