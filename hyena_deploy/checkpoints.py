"""Load weights without running code: safetensors, or torch.load(weights_only=True)."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import zipfile
from pathlib import Path

import torch

from hyena_deploy.errors import HyenaDeployError, first_line

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "weights.ckpt", "model.pt")


EXTRA_STATE = "_extra_state"  # Transformer Engine metadata entries (io.BytesIO), never weights


def load_state_dict(path: Path, *, drop_extra_state: bool = False) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file or a weights-only torch pickle (Lightning ``state_dict`` unwrapped).

    With ``drop_extra_state`` the unpickler also accepts ``io.BytesIO`` (Transformer Engine's
    ``*._extra_state`` entries) and those entries are dropped; nothing else that could run code is allowed.
    """
    if not path.is_file():
        raise HyenaDeployError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            obj = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise HyenaDeployError(f"{path}: not a readable safetensors file ({first_line(exc)})") from None
    else:
        allowed = [io.BytesIO] if drop_extra_state else []
        try:
            with torch.serialization.safe_globals(allowed):
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
        except pickle.UnpicklingError as exc:
            raise HyenaDeployError(f"{path}: refused, loading it would run code or it is not a weights file "
                                   f"({first_line(exc)})") from None
        except (RuntimeError, EOFError, OSError, ValueError) as exc:
            raise HyenaDeployError(f"{path}: not a readable torch checkpoint ({first_line(exc)})") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if isinstance(obj, dict) and drop_extra_state:
        obj = {k: v for k, v in obj.items() if not k.endswith(EXTRA_STATE)}
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise HyenaDeployError(f"{path}: does not hold a state dict of tensors")
    return obj


def load_into(model: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Strictly load ``state`` into ``model``; a tensor shared under several names may be stored once."""
    aliases: dict[int, list[str]] = {}
    for key, tensor in model.state_dict(keep_vars=True).items():
        aliases.setdefault(id(tensor), []).append(key)
    state = dict(state)
    for names in aliases.values():
        present = [n for n in names if n in state]
        for name in names:
            if present and name not in state:
                state[name] = state[present[0]]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise HyenaDeployError(f"{source}: weights do not match the model ({detail[:300]})") from None


def find_weights(directory: Path) -> Path:
    """The weights file of a checkpoint directory."""
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return directory / name
    raise HyenaDeployError(f"{directory}: no weights file (looked for {', '.join(WEIGHT_FILES)})")


def read_config(directory: Path) -> dict:
    """The directory's config.json as a dict."""
    path = directory / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise HyenaDeployError(f"{directory}: config.json not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HyenaDeployError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise HyenaDeployError(f"{path}: expected a JSON object")
    return config


def sha256_files(*paths: Path) -> str:
    """One digest over the contents of several files, in order."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
