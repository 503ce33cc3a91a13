"""Model-family adapters, installed as ``hyena_deploy.exporters`` (``hyena_deploy/exporters`` links to this
folder). Importing this package registers every family module in it."""

from __future__ import annotations

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
