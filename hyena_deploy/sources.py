"""Resolve a SOURCE argument: a checkpoint directory, a bundled sample, or ``file.py:factory``."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hyena_deploy.errors import HyenaDeployError, first_line
from hyena_deploy.loaded import LoadedModel
from hyena_deploy.registry import load_directory
from hyena_deploy.trace.torch_run import check_runs_in_torch

# A link to the source tree's samples/ in a checkout, the packaged copy in an installed wheel.
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
_LENGTH_ATTRIBUTES = ("l_max", "max_seq_len", "max_seqlen", "seq_len")
_DEFAULT_EXAMPLE_LENGTH = 64


def sample_names() -> list[str]:
    """Bundled samples: directories under samples/ holding a config.json."""
    if not SAMPLES_DIR.is_dir():
        return []
    return sorted(p.name for p in SAMPLES_DIR.iterdir() if (p / "config.json").is_file())


def load_source(source: str, seq_len: int | None = None) -> LoadedModel:
    """A LoadedModel for a directory, a sample name, ``path/file.py:factory`` or ``pkg.mod:factory``.

    ``seq_len`` (the export length, when known) is passed to a factory that takes a ``seq_len``
    argument. The model is run once, at ``seq_len`` or else on its example inputs, so that a model
    failing in PyTorch or returning NaN/Inf is refused here in one line rather than by a later check.
    """
    loaded = _load(source, seq_len)
    fits = seq_len is not None and 1 <= seq_len <= (loaded.max_seq_len or seq_len)  # else resolve_lengths refuses
    inputs = loaded.make_inputs(2, seq_len, np.random.default_rng(0)) if fits else loaded.example_inputs
    check_runs_in_torch(loaded, inputs)
    return loaded


def _load(source: str, seq_len: int | None) -> LoadedModel:
    path = Path(source)
    if path.is_dir():
        return load_directory(path)
    if source in sample_names():
        return load_directory(SAMPLES_DIR / source)
    if ":" in source:
        target, _, factory = source.rpartition(":")
        return _from_factory(target, factory, seq_len)
    if path.exists():
        raise HyenaDeployError(f"{source}: expected a model directory or FILE.py:factory, got a file")
    samples = ", ".join(sample_names()) or "none"
    raise HyenaDeployError(f"{source}: no such directory, sample ({samples}) or module:factory")


def _import_target(target: str):
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise HyenaDeployError(f"{target}: file not found")
        name = "hyena_deploy_user_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # user code: any failure becomes a one-line error
            raise HyenaDeployError(f"{target}: importing it failed: {type(exc).__name__}: {exc}") from None
        return module
    try:
        return importlib.import_module(target)
    except Exception as exc:  # user code
        raise HyenaDeployError(f"{target}: cannot import: {type(exc).__name__}: {exc}") from None


def _from_factory(target: str, factory_name: str, seq_len: int | None) -> LoadedModel:
    module = _import_target(target)
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise HyenaDeployError(f"{target}: has no callable {factory_name!r}")
    kwargs = _length_argument(factory, seq_len, f"{target}:{factory_name}")
    call = f"{target}:{factory_name}({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
    try:
        made = factory(**kwargs)
    except Exception as exc:  # user code
        raise HyenaDeployError(f"{call} raised {type(exc).__name__}: {first_line(exc)}") from None
    model, example = made if isinstance(made, tuple) and len(made) == 2 else (made, None)
    if not isinstance(model, nn.Module):
        raise HyenaDeployError(f"{target}:{factory_name}() must return an nn.Module or (module, example_inputs)")
    if isinstance(example, torch.Tensor):
        example = (example,)
    if example is not None and not (isinstance(example, (tuple, list)) and example
                                    and all(isinstance(x, torch.Tensor) and x.dim() >= 2 for x in example)):
        raise HyenaDeployError(f"{target}:{factory_name}(): example_inputs must be tensors of shape (batch, seq, ...)")
    max_len = _declared_max_length(model)
    vocab = _vocab_size(model)
    if example is None:
        example = (_infer_example(model, max_len, target, factory_name),)
    source_file = Path(inspect.getsourcefile(module) or target)
    digest = hashlib.sha256(source_file.read_bytes() if source_file.is_file() else target.encode())
    digest.update(factory_name.encode())
    notes = [f"built by {call}: the factory takes the export length"] if kwargs else []
    return LoadedModel(module=model.eval(), example_inputs=tuple(example), name=f"{Path(target).stem}:{factory_name}",
                       source_sha256=digest.hexdigest(), max_seq_len=max_len, vocab_size=vocab, notes=notes)


def _length_argument(factory, seq_len: int | None, name: str) -> dict[str, int]:
    """``{"seq_len": L}`` for a factory with a ``seq_len`` parameter and a known export length."""
    try:
        parameter = inspect.signature(factory).parameters.get("seq_len")
    except (TypeError, ValueError):  # builtins and C callables have no inspectable signature
        return {}
    if parameter is None:
        return {}
    if seq_len is not None:
        return {"seq_len": seq_len}
    if parameter.default is inspect.Parameter.empty:
        raise HyenaDeployError(f"{name} takes the sequence length (seq_len): give --seq-len or --max-seq-len")
    return {}


def _declared_max_length(model: nn.Module) -> int | None:
    """The largest ``l_max``-style attribute found on the model or its submodules."""
    found = [getattr(m, a) for m in model.modules() for a in _LENGTH_ATTRIBUTES
             if isinstance(getattr(m, a, None), int) and getattr(m, a) > 0]
    return min(found) if found else None


def _vocab_size(model: nn.Module) -> int | None:
    first = next((m for m in model.modules() if isinstance(m, (nn.Embedding, nn.Linear, nn.Conv1d))), None)
    return first.num_embeddings if isinstance(first, nn.Embedding) else None


def _infer_example(model: nn.Module, max_len: int | None, target: str, factory: str) -> torch.Tensor:
    """Token ids for an Embedding-first model, (1, L, in_features) floats for a Linear-first one."""
    length = min(max_len or _DEFAULT_EXAMPLE_LENGTH, _DEFAULT_EXAMPLE_LENGTH)
    first = next((m for m in model.modules() if isinstance(m, (nn.Embedding, nn.Linear))), None)
    if isinstance(first, nn.Embedding):
        return torch.zeros(1, length, dtype=torch.long)
    if isinstance(first, nn.Linear):
        return torch.zeros(1, length, first.in_features)
    raise HyenaDeployError(f"{target}:{factory}() returned a module whose input shape cannot be inferred: "
                           "return (module, example_inputs)")
