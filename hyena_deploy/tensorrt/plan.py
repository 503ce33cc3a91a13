"""Every decision of an engine build, made and validated before TensorRT is touched.

Typing: the network is always strongly typed. TensorRT 11 has nothing else: no FP16/BF16/INT8
builder flags exist, precision lives in the graph (AutoCast-style casts), and the creation flag
``STRONGLY_TYPED`` is deprecated and ignored, so no flag is passed. On TensorRT 10 the default is
weak typing, where the builder may run any layer in any enabled precision and ONNX Cast nodes are
only hints; the FFT convolutions must stay fp32 (fp16 overflows at the DC bin, §7.1 of the
toolchain notes), so the network is created with ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``
and TensorRT 10 obeys the graph's dtypes and casts exactly as 11 does. Either way no precision
flag is ever set; ``precision`` is recorded from the model, not chosen here.

TF32 is off unless asked for: TensorRT enables it by default, and it costs ~5e-4 relative error in
the spectral matmuls of the monarch strategy against ~5e-7 in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx

from hyena_deploy import compat, metadata
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.plugins.schema import DOMAIN as PLUGIN_DOMAIN
from hyena_deploy.plugins.schema import OP_TYPE as PLUGIN_OP_TYPE
from hyena_deploy.tensorrt.shapes import InputShape, resolve_profile

MIN_TRT = (10, 0)
ASSUMED_TRT_VERSION = (11, 4)  # newest TensorRT this tool knows; used to validate when none is installed
DFT_SINCE = (11, 2)            # TensorRT imports ONNX DFT (through FFTPlugin) from this release
MAX_OPT_LEVEL = 5
DEFAULT_OPT_LEVEL = 3          # TensorRT's default
HARDWARE_LEVELS = {"none": "NONE", "ampere+": "AMPERE_PLUS", "same-cc": "SAME_COMPUTE_CAPABILITY"}
_HARDWARE_SINCE = {"same-cc": (10, 9)}                    # first TensorRT with the level
_HARDWARE_BUILD_CC = {"ampere+": (8, 0), "same-cc": (7, 5)}  # oldest GPU that can build it
PRECISIONS = ("fp32", "fp16", "bf16")
_INPUT_PRECISION = {onnx.TensorProto.FLOAT: "fp32", onnx.TensorProto.FLOAT16: "fp16",
                    onnx.TensorProto.BFLOAT16: "bf16"}


@dataclass(frozen=True)
class BuildOptions:
    """What the user asked for (``hyena-deploy build`` options)."""

    min_shapes: str | None = None
    opt_shapes: str | None = None
    max_shapes: str | None = None
    workspace_mb: int | None = None
    tf32: bool = False
    hardware_compat: str = "none"
    version_compatible: bool = False
    plugin_libs: tuple[str, ...] = ()
    builder_opt_level: int = DEFAULT_OPT_LEVEL
    timing_cache: str | None = None


@dataclass(frozen=True)
class BuildPlan:
    """A validated build: trt_api applies it field by field (flag names are TensorRT enum names)."""

    trt_version: tuple[int, int]
    compat_target: str
    profile: tuple[InputShape, ...]
    precision: str
    strongly_typed: bool
    network_flags: tuple[str, ...]    # NetworkDefinitionCreationFlag members
    set_flags: tuple[str, ...]        # BuilderFlag members to set
    cleared_flags: tuple[str, ...]    # BuilderFlag members to clear
    tf32: bool
    workspace_mb: int | None
    hardware_compat: str
    version_compatible: bool
    plugin_libs: tuple[str, ...]            # absolute paths, loaded before parsing
    plugins_to_serialize: tuple[str, ...]   # embedded in version-compatible engines
    builder_opt_level: int
    timing_cache: str | None
    warnings: tuple[str, ...] = ()

    @property
    def hardware_level(self) -> str:
        """The HardwareCompatibilityLevel member."""
        return HARDWARE_LEVELS[self.hardware_compat]


def compat_target(trt_version: tuple[int, int]) -> str:
    """The :mod:`hyena_deploy.targets` entry (``tensorrt-10`` / ``tensorrt-11``) describing a TensorRT release."""
    return "tensorrt-11" if trt_version >= DFT_SINCE else "tensorrt-10"


def make_plan(model: onnx.ModelProto, options: BuildOptions, trt_version: tuple[int, int]) -> BuildPlan:
    """Validate ``options`` against ``model`` and TensorRT ``trt_version`` (major, minor) and decide everything."""
    version = ".".join(map(str, trt_version))
    if tuple(trt_version) < MIN_TRT:
        raise HyenaDeployError(f"TensorRT {version} is not supported: hyena-deploy needs TensorRT 10 or newer")
    if not 0 <= options.builder_opt_level <= MAX_OPT_LEVEL:
        raise HyenaDeployError(f"--builder-opt-level must be 0..{MAX_OPT_LEVEL}, got {options.builder_opt_level}")
    if options.workspace_mb is not None and options.workspace_mb <= 0:
        raise HyenaDeployError(f"--workspace must be a positive number of MB, got {options.workspace_mb}")
    _check_hardware(options.hardware_compat, trt_version, version)
    plugin_libs = _plugin_libs(options.plugin_libs)
    timing_cache = _timing_cache(options.timing_cache)
    profile = resolve_profile(model, options.min_shapes, options.opt_shapes, options.max_shapes)
    target = compat_target(trt_version)
    warnings = _graph_warnings(model, target, version, bool(plugin_libs))
    if timing_cache and options.builder_opt_level == 0:
        warnings.append("builder optimization level 0 ignores the timing cache")
    return BuildPlan(
        trt_version=tuple(trt_version), compat_target=target, profile=profile, precision=model_precision(model),
        strongly_typed=True, network_flags=("STRONGLY_TYPED",) if trt_version[0] == 10 else (),
        set_flags=(("TF32",) if options.tf32 else ()) + (("VERSION_COMPATIBLE",) if options.version_compatible else ()),
        cleared_flags=() if options.tf32 else ("TF32",), tf32=options.tf32, workspace_mb=options.workspace_mb,
        hardware_compat=options.hardware_compat, version_compatible=options.version_compatible,
        plugin_libs=plugin_libs, plugins_to_serialize=plugin_libs if options.version_compatible else (),
        builder_opt_level=options.builder_opt_level, timing_cache=timing_cache, warnings=tuple(warnings))


def check_build_device(plan: BuildPlan, compute_capability: tuple[int, int]) -> None:
    """Raise when the build GPU cannot produce the requested hardware compatibility level."""
    needed = _HARDWARE_BUILD_CC.get(plan.hardware_compat)
    if needed and tuple(compute_capability) < needed:
        cc = ".".join(map(str, compute_capability))
        raise HyenaDeployError(f"--hardware-compat {plan.hardware_compat} needs a build GPU of compute capability "
                               f"{needed[0]}.{needed[1]} or newer; this GPU is {cc}")


def model_precision(model: onnx.ModelProto) -> str:
    """``hyena_deploy.precision`` metadata, else the dtype of the first float graph input, else fp32."""
    value = metadata.read(model).get("precision")
    if value is not None:
        if value not in PRECISIONS:
            raise HyenaDeployError(f"model metadata {metadata.PRECISION} is {value!r}; expected one of "
                                   f"{', '.join(PRECISIONS)}")
        return value
    types = (vi.type.tensor_type.elem_type for vi in model.graph.input)
    return next((_INPUT_PRECISION[t] for t in types if t in _INPUT_PRECISION), "fp32")


def _check_hardware(level: str, trt_version: tuple[int, int], version: str) -> None:
    if level not in HARDWARE_LEVELS:
        raise HyenaDeployError(f"unknown --hardware-compat {level!r}; choose one of {', '.join(HARDWARE_LEVELS)}")
    since = _HARDWARE_SINCE.get(level)
    if since and tuple(trt_version) < since:
        raise HyenaDeployError(f"--hardware-compat {level} needs TensorRT {since[0]}.{since[1]} or newer "
                               f"(this is {version})")


def _plugin_libs(paths: tuple[str, ...]) -> tuple[str, ...]:
    resolved: list[str] = []
    for path in paths:
        full = Path(path).expanduser().resolve()
        if not full.is_file():
            raise HyenaDeployError(f"--plugin-lib {path}: no such file")
        if str(full) not in resolved:
            resolved.append(str(full))
    return tuple(resolved)


def _timing_cache(path: str | None) -> str | None:
    if path is None:
        return None
    full = Path(path).expanduser().resolve()
    if full.is_dir():
        raise HyenaDeployError(f"--timing-cache {path} is a directory; give a file (created if missing)")
    return str(full)


def _graph_warnings(model: onnx.ModelProto, target: str, version: str, have_plugins: bool) -> list[str]:
    """Compatibility warnings; raise on the first compatibility error or a plugin graph without libraries."""
    uses_plugin = any((n.domain, n.op_type) == (PLUGIN_DOMAIN, PLUGIN_OP_TYPE) for n in model.graph.node)
    if uses_plugin and not have_plugins:
        raise HyenaDeployError("the graph has hyena_deploy::FFTConv nodes (strategy plugin): pass --plugin-lib PATH "
                               "to the TensorRT plugin library implementing them, or re-export with --fftconv monarch")
    rules = compat.TENSORRT_11 if target == "tensorrt-11" else compat.TENSORRT_10  # the table's entries for them
    warnings = compat.require_compatible(model, rules, f"the graph does not build on TensorRT {version}")
    return [str(p) for p in warnings if not (have_plugins and p.code == "plugin-required")]
