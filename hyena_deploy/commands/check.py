"""``hyena-deploy check``: PyTorch vs ONNX Runtime on random and given inputs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
import numpy as np

from hyena_deploy import metadata, onnx_io
from hyena_deploy.commands.options import make_tolerance, tolerance_options
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.lengths import probe_lengths
from hyena_deploy.pipeline import check_parity
from hyena_deploy.precision import default_tolerance
from hyena_deploy.runtime import Backend, EngineModel, OrtModel
from hyena_deploy.report import console, parity_table, write_json
from hyena_deploy.sources import load_source


def _given_inputs(path: Path | None, names: list[str]) -> list[tuple[str, list[np.ndarray]]]:
    if path is None:
        return []
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise HyenaDeployError(f"{path}: not a readable .npz file ({exc})") from None
    keys = list(archive.keys())
    if set(names) <= set(keys):
        arrays = [archive[n] for n in names]
    elif len(keys) == len(names):
        arrays = [archive[k] for k in keys]
    else:
        raise HyenaDeployError(f"{path}: expected arrays named {names}, found {keys}")
    return [(f"{path.name}", arrays)]


@click.command()
@click.argument("source")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--inputs", type=click.Path(dir_okay=False, path_type=Path),
              help=".npz with one array per model input (by input name, or in order).")
@click.option("--sequence", "sequences", multiple=True,
              help="A text input (e.g. DNA) tokenized with the model family's tokenizer; repeatable.")
@click.option("--seq-len", "seq_lens", type=int, multiple=True,
              help="Lengths for random inputs (repeatable; default: 4 lengths for dynamic models).")
@tolerance_options
@click.option("--engine", type=click.Path(dir_okay=False, path_type=Path),
              help="Also compare this TensorRT engine (built from MODEL.onnx; needs tensorrt and a GPU).")
@click.option("--plugin-lib", "plugin_libs", multiple=True, help="TensorRT plugin library for --engine (repeatable).")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), help="Write a JSON report here.")
def check(source: str, model: Path, inputs: Path | None, sequences: tuple[str, ...], seq_lens: tuple[int, ...],
          atol: tuple[str, ...], rtol: tuple[str, ...], max_rel_l2: float | None, engine: Path | None,
          plugin_libs: tuple[str, ...], report: Path | None) -> None:
    """Compare MODEL.onnx (ONNX Runtime) and optionally a TensorRT engine against SOURCE in PyTorch fp32.

    Exits 1 when any output of any backend fails.
    """
    proto = onnx_io.load(model)
    meta = metadata.read(proto)
    tolerance = make_tolerance(atol, rtol, max_rel_l2, default_tolerance(meta.get("precision", "fp32")))
    loaded = load_source(source)
    max_len = int(meta.get("max_seq_len", loaded.example_inputs[0].shape[1]))
    if any(length < 1 or length > max_len for length in seq_lens):
        raise HyenaDeployError(f"--seq-len must be within 1..{max_len}, got {list(seq_lens)}")
    lengths = list(seq_lens) or (probe_lengths(max_len) if meta.get("dynamic_seq_len") == "true" else [max_len])
    input_names = [i.name for i in proto.graph.input if i.name not in {x.name for x in proto.graph.initializer}]
    given = _given_inputs(inputs, input_names)
    if sequences:
        if loaded.tokenizer is None:
            raise HyenaDeployError(f"{source}: this model family has no tokenizer, --sequence cannot be used")
        given.append(("sequences", [t.numpy() for t in loaded.tokenizer(list(sequences))]))
    batch = None if meta.get("dynamic_batch", "true") == "true" else proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value
    backends: dict[str, Backend] = {"onnxruntime": OrtModel(proto)}
    if engine is not None:
        backends["tensorrt"] = EngineModel(engine, proto, plugin_libs or None)
    results = []
    for label, backend in backends.items():
        with console.status(f"comparing PyTorch and {label}"):
            reports = check_parity(loaded, backend, lengths, batch, tolerance, given)
        console.print(parity_table(reports, title=f"{label} vs PyTorch fp32"))
        results += [replace(r, case=f"{label} {r.case}") for r in reports]
    passed = all(r.passed for r in results)
    if report is not None:
        write_json(report, {"model": str(model), "source": source, "passed": passed,
                            "tolerance": {"atol": tolerance.atol, "rtol": tolerance.rtol,
                                          "max_rel_l2": tolerance.max_rel_l2},
                            "results": [r.as_dict() for r in results]})
    if not passed:
        failed = sum(not r.passed for r in results)
        raise HyenaDeployError(f"FAILED: {failed} of {len(results)} output comparisons exceed tolerance")
    console.print(f"PASSED: {len(results)} output comparisons within tolerance")
