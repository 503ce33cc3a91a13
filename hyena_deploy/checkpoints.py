"""Checkpoint I/O in one place: configs (JSON, safe YAML), the one weights finder (shards included, never outside
the checkpoint directory), and weights loaded without running code (safetensors, torch.load(weights_only=True))."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch

from hyena_deploy.errors import HyenaDeployError, first_line

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "weights.ckpt", "model.pt")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
YAML_SUFFIXES = (".yml", ".yaml")


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


def weight_files(directory: Path, suffixes: tuple[str, ...] = WEIGHT_SUFFIXES) -> list[Path]:
    """The weights of a checkpoint directory: the shards a Hugging Face index names, else a standard weights file
    (:data:`WEIGHT_FILES`), else the directory's one file with one of ``suffixes``.

    A shard named outside the directory (``../x``, an absolute path, a link leading out) is refused before any
    file is read.
    """
    for index in SHARD_INDEXES:
        if (directory / index).is_file():
            return _shards(directory, directory / index)
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return [directory / name]
    found = sorted(p for p in directory.iterdir() if p.suffix in suffixes and p.is_file())
    if len(found) != 1:
        what = ", ".join(p.name for p in found) if found else "none"
        raise HyenaDeployError(f"{directory}: expected one weights file ({', '.join(WEIGHT_FILES)} or one "
                               f"*{', *'.join(suffixes)}), found {what}")
    return found


def single_weights_file(directory: Path, suffixes: tuple[str, ...] = WEIGHT_SUFFIXES) -> Path:
    """:func:`weight_files` for layouts stored in one file."""
    files = weight_files(directory, suffixes)
    if len(files) != 1:
        raise HyenaDeployError(f"{directory}: this layout is stored in one weights file, found {len(files)} shards")
    return files[0]


def _shards(directory: Path, index: Path) -> list[Path]:
    try:
        weight_map = json.loads(index.read_text()).get("weight_map")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as exc:
        raise HyenaDeployError(f"{index}: not a readable shard index ({first_line(exc)})") from None
    if not isinstance(weight_map, dict) or not weight_map or not all(isinstance(v, str) for v in weight_map.values()):
        raise HyenaDeployError(f"{index}: no weight_map of tensor names to shard files")
    root = directory.resolve()
    shards = []
    for name in sorted(set(weight_map.values())):
        path = (directory / name).resolve()
        if not path.is_relative_to(root):
            raise HyenaDeployError(f"{index}: shard {name!r} lies outside the checkpoint directory; refused "
                                   "(nothing was read)")
        shards.append(directory / name)
    return shards


def read_config_file(path: Path) -> dict:
    """A JSON config, or a YAML one read with ``yaml.safe_load`` (tags that would build objects are refused)."""
    import yaml

    try:
        text = path.read_text()
        config = yaml.safe_load(text) if path.suffix in YAML_SUFFIXES else json.loads(text)
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise HyenaDeployError(f"{path}: not a plain YAML config ({detail[:200]}); only plain mappings, lists, "
                               "strings and numbers are read") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
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
