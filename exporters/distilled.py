"""hyena-deploy's distilled checkpoints (``hyena-deploy distill``): a base checkpoint plus modal filters."""

from __future__ import annotations

from pathlib import Path

from hyena_deploy.distill.checkpoint import is_distilled, load_distilled
from hyena_deploy.loaded import LoadedModel
from hyena_deploy.registry import register


class DistilledFamily:
    """``config.json`` with ``model_type: hyena_distilled``; the base directory is loaded by its own family."""

    name = "distilled"

    def matches(self, directory: Path) -> bool:
        return is_distilled(directory)

    def load(self, directory: Path) -> LoadedModel:
        return load_distilled(directory)


register(DistilledFamily())
