"""``hyena-deploy package --triton``: validate, then write one Triton model-repository entry atomically.

Layout written (Triton's): ``REPO/NAME/config.pbtxt`` and ``REPO/NAME/V/model.onnx`` (a directory
``model.onnx/`` holding the graph and its external-data files when it has any) or ``model.plan``.
Nothing is written until the config has parsed with tritonclient's protobuf, matched the model
tensor by tensor, and (for ONNX graphs) the batcher emulation agreed with the model run alone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.graph import input_specs
from hyena_deploy.runtime import Generator, OrtModel
from hyena_deploy.runtime.layout import StatefulLayout, is_stateful_dir, read_layout
from hyena_deploy.serve import model_config
from hyena_deploy.serve.config import MODEL_FILES, ServeOptions, full_sequence_config, stateful_config
from hyena_deploy.serve.crosscheck import check_config
from hyena_deploy.serve.emulate import DecodeModel, EmulationReport, check_dynamic_batching, check_sequence_batching
from hyena_deploy.serve.signature import Signature, engine_signature, external_data_files, graph_signature, load_graph
from hyena_deploy.tensorrt.engine_meta import sidecar_path
from hyena_deploy.verify.cases import InputSpec, random_array

DEFAULT_MAX_BATCH = 8


@dataclass
class PackageResult:
    """What was written and what was checked."""

    entry: Path
    files: list[Path] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def package_triton(source: Path, repo: Path, *, name: str | None = None, backend: str | None = None,
                   max_batch: int | None = None, instances: int = 1, kind: str | None = None,
                   strategy: str = "oldest", version: int = 1, batching: str = "auto",
                   force: bool = False) -> PackageResult:
    """Write ``repo/NAME`` for an exported graph, an engine with its sidecar, or a stateful directory.

    ``batching`` auto picks sequence batching for stateful directories and dynamic batching otherwise.
    """
    source = Path(source)
    stateful = source.is_dir() and is_stateful_dir(source)
    engine = source.is_file() and sidecar_path(source).is_file()
    if not (stateful or engine or source.is_file()):
        raise HyenaDeployError(f"{source}: not an .onnx graph, an engine with its sidecar, or a stateful export "
                               "directory (with hyena_deploy.json)")
    if batching not in ("auto", "sequence", "dynamic"):
        raise HyenaDeployError(f"unknown batching {batching!r}: choose auto, dynamic or sequence")
    if batching == "sequence" and not stateful:
        raise HyenaDeployError(f"{source} has no state: sequence_batching needs a stateful export directory "
                               "(hyena-deploy export SOURCE -o DIR --stateful)")
    if batching == "dynamic" and stateful:
        raise HyenaDeployError(f"{source} is a stateful decode graph: Triton must carry its state with "
                               "sequence_batching (drop --batching dynamic)")
    layout = read_layout(source) if stateful else None
    backend = backend or ("tensorrt" if engine else "onnxruntime")
    model_file = layout.decode if layout else source  # what goes into REPO/NAME/V/
    if layout is not None and backend == "tensorrt":
        model_file = layout.directory / "decode.engine"
        if not sidecar_path(model_file).is_file():
            raise HyenaDeployError(f"{source}: --backend tensorrt serves {model_file.name} with its sidecar; build "
                                   f"it with `hyena-deploy build {layout.decode} -o {model_file}`")
        engine = True
    elif backend == "tensorrt" and not engine:
        raise HyenaDeployError(f"{source}: --backend tensorrt packages a TensorRT engine (with its .json sidecar) "
                               "written by `hyena-deploy build`")
    if backend == "onnxruntime" and engine:
        raise HyenaDeployError(f"{source}: a TensorRT engine is served with --backend tensorrt")
    result_notes: list[str] = []
    if engine:
        signature, sidecar = engine_signature(model_file)
        graph = None
        if sidecar.plugin_libraries and not sidecar.plugins_serialized:
            result_notes.append(f"the engine needs plugin libraries {', '.join(sidecar.plugin_libraries)}: start "
                                "tritonserver with LD_PRELOAD set to them")
    else:
        graph = load_graph(model_file)
        signature = graph_signature(graph)
    if max_batch is None:
        batch_axis_dynamic = all(t.dims and t.dims[0] is None for t in signature.inputs)
        max_batch = DEFAULT_MAX_BATCH if batch_axis_dynamic or stateful else 0
    options = ServeOptions(name=name or _default_name(source), backend=backend, max_batch=max_batch,
                           instances=instances, kind=kind or ("gpu" if backend == "tensorrt" else "cpu"),
                           strategy=strategy, version=version)
    options.check()
    entry = Path(repo) / options.name
    if entry.exists() and not force:
        raise HyenaDeployError(f"{entry} exists: pass --force to replace it")
    if layout is not None:
        config = stateful_config(signature, layout, options)
    else:
        _refuse_state_like(signature, source)
        config = full_sequence_config(signature, options)
    parsed = model_config.parse(model_config.to_text(config))
    check_config(parsed, signature, layout)
    result = PackageResult(entry=entry, notes=result_notes)
    result.checks.append(f"config.pbtxt parses as inference.ModelConfig (tritonclient); every graph input "
                         f"({len(signature.inputs)}) and output ({len(signature.outputs)}) matches it")
    if layout is not None:
        report = _emulate_sequences(parsed, layout)
        result.checks.append(f"sequence-batcher emulation ({options.strategy}): {report.sequences} sequences, "
                             f"{report.new_tokens} tokens each, {report.executions} executions (largest batch "
                             f"{report.largest_batch}) reproduce {report.reference}"
                             f"{' (run on decode.onnx, the graph the engine was built from)' if engine else ''}")
    elif graph is not None and options.max_batch > 1:
        count = check_dynamic_batching(OrtModel(model_file, threads=1), _random_requests(graph, 2))
        result.checks.append(f"dynamic batching: {count} requests stacked give each request's own outputs "
                             "(ONNX Runtime)")
    elif engine:
        result.notes.append("the engine was not run here (the batching emulation runs ONNX graphs)")
    result.files = _write_entry(entry, parsed, model_file, graph, options, force)
    return result


def _default_name(source: Path) -> str:
    stem = source.name if source.is_dir() else source.name.split(".")[0]
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in stem) or "model"


def _refuse_state_like(signature: Signature, source: Path) -> None:
    """A decode graph given without its directory would be served without state: refuse it."""
    if any(t.name.startswith("past_key_values.") for t in signature.inputs):
        raise HyenaDeployError(f"{source} takes state inputs (past_key_values.*): package its stateful export "
                               "directory (with hyena_deploy.json) to get sequence_batching")


def _emulate_sequences(config, layout: StatefulLayout) -> EmulationReport:
    """Drive the decode graph as the sequence batcher would; tokens must equal ``hyena-deploy generate``'s."""
    generator = Generator(layout.directory, threads=1)

    def reference(prompt: np.ndarray, count: int) -> np.ndarray:
        return generator.generate(prompt.reshape(1, -1).astype(np.int64), count)[0]

    return check_sequence_batching(config, DecodeModel(layout.decode, threads=1), layout.input_ids, layout.logits,
                                   layout.vocab_size, reference, "Generator.generate (hyena-deploy generate)",
                                   layout.max_context)


def _random_requests(graph, count: int) -> list[dict[str, np.ndarray]]:
    """``count`` batch-1 requests of one length (7 where the length is dynamic); token ids in 0..1."""
    rng = np.random.default_rng(0)
    return [{name: random_array(InputSpec(tuple(dims), np.dtype(dtype)), rng)
             for name, (dims, dtype) in input_specs(graph, 1, 7).items()} for _ in range(count)]


def _write_entry(entry: Path, config, model_file: Path, graph, options: ServeOptions, force: bool) -> list[Path]:
    """Stage the entry beside its final place, then rename it in (replacing an old one only with ``force``)."""
    repo = entry.parent
    if not repo.is_dir():
        if not repo.parent.is_dir():
            raise HyenaDeployError(f"{repo.parent}: directory does not exist")
        repo.mkdir()
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=repo))
    try:
        staged = staging / entry.name
        version_dir = staged / str(options.version)
        version_dir.mkdir(parents=True)
        (staged / "config.pbtxt").write_text(model_config.to_text(config))
        model_name = MODEL_FILES[options.backend]
        data_files = external_data_files(graph) if graph is not None else []
        if data_files:  # Triton loads model.onnx/model.onnx with its data files beside it
            target = version_dir / model_name
            target.mkdir()
            shutil.copyfile(model_file, target / model_name)
            for location in data_files:
                (target / location).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(model_file.parent / location, target / location)
        else:
            shutil.copyfile(model_file, version_dir / model_name)
        _fsync_tree(staged)
        if entry.exists():
            if not force:
                raise HyenaDeployError(f"{entry} exists: pass --force to replace it")
            os.replace(entry, staging / "replaced")
        os.replace(staged, entry)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sorted(p for p in entry.rglob("*") if p.is_file())


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
