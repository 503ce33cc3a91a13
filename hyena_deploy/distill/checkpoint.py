"""The distilled checkpoint directory: the original checkpoint, untouched, plus the modal filters that replace its own.

Layout of ``OUT_DIR``::

    config.json               {"model_type": "hyena_distilled", "format_version": 1, "base": "base",
                               "base_family": ..., "layers": [{"module": ..., "channels": C, "modes": N,
                               "orders": [...], "max_order": ..., "max_filter_error": ...}], "fit": {...}}
    modal_filters.safetensors "<module>.pole_re|pole_im|residue_re|residue_im" (C, N) float64, "<module>.skip" (C,)
    base/                     a copy of the source checkpoint (any family this project loads)

Loading rebuilds the base model with its own family and swaps each listed filter module for a
:class:`~hyena_deploy.models.modal_filter.ModalFilter`; nothing runs code from the directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from hyena_deploy.checkpoints import load_state_dict, read_config, sha256_files
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.loaded import LoadedModel
from hyena_deploy.models.modal_filter import ModalFilter

MODEL_TYPE = "hyena_distilled"
FORMAT_VERSION = 1
FILTERS_FILE = "modal_filters.safetensors"
BASE_DIR = "base"
_PARTS = ("pole_re", "pole_im", "residue_re", "residue_im", "skip")


@dataclass
class DistilledLayer:
    """One replaced filter module: where it sits, its modal form (complex (C, N)) and skip (C,)."""

    module: str
    poles: np.ndarray
    residues: np.ndarray
    skip: np.ndarray
    orders: list[int]
    errors: list[float]
    extra: dict = field(default_factory=dict)

    def modal_filter(self, length: int) -> ModalFilter:
        return ModalFilter(torch.from_numpy(self.poles), torch.from_numpy(self.residues),
                           torch.from_numpy(np.asarray(self.skip, np.float32)), length)

    def config(self) -> dict:
        return {"module": self.module, "channels": int(self.poles.shape[0]), "modes": int(self.poles.shape[1]),
                "orders": [int(o) for o in self.orders], "max_order": int(max(self.orders, default=0)),
                "max_filter_error": float(max(self.errors, default=0.0)), **self.extra}


def replace_module(root: nn.Module, path: str, new: nn.Module) -> None:
    """Put ``new`` at the dotted ``path`` inside ``root``."""
    parent_path, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, name, new)


def apply_layers(module: nn.Module, layers: list[DistilledLayer]) -> nn.Module:
    """``module`` with each layer's filter module swapped for its modal filter (in place; returns it)."""
    for layer in layers:
        try:
            old = module.get_submodule(layer.module)
        except AttributeError:
            raise HyenaDeployError(f"distilled layer {layer.module!r} is not a module of the base model") from None
        length = old.pos_emb.z.shape[1] if hasattr(old, "pos_emb") else 0  # HyenaFilter's l_max
        replace_module(module, layer.module, layer.modal_filter(length))
    return module


def check_output_dir(out_dir: Path) -> None:
    """Refuse an output that exists (other than an empty directory) or whose parent does not."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise HyenaDeployError(f"{out_dir}: exists and is not an empty directory; choose a new output directory")
    if not out_dir.parent.is_dir():
        raise HyenaDeployError(f"{out_dir.parent}: directory does not exist")


def write_distilled(out_dir: Path, base_dir: Path, base_family: str, layers: list[DistilledLayer],
                    fit: dict) -> None:
    """Write ``out_dir`` atomically: built in a temporary directory beside it, then renamed into place."""
    check_output_dir(out_dir)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".tmp"))
    try:
        shutil.copytree(base_dir, tmp / BASE_DIR, symlinks=False)
        tensors = {}
        for layer in layers:
            tensors.update({f"{layer.module}.pole_re": layer.poles.real, f"{layer.module}.pole_im": layer.poles.imag,
                            f"{layer.module}.residue_re": layer.residues.real,
                            f"{layer.module}.residue_im": layer.residues.imag, f"{layer.module}.skip": layer.skip})
        save_file({k: torch.from_numpy(np.ascontiguousarray(v, np.float64)) for k, v in tensors.items()},
                  str(tmp / FILTERS_FILE))
        config = {"model_type": MODEL_TYPE, "format_version": FORMAT_VERSION, "base": BASE_DIR,
                  "base_family": base_family, "layers": [layer.config() for layer in layers], "fit": fit}
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def is_distilled(directory: Path) -> bool:
    try:
        return read_config(directory).get("model_type") == MODEL_TYPE
    except HyenaDeployError:
        return False


def read_layers(directory: Path) -> tuple[dict, list[DistilledLayer]]:
    """The config and the distilled layers of a distilled directory, validated."""
    config = read_config(directory)
    if config.get("format_version") != FORMAT_VERSION:
        raise HyenaDeployError(f"{directory}: distilled format_version {config.get('format_version')!r} "
                               f"is not {FORMAT_VERSION}")
    entries = config.get("layers")
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("module"), str)
                                                for e in entries):
        raise HyenaDeployError(f"{directory}/config.json: 'layers' must be a list of {{'module': ...}} entries")
    state = load_state_dict(directory / FILTERS_FILE)
    layers = []
    for entry in entries:
        name = entry["module"]
        missing = [part for part in _PARTS if f"{name}.{part}" not in state]
        if missing:
            raise HyenaDeployError(f"{directory / FILTERS_FILE}: {name}.{missing[0]} missing")
        get = {part: state[f"{name}.{part}"].double().numpy() for part in _PARTS}
        poles = get["pole_re"] + 1j * get["pole_im"]
        if poles.size and not np.all(np.abs(poles) < 1):
            raise HyenaDeployError(f"{directory / FILTERS_FILE}: {name} has a pole on or outside the unit circle")
        layers.append(DistilledLayer(name, poles, get["residue_re"] + 1j * get["residue_im"], get["skip"],
                                     list(entry.get("orders", [])), [float(entry.get("max_filter_error", 0.0))]))
    return config, layers


def load_distilled(directory: Path) -> LoadedModel:
    """The base model with its filters replaced by the distilled modal filters."""
    from hyena_deploy.registry import load_directory  # the registry imports family modules, which import this

    config, layers = read_layers(directory)
    base = directory / str(config.get("base", BASE_DIR))
    if not base.is_dir():
        raise HyenaDeployError(f"{directory}: the base checkpoint directory {base.name}/ is missing")
    loaded = load_directory(base)
    apply_layers(loaded.module, layers)
    loaded.name = directory.name
    loaded.source_sha256 = hashlib.sha256((loaded.source_sha256 + sha256_files(
        directory / "config.json", directory / FILTERS_FILE)).encode()).hexdigest()
    loaded.notes.append(f"distilled: {len(layers)} filter modules in modal form "
                        f"(up to {max((l.poles.shape[1] for l in layers), default=0)} modes per channel)")
    return loaded
