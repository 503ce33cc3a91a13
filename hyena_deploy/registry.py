"""Model families (the ``exporters`` package and third-party plugins) found through entry points.

A family is any object with a ``name``, ``matches(directory) -> bool`` and
``load(directory) -> LoadedModel``. Families are listed under the entry-point group
``hyena_deploy.exporters``; the core never imports a family by name.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

from hyena_deploy.checkpoints import read_config
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.loaded import LoadedModel

ENTRY_POINT_GROUP = "hyena_deploy.exporters"


class ModelFamily(Protocol):
    """One family of checkpoints on disk (a layout of config and weights)."""

    name: str

    def matches(self, directory: Path) -> bool: ...

    def load(self, directory: Path) -> LoadedModel: ...


_FAMILIES: dict[str, ModelFamily] = {}


def register(family: ModelFamily) -> ModelFamily:
    """Add a family; entry-point modules call this at import time."""
    _FAMILIES[family.name] = family
    return family


@cache
def _load_entry_points() -> None:
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        entry.load()


def families() -> dict[str, ModelFamily]:
    """All registered families, by name."""
    _load_entry_points()
    return dict(_FAMILIES)


def load_directory(directory: Path) -> LoadedModel:
    """Load a checkpoint directory with the one family that recognises it (refused when two claim it)."""
    if (directory / "config.json").exists():
        read_config(directory)  # a corrupt config is reported as such, not as an unknown layout
    claims = [family for family in families().values() if family.matches(directory)]
    if len(claims) > 1:
        raise HyenaDeployError(f"{directory}: families {' and '.join(sorted(f.name for f in claims))} both recognise "
                               "this directory; remove the plugin that should not, or make its matches() stricter")
    if not claims:
        known = ", ".join(sorted(families())) or "none installed"
        raise HyenaDeployError(f"{directory}: no model family recognises this directory (known: {known})")
    return claims[0].load(directory)
