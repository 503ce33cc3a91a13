"""``hyena-deploy check``: PyTorch vs a target's runtime (and TensorRT engines) on random and given inputs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
import numpy as np
import onnx

from hyena_deploy import onnx_io, targets
from hyena_deploy.commands.options import make_tolerance, tolerance_options
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.graph import graph_input_names
from hyena_deploy.lengths import probe_lengths
from hyena_deploy.metadata import GraphInfo
from hyena_deploy.jobs.export import check_parity
from hyena_deploy.report import console, parity_table, write_json
from hyena_deploy.runners import Runner
from hyena_deploy.runners.trt_runner import TrtRunner
from hyena_deploy.runtime.layout import is_stateful_dir
from hyena_deploy.sources import load_source
from hyena_deploy.stateful.export import check_directory
from hyena_deploy.verify.bisect import bisect, first_divergence
from hyena_deploy.verify.cases import Case
from hyena_deploy.verify.metrics import Tolerance, default_tolerance


def given_inputs(path: Path | None, model: onnx.ModelProto, max_len: int) -> list[Case]:
    """The arrays of ``path`` (.npz) as one case, validated against the graph's inputs before anything runs."""
    if path is None:
        return []
    try:
        archive = np.load(path, allow_pickle=False)
        arrays = {key: archive[key] for key in archive.keys()}
    except (OSError, ValueError) as exc:
        raise HyenaDeployError(f"{path}: not a readable .npz file ({exc})") from None
    names = graph_input_names(model)
    if set(arrays) != set(names):
        missing, extra = sorted(set(names) - set(arrays)), sorted(set(arrays) - set(names))
        raise HyenaDeployError(f"{path}: the model's inputs are {names}; "
                               f"{'missing ' + str(missing) if missing else ''}"
                               f"{'; ' if missing and extra else ''}{'unexpected ' + str(extra) if extra else ''}")
    declared = {vi.name: vi.type.tensor_type for vi in model.graph.input}
    for name in names:
        array, tensor_type = arrays[name], declared[name]
        want = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
        dims = tensor_type.shape.dim
        if array.dtype != want:
            raise HyenaDeployError(f"{path}: input {name!r} is {array.dtype}, the model takes {want}")
        if array.ndim != len(dims):
            raise HyenaDeployError(f"{path}: input {name!r} has {array.ndim} dims {array.shape}, the model takes "
                                   f"{len(dims)}")
        for axis, (size, dim) in enumerate(zip(array.shape, dims)):
            if dim.HasField("dim_value") and size != dim.dim_value:
                raise HyenaDeployError(f"{path}: input {name!r} has {size} on axis {axis}, the model takes "
                                       f"{dim.dim_value}")
        if array.ndim > 1 and not 1 <= array.shape[1] <= max_len:
            raise HyenaDeployError(f"{path}: input {name!r} has length {array.shape[1]}; the model takes 1..{max_len}")
    return [Case(path.name, [arrays[n] for n in names])]


@click.command()
@click.argument("source")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--inputs", type=click.Path(dir_okay=False, path_type=Path),
              help=".npz with one array per model input, named as the graph's inputs.")
@click.option("--sequence", "sequences", multiple=True,
              help="A text input (e.g. DNA) tokenized with the model family's tokenizer; repeatable.")
@click.option("--seq-len", "seq_lens", type=int, multiple=True,
              help="Lengths for random inputs (repeatable; default: 4 lengths for dynamic models).")
@tolerance_options
@click.option("--target", "target_names", type=click.Choice(targets.names(runnable=True)), multiple=True,
              help="Runtime(s) to run MODEL.onnx on (repeatable; default onnxruntime).")
@click.option("--engine", type=click.Path(dir_okay=False, path_type=Path),
              help="Also compare this TensorRT engine (built from MODEL.onnx; needs tensorrt and a GPU).")
@click.option("--plugin-lib", "plugin_libs", multiple=True, help="TensorRT plugin library for --engine (repeatable).")
@click.option("--bisect", "run_bisect", is_flag=True,
              help="Compare every PyTorch module's output with the graph tensor it produced and name the first "
                   "module (and FFT-conv site) that diverges.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), help="Write a JSON report here.")
def check(source: str, model: Path, inputs: Path | None, sequences: tuple[str, ...], seq_lens: tuple[int, ...],
          atol: tuple[str, ...], rtol: tuple[str, ...], max_rel_l2: float | None, target_names: tuple[str, ...],
          engine: Path | None, plugin_libs: tuple[str, ...], run_bisect: bool, report: Path | None) -> None:
    """Compare MODEL.onnx (on each --target) and optionally a TensorRT engine against SOURCE in PyTorch fp32;
    MODEL may also be an `export --stateful` directory (its decoder against full recompute).

    Exits 1 when any output of any backend fails.
    """
    if is_stateful_dir(model):
        _check_stateful(source, model, make_tolerance(atol, rtol, max_rel_l2, default_tolerance("fp32")), report)
        return
    proto = onnx_io.load(model)
    info = GraphInfo.of(proto)
    tolerance = make_tolerance(atol, rtol, max_rel_l2, default_tolerance(info.precision))
    loaded = load_source(source, info.max_seq_len)
    max_len = info.max_seq_len or loaded.example_inputs[0].shape[1]
    if any(length < 1 or length > max_len for length in seq_lens):
        raise HyenaDeployError(f"--seq-len must be within 1..{max_len}, got {list(seq_lens)}")
    lengths = list(seq_lens) or (probe_lengths(max_len) if info.dynamic_seq_len else [max_len])
    given = given_inputs(inputs, proto, max_len)
    if sequences:
        if loaded.tokenizer is None:
            raise HyenaDeployError(f"{source}: this model family has no tokenizer, --sequence cannot be used")
        given.append(Case("sequences", [t.numpy() for t in loaded.tokenizer(list(sequences))]))
    batch = None if info.dynamic_batch else proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value
    runners: list[Runner] = [targets.get(name).make_runner(proto) for name in target_names or ("onnxruntime",)]
    if engine is not None:
        runners.append(TrtRunner(engine, proto, plugin_libs or None))
    results = []
    for runner in runners:
        with console.status(f"comparing PyTorch and {runner.name}"):
            reports = check_parity(loaded, runner, lengths, batch, tolerance, given, max_len=max_len,
                                   dynamic=bool(info.dynamic_seq_len))
        console.print(parity_table(reports, title=f"{runner.name} vs PyTorch fp32"))
        results += [replace(r, case=f"{runner.name} {r.case}") for r in reports]
    layers = []
    if run_bisect:
        with console.status("comparing module outputs"):
            layers = bisect(loaded, proto, tolerance)
        first = first_divergence(layers)
        console.print(f"bisect: {len(layers)} module outputs compared; "
                      + (first.summary() if first else "no module diverges"))
    passed = all(r.passed for r in results)
    if report is not None:
        write_json(report, {"model": str(model), "source": source, "passed": passed,
                            "tolerance": tolerance.as_dict(), "results": [r.as_dict() for r in results],
                            "bisect": [{"module": layer.module, "kind": layer.kind, "tensor": layer.tensor,
                                        "sites": layer.sites, **layer.report.as_dict()} for layer in layers]})
    if not passed:
        failed = sum(not r.passed for r in results)
        first = first_divergence(layers) if layers else None
        raise HyenaDeployError(f"FAILED: {failed} of {len(results)} output comparisons exceed tolerance"
                               + (f"; {first.summary()}" if first else ""))
    console.print(f"PASSED: {len(results)} output comparisons within tolerance")


def _check_stateful(source: str, directory: Path, tolerance: Tolerance, report: Path | None) -> None:
    with console.status("comparing the decoder with PyTorch full recompute"):
        reports, _ = check_directory(source, directory, tolerance)
    console.print(parity_table(reports, title="decode.onnx vs PyTorch fp32 full recompute"))
    passed = all(r.passed for r in reports)
    if report is not None:
        write_json(report, {"model": str(directory), "source": source, "passed": passed,
                            "tolerance": tolerance.as_dict(), "results": [r.as_dict() for r in reports]})
    if not passed:
        raise HyenaDeployError(f"FAILED: {sum(not r.passed for r in reports)} of {len(reports)} comparisons "
                               "exceed tolerance")
    console.print(f"PASSED: {len(reports)} comparisons within tolerance")
