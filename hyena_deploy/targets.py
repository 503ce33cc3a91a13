"""The target table: every runtime hyena-deploy exports for, in one place.

A :class:`Target` names what the runtime accepts (compatibility rules, :mod:`hyena_deploy.compat`), which kept
measurements ``--fftconv auto`` uses (``strategies/crossovers.json``), how a graph runs on it here (a runner
factory, for ``check`` and ``bench``), and whether it is built into an engine (``hyena-deploy build``).
``export --target``, ``inspect --target``, ``check --target``, ``bench --backends`` and ``build`` all read
this table; adding a target is one :func:`register` call plus its runner.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx

from hyena_deploy import compat
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.runners import Runner

GraphRunner = Callable[[onnx.ModelProto | Path, int | None], Runner]  # (graph, threads) -> runner


@dataclass(frozen=True)
class Target:
    """One runtime: see the module docstring. ``runner`` is None for engine targets (run through ``--engine``)."""

    name: str
    rules: compat.Rules
    crossovers: str
    runner: GraphRunner | None = None
    engine: bool = False  # built into an engine by `hyena-deploy build`

    def make_runner(self, graph: onnx.ModelProto | Path, threads: int | None = None) -> Runner:
        """A runner for ``graph`` on this target (one-line error where it cannot run here)."""
        if self.runner is None:
            raise HyenaDeployError(f"cannot run graphs on {self.name} here: it runs built engines (use --engine)")
        return self.runner(graph, threads)


_TABLE: dict[str, Target] = {}


def register(target: Target) -> Target:
    """Add (or replace) a target by name."""
    _TABLE[target.name] = target
    return target


def names(*, runnable: bool | None = None) -> list[str]:
    """Target names in table order; ``runnable`` True keeps those with a graph runner."""
    return [t.name for t in _TABLE.values() if runnable is None or (t.runner is not None) == runnable]


def get(name: str) -> Target:
    """The target called ``name`` (one-line error listing the known ones)."""
    if name not in _TABLE:
        raise HyenaDeployError(f"unknown target {name!r}; choose one of {', '.join(_TABLE)}")
    return _TABLE[name]


def check(model: onnx.ModelProto, name: str) -> list[compat.Problem]:
    """Every reason target ``name`` may reject ``model`` (errors and warnings)."""
    return compat.check_compatibility(model, get(name).rules)


def require_compatible(model: onnx.ModelProto, name: str, what: str) -> list[compat.Problem]:
    """Raise ``what: <first error, with its fix>`` when target ``name`` rejects ``model``; else the warnings."""
    return compat.require_compatible(model, get(name).rules, what)


def _onnxruntime_cpu(graph: onnx.ModelProto | Path, threads: int | None) -> Runner:
    from hyena_deploy.runners.ort_runner import OrtRunner  # here: build planning needs the table, not a runtime

    return OrtRunner(graph, threads)


def _onnxruntime_cuda(graph: onnx.ModelProto | Path, threads: int | None) -> Runner:
    import onnxruntime as ort

    from hyena_deploy.runners.ort_runner import OrtRunner

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise HyenaDeployError("cannot run graphs on onnxruntime-gpu here: ONNX Runtime has no CUDA execution "
                               "provider (pip install onnxruntime-gpu, on a machine with a CUDA GPU)")
    return OrtRunner(graph, threads, providers=("CUDAExecutionProvider", "CPUExecutionProvider"))


register(Target("onnxruntime", compat.ONNXRUNTIME, crossovers="onnxruntime", runner=_onnxruntime_cpu))
# The GPU measurements are TensorRT's: matmul-based strategies on a GPU (no CUDA DFT kernel in ONNX Runtime).
register(Target("onnxruntime-gpu", compat.ONNXRUNTIME_GPU, crossovers="tensorrt", runner=_onnxruntime_cuda))
register(Target("tensorrt-10", compat.TENSORRT_10, crossovers="tensorrt", engine=True))
register(Target("tensorrt-11", compat.TENSORRT_11, crossovers="tensorrt", engine=True))
