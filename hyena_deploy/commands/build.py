"""``hyena-deploy build``: a TensorRT engine plus its ``.engine.json`` sidecar from an exported ONNX model.

Everything is validated (model, shapes, options, graph compatibility) before TensorRT is touched;
the engine and the sidecar are each written atomically, engine first.
"""

from __future__ import annotations

from pathlib import Path

import click
import onnx
from google.protobuf.message import DecodeError

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.files import write_atomic
from hyena_deploy.tensorrt import engine_meta, trt_api
from hyena_deploy.tensorrt.plan import (
    ASSUMED_TRT_VERSION,
    DEFAULT_OPT_LEVEL,
    HARDWARE_LEVELS,
    MAX_OPT_LEVEL,
    BuildOptions,
    check_build_device,
    make_plan,
)
from hyena_deploy.tensorrt.shapes import DEFAULT_MAX_BATCH

_SHAPES = "NAME:DxD... per input, comma-separated (e.g. input_ids:1x4096)."


def load_model(path: Path) -> onnx.ModelProto:
    """The ONNX graph at ``path`` without its external weights (TensorRT reads those from the file)."""
    if not path.is_file():
        raise HyenaDeployError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError) as exc:
        raise HyenaDeployError(f"{path} is not a readable ONNX model: {exc}") from None
    if not model.graph.output:
        raise HyenaDeployError(f"{path} is not an ONNX model (it has no graph outputs)")
    return model


@click.command("build")
@click.argument("model", metavar="MODEL.onnx", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Engine file to write (e.g. MODEL.engine); its sidecar MODEL.engine.json is written beside it.")
@click.option("--min-shapes", metavar="SHAPES",
              help=f"Smallest input shapes of the optimization profile, {_SHAPES} Default: 1 for dynamic batch "
                   "and sequence axes.")
@click.option("--opt-shapes", metavar="SHAPES",
              help=f"Shapes TensorRT tunes its kernels for, {_SHAPES} Default: batch 1 and the model's "
                   "max_seq_len (FFT convolutions run at a fixed padded size, so tuning at full length is "
                   "the worst case).")
@click.option("--max-shapes", metavar="SHAPES",
              help=f"Largest input shapes, {_SHAPES} Default: batch {DEFAULT_MAX_BATCH} and the model's "
                   "max_seq_len (the sequence cannot exceed it).")
@click.option("--timing-cache", type=click.Path(dir_okay=False),
              help="Timing cache file: read when it exists, written after the build; makes rebuilds on the same "
                   "GPU and TensorRT faster.")
@click.option("--workspace", "workspace_mb", type=int, metavar="MB",
              help="Limit of TensorRT's workspace memory pool in MiB. Default: TensorRT's (the GPU's memory).")
@click.option("--tf32/--no-tf32", default=False, show_default=True,
              help="Let fp32 matmuls and convolutions use TF32: faster, but ~5e-4 relative error in the FFT "
                   "convolutions' spectral matmuls (fp32 gives ~5e-7).")
@click.option("--hardware-compat", type=click.Choice(list(HARDWARE_LEVELS)), default="none", show_default=True,
              help="GPUs the engine must run on: this GPU's compute capability only (none), any Ampere or newer "
                   "GPU (ampere+, may be slower), or GPUs of the same compute capability (same-cc, TensorRT >= "
                   "10.9).")
@click.option("--version-compatible", is_flag=True,
              help="Build an engine that later TensorRT releases can run; embeds the lean runtime and the plugin "
                   "libraries, and may be slower.")
@click.option("--plugin-lib", "plugin_libs", multiple=True, type=click.Path(dir_okay=False),
              help="TensorRT plugin library to load before parsing (repeatable). Required for graphs exported "
                   "with --fftconv plugin.")
@click.option("--builder-opt-level", type=int, default=DEFAULT_OPT_LEVEL, show_default=True,
              help=f"TensorRT builder optimization level, 0-{MAX_OPT_LEVEL}: higher levels build longer and may "
                   "run faster.")
def build(model: Path, output: Path, min_shapes: str | None, opt_shapes: str | None, max_shapes: str | None,
          timing_cache: str | None, workspace_mb: int | None, tf32: bool, hardware_compat: str,
          version_compatible: bool, plugin_libs: tuple[str, ...], builder_opt_level: int) -> None:
    """Build a TensorRT engine from MODEL.onnx (written by `hyena-deploy export` or `rewrite`)."""
    if output.resolve() == model.resolve():
        raise HyenaDeployError("--output must differ from the ONNX model")
    graph = load_model(model)
    options = BuildOptions(min_shapes=min_shapes, opt_shapes=opt_shapes, max_shapes=max_shapes,
                           workspace_mb=workspace_mb, tf32=tf32, hardware_compat=hardware_compat,
                           version_compatible=version_compatible, plugin_libs=plugin_libs,
                           builder_opt_level=builder_opt_level, timing_cache=timing_cache)
    # Without TensorRT the options are still validated (against the newest known release) before
    # environment() reports the missing TensorRT.
    plan = make_plan(graph, options, trt_api.trt_version() or ASSUMED_TRT_VERSION)
    for warning in plan.warnings:
        click.echo(f"warning: {warning}", err=True)
    env = trt_api.environment()
    check_build_device(plan, env.compute_capability)
    output.parent.mkdir(parents=True, exist_ok=True)
    click.echo(f"building with TensorRT {env.tensorrt_version} on {env.gpu_name}", err=True)
    engine = trt_api.build_engine(model, plan)
    meta = engine_meta.make_meta(plan, env, model, engine)
    write_atomic(output, engine)
    sidecar = engine_meta.sidecar_path(output)
    engine_meta.write_sidecar(sidecar, meta)
    click.echo(f"wrote {output} ({len(engine) / 2**20:.1f} MiB) and {sidecar}")
    for shape in plan.profile:
        click.echo(f"  profile {shape} (min / opt / max)")
    click.echo(f"  precision {plan.precision}, tf32 {'on' if plan.tf32 else 'off'}, hardware-compat "
               f"{plan.hardware_compat}, version-compatible {'yes' if plan.version_compatible else 'no'}")
