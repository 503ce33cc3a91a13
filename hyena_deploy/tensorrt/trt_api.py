"""The only module importing ``tensorrt`` (always lazily): apply a :class:`BuildPlan`, load and run engines.

Thin over TensorRT's Python API as documented for 10.x and 11.x (python/src/infer/pyCore.cpp,
python/src/parsers/pyOnnx.cpp): every decision was made in :mod:`plan`; this module maps names
onto enums and calls the builder, parser and runtime.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.files import write_atomic
from hyena_deploy.tensorrt import engine_meta
from hyena_deploy.tensorrt.engine_meta import BuildEnvironment
from hyena_deploy.tensorrt.plan import BuildPlan

NOT_INSTALLED = "TensorRT is not installed: pip install 'hyena-deploy[gpu]'"
_loaded_libraries: set[str] = set()  # plugin libraries already registered in this process
_TORCH_DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT32": "int32", "INT64": "int64",
                 "INT8": "int8", "UINT8": "uint8", "BOOL": "bool"}  # trt.DataType member -> torch dtype


def _tensorrt():
    try:
        import tensorrt
    except (ImportError, OSError) as exc:  # OSError: the package is there but libnvinfer is not
        detail = f" ({exc})" if isinstance(exc, OSError) else ""
        raise HyenaDeployError(NOT_INSTALLED + detail) from None
    return tensorrt


def trt_version() -> tuple[int, int] | None:
    """(major, minor) of the installed TensorRT, or None when it is not importable."""
    try:
        import tensorrt
    except (ImportError, OSError):
        return None
    return engine_meta.parse_version(tensorrt.__version__)[:2]


def environment() -> BuildEnvironment:
    """TensorRT version and the current CUDA GPU; raises when either is missing."""
    trt = _tensorrt()
    import torch

    if not torch.cuda.is_available():
        raise HyenaDeployError("TensorRT needs a CUDA GPU and PyTorch sees none (torch.cuda.is_available() is False)")
    device = torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(device)
    return BuildEnvironment(trt.__version__, torch.cuda.get_device_name(device), (major, minor))


def _logger(trt):
    logger = trt.Logger(trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(logger, "")  # built-in plugins (FFTPlugin behind DFT on 11.2+)
    return logger


def _load_libraries(registry, paths: Sequence[str]) -> None:
    for path in paths:
        if path in _loaded_libraries:
            continue
        if registry.load_library(path) is None:
            raise HyenaDeployError(f"TensorRT could not load plugin library {path} (not a plugin library, or one "
                                   "of its plugins is already registered)")
        _loaded_libraries.add(path)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def build_engine(onnx_path: str | os.PathLike, plan: BuildPlan) -> bytes:
    """Parse ``onnx_path`` and build a serialized engine exactly as ``plan`` says."""
    trt = _tensorrt()
    logger = _logger(trt)
    builder = trt.Builder(logger)
    _load_libraries(builder.get_plugin_registry(), plan.plugin_libs)  # before parsing: the parser looks plugins up
    flags = 0
    for name in plan.network_flags:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(os.fspath(onnx_path)):  # from the file: external data resolves beside it
        errors = [_one_line(parser.get_error(i)) for i in range(parser.num_errors)]
        raise HyenaDeployError(f"TensorRT could not parse {onnx_path}: {' | '.join(errors) or 'no parser error given'}")
    config = builder.create_builder_config()
    if plan.workspace_mb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_mb << 20)
    for name in plan.set_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    for name in plan.cleared_flags:
        config.clear_flag(getattr(trt.BuilderFlag, name))
    config.hardware_compatibility_level = getattr(trt.HardwareCompatibilityLevel, plan.hardware_level)
    config.builder_optimization_level = plan.builder_opt_level
    if plan.version_compatible:
        # Libraries of plugins the parser used itself (e.g. libnvinfer_plugin for DFT) ship in the plan too.
        used = [lib for lib in parser.get_used_vc_plugin_libraries() if lib not in plan.plugins_to_serialize]
        if plan.plugins_to_serialize or used:
            config.plugins_to_serialize = [*plan.plugins_to_serialize, *used]
    profile = builder.create_optimization_profile()
    for shape in plan.profile:
        profile.set_shape(shape.name, shape.min, shape.opt, shape.max)
    if config.add_optimization_profile(profile) < 0:
        raise HyenaDeployError("TensorRT rejected the optimization profile: " + "; ".join(map(str, plan.profile)))
    cache = _attach_timing_cache(config, plan.timing_cache)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise HyenaDeployError("TensorRT failed to build the engine (see its log above)")
    if cache is not None:
        Path(plan.timing_cache).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(plan.timing_cache, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


def _attach_timing_cache(config, path: str | None):
    """Load ``path`` (or start an empty cache) into ``config``; the returned cache must outlive the build."""
    if path is None:
        return None
    data = Path(path).read_bytes() if Path(path).is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        raise HyenaDeployError(f"timing cache {path} was made by another TensorRT version or GPU; delete it or "
                               "pass another --timing-cache")
    return cache


def load_engine(path: str | os.PathLike, plugin_libs: Sequence[str] = (), host_code_allowed: bool = False):
    """Deserialize the engine at ``path`` after loading ``plugin_libs``.

    ``host_code_allowed`` must be True for version-compatible engines: they embed the lean runtime
    (and any serialized plugin libraries), host code TensorRT only runs when the application trusts it.
    """
    trt = _tensorrt()
    runtime = trt.Runtime(_logger(trt))
    runtime.engine_host_code_allowed = host_code_allowed
    _load_libraries(runtime.get_plugin_registry(), plugin_libs)
    engine = runtime.deserialize_cuda_engine(Path(path).read_bytes())
    if engine is None:
        raise HyenaDeployError(f"TensorRT could not deserialize {path} (see its log above)")
    return engine


class TensorRTRunner:
    """Runs an engine with inputs and outputs as numpy arrays, device buffers allocated by torch.

    When the engine has a sidecar, it is checked first (TensorRT version, GPU, plugin libraries,
    engine digest) so that a mismatch is one clear error instead of a deserialization failure.
    """

    def __init__(self, engine_path: str | os.PathLike, plugin_libs: Sequence[str] | None = None) -> None:
        import torch

        self._torch = torch
        trt = _tensorrt()
        env = environment()
        sidecar_file = engine_meta.sidecar_path(engine_path)
        sidecar = engine_meta.read_sidecar(sidecar_file) if sidecar_file.is_file() else None
        libs = tuple(plugin_libs or ())
        if sidecar is not None:
            engine_meta.check_loadable(sidecar, env.tensorrt_version, env.gpu_name, env.compute_capability, plugin_libs)
            engine_meta.check_engine_file(sidecar, engine_path)
            if plugin_libs is None and not sidecar.plugins_serialized:
                libs = sidecar.plugin_libraries
        self.engine = load_engine(engine_path, libs, host_code_allowed=bool(sidecar and sidecar.version_compatible))
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise HyenaDeployError(f"TensorRT could not create an execution context for {engine_path}")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.stream = torch.cuda.Stream()

    def _dtype(self, name: str):
        kind = self.engine.get_tensor_dtype(name).name
        if kind not in _TORCH_DTYPES:
            raise HyenaDeployError(f"engine tensor {name!r} has type {kind}, which the runner does not handle")
        return getattr(self._torch, _TORCH_DTYPES[kind])

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One inference; ``feeds`` maps every engine input name to an array."""
        torch = self._torch
        missing = [name for name in self.inputs if name not in feeds]
        if missing:
            raise HyenaDeployError(f"missing engine input(s): {', '.join(missing)}")
        keep_alive, outputs = [], {}
        with torch.cuda.stream(self.stream):
            for name in self.inputs:
                array = np.ascontiguousarray(feeds[name])
                tensor = torch.from_numpy(array).to(device="cuda", dtype=self._dtype(name))
                if not self.context.set_input_shape(name, tuple(array.shape)):
                    low, _, high = self.engine.get_tensor_profile_shape(name, 0)
                    raise HyenaDeployError(f"input {name!r} of shape {tuple(array.shape)} is outside the engine's "
                                           f"profile (min {tuple(low)}, max {tuple(high)})")
                self.context.set_tensor_address(name, tensor.data_ptr())
                keep_alive.append(tensor)
            unresolved = self.context.infer_shapes()
            if unresolved:
                raise HyenaDeployError(f"TensorRT cannot infer shapes for {', '.join(unresolved)}")
            for name in self.outputs:
                out = torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=self._dtype(name), device="cuda")
                self.context.set_tensor_address(name, out.data_ptr())
                outputs[name] = out
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise HyenaDeployError("TensorRT execution failed (see its log above)")
        self.stream.synchronize()
        return {name: (t.float() if t.dtype == torch.bfloat16 else t).cpu().numpy() for name, t in outputs.items()}
