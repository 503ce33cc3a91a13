"""The engine sidecar ``MODEL.engine.json`` and the rules deciding whether an engine loads here.

A TensorRT engine is tied to the TensorRT release and the GPU architecture it was built on unless
built version- or hardware-compatible; the sidecar records what is needed to say so in one clear
line before TensorRT fails with a deserialization error.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from hyena_deploy import tool_version
from hyena_deploy.checkpoints import sha256_files
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.files import write_atomic
from hyena_deploy.tensorrt.plan import BuildPlan
from hyena_deploy.tensorrt.shapes import InputShape

FORMAT = 1
# Version-compatible engines cross a major release only between these (build, runtime) majors
# (TensorRT 11.4 support matrix: 8 -> 10 and 10 -> 11).
_VC_CROSS_MAJOR = frozenset({(8, 10), (10, 11)})
_REBUILD_OR_AMPERE = "rebuild it on this GPU, or build with --hardware-compat ampere+ to run on any Ampere or newer GPU"
# hardware_compat -> (does an engine built at compute capability `built` run at `here`?, requirement, remedy)
_HARDWARE_RULES = {
    "none": (lambda built, here: here == built, "compute capability {built} (no --hardware-compat)",
             _REBUILD_OR_AMPERE),
    "ampere+": (lambda built, here: here >= (8, 0), "compute capability 8.0 or newer (--hardware-compat ampere+)",
                "rebuild it on this GPU"),
    "same-cc": (lambda built, here: here == built, "compute capability {built} (--hardware-compat same-cc)",
                _REBUILD_OR_AMPERE),
}


@dataclass(frozen=True)
class BuildEnvironment:
    """Where an engine is built or loaded."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]


@dataclass(frozen=True)
class EngineMeta:
    """Contents of the sidecar."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]
    profile: tuple[InputShape, ...]
    precision: str
    tf32: bool
    hardware_compat: str
    version_compatible: bool
    plugin_libraries: tuple[str, ...]
    plugins_serialized: bool
    builder_opt_level: int
    workspace_mb: int | None
    source_onnx: str
    source_onnx_sha256: str
    engine_sha256: str
    hyena_deploy_version: str

    def to_json(self) -> dict:
        data = asdict(self)
        data.update(format=FORMAT, compute_capability=list(self.compute_capability),
                    profile=[s.to_json() for s in self.profile], plugin_libraries=list(self.plugin_libraries))
        return data

    @classmethod
    def from_json(cls, data: dict) -> EngineMeta:
        if data.get("format") != FORMAT:
            raise ValueError(f"unknown sidecar format {data.get('format')!r}")
        values = {f.name: data[f.name] for f in fields(cls)}
        values.update(compute_capability=tuple(int(x) for x in data["compute_capability"]),
                      profile=tuple(InputShape.from_json(s) for s in data["profile"]),
                      plugin_libraries=tuple(data["plugin_libraries"]))
        return cls(**values)


def make_meta(plan: BuildPlan, env: BuildEnvironment, source_onnx: Path, engine: bytes) -> EngineMeta:
    """The sidecar for ``engine`` built from ``source_onnx`` with ``plan`` in ``env``."""
    return EngineMeta(
        tensorrt_version=env.tensorrt_version, gpu_name=env.gpu_name,
        compute_capability=tuple(env.compute_capability), profile=plan.profile, precision=plan.precision,
        tf32=plan.tf32, hardware_compat=plan.hardware_compat, version_compatible=plan.version_compatible,
        plugin_libraries=plan.plugin_libs, plugins_serialized=bool(plan.plugins_to_serialize),
        builder_opt_level=plan.builder_opt_level, workspace_mb=plan.workspace_mb,
        source_onnx=str(Path(source_onnx).resolve()), source_onnx_sha256=sha256_files(Path(source_onnx)),
        engine_sha256=hashlib.sha256(engine).hexdigest(), hyena_deploy_version=tool_version())


def sidecar_path(engine_path: str | os.PathLike) -> Path:
    """``MODEL.engine`` -> ``MODEL.engine.json``."""
    return Path(f"{os.fspath(engine_path)}.json")


def write_sidecar(path: str | os.PathLike, meta: EngineMeta) -> None:
    """Atomically write ``meta`` as JSON to ``path`` (see :func:`sidecar_path`)."""
    write_atomic(path, (json.dumps(meta.to_json(), indent=2, sort_keys=True) + "\n").encode())


def read_sidecar(path: str | os.PathLike) -> EngineMeta:
    try:
        return EngineMeta.from_json(json.loads(Path(path).read_text()))
    except FileNotFoundError:
        raise HyenaDeployError(f"engine sidecar {path} not found (it is written by `hyena-deploy build`)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise HyenaDeployError(f"engine sidecar {path} is not valid: {exc}") from None


def parse_version(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"10.8.0.43"`` or ``(10, 8)`` as a tuple of ints (a suffix such as ``rc1`` is dropped)."""
    if not isinstance(text, str):
        return tuple(int(x) for x in text)
    match = re.match(r"[0-9]+(\.[0-9]+)*", text)
    if match is None:
        raise HyenaDeployError(f"cannot read TensorRT version {text!r}")
    return tuple(int(x) for x in match.group().split("."))


def check_loadable(sidecar: EngineMeta, runtime_trt_version: str | Sequence[int], gpu_name: str,
                   compute_capability: tuple[int, int], plugin_libs: Sequence[str] | None = None) -> None:
    """Raise HyenaDeployError when the engine described by ``sidecar`` cannot load here.

    Versions are compared on the components both give. ``plugin_libs`` are the libraries offered at
    load time; when None, the paths recorded at build time are looked for.
    """
    _check_version(sidecar, parse_version(runtime_trt_version))
    _check_gpu(sidecar, gpu_name, tuple(compute_capability))
    if not sidecar.plugins_serialized:
        _check_plugins(sidecar, plugin_libs)


def check_engine_file(sidecar: EngineMeta, engine_path: str | os.PathLike) -> None:
    """Raise when ``engine_path`` is not the engine the sidecar was written for."""
    if sha256_files(Path(engine_path)) != sidecar.engine_sha256:
        raise HyenaDeployError(f"{engine_path} does not match its sidecar (replaced without it); "
                               "rebuild it with `hyena-deploy build`")


def _check_version(sidecar: EngineMeta, here: tuple[int, ...]) -> None:
    built = parse_version(sidecar.tensorrt_version)
    n = min(len(built), len(here))
    built_text, here_text = ".".join(map(str, built)), ".".join(map(str, here))
    if not sidecar.version_compatible:
        if built[:n] != here[:n]:
            raise HyenaDeployError(f"the engine was built with TensorRT {built_text} and this is TensorRT {here_text}: "
                                   "rebuild it here, or build with --version-compatible")
        return
    if here[:n] < built[:n]:
        raise HyenaDeployError(f"the version-compatible engine was built with TensorRT {built_text} and needs that "
                               f"release or newer; this is TensorRT {here_text}")
    if here[0] != built[0] and (built[0], here[0]) not in _VC_CROSS_MAJOR:
        raise HyenaDeployError(f"a version-compatible engine from TensorRT {built[0]} does not run on TensorRT "
                               f"{here[0]}; rebuild it with TensorRT {here_text}")


def _check_gpu(sidecar: EngineMeta, gpu_name: str, here: tuple[int, int]) -> None:
    runs, requirement, remedy = _HARDWARE_RULES[sidecar.hardware_compat]
    built = tuple(sidecar.compute_capability)
    if not runs(built, here):
        need = requirement.format(built=".".join(map(str, built)))
        raise HyenaDeployError(f"the engine (built on {sidecar.gpu_name}) needs {need}; this GPU ({gpu_name}) is "
                               f"{here[0]}.{here[1]}: {remedy}")


def _check_plugins(sidecar: EngineMeta, plugin_libs: Sequence[str] | None) -> None:
    offered = {Path(p).name for p in plugin_libs if Path(p).is_file()} if plugin_libs is not None else None
    missing = [lib for lib in sidecar.plugin_libraries
               if (Path(lib).name not in offered if offered is not None else not Path(lib).is_file())]
    if missing:
        raise HyenaDeployError(f"the engine needs plugin librar{'y' if len(missing) == 1 else 'ies'} "
                               f"{', '.join(missing)}, not found here: pass --plugin-lib PATH")
