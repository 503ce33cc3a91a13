"""Per-layer bisect: the first PyTorch module whose output the ONNX graph no longer reproduces.

The dynamo exporter records each node's module scopes (``pkg.torch.onnx.name_scopes``). A module's output in
the graph is the last tensor its nodes produce that leaves its scope (read by a node outside it, or a graph
output) with the shape PyTorch gives; its input the first tensor entering its scope with the shape of its first
argument. Both are captured in PyTorch with forward hooks, the same tensors are marked as graph outputs in ONNX
Runtime, and compared with the export's tolerance, in the order PyTorch finished the modules (a child before its
parent). The first diverging module is the first whose output fails while its input still matches: where the
error enters, not the layers downstream that only carry it. Modules the rewrite folded away (filter generators)
or called more than once are not compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import torch
from torch.utils._pytree import tree_leaves

from hyena_deploy.graph import consumers, graph_input_names, module_scopes
from hyena_deploy.loaded import LoadedModel
from hyena_deploy.metadata import GraphInfo
from hyena_deploy.rewrite.replace import static_length
from hyena_deploy.runners.ort_runner import OrtRunner
from hyena_deploy.verify.cases import fresh_rng
from hyena_deploy.verify.metrics import OutputReport, Tolerance, compare_output



@dataclass(frozen=True)
class LayerReport:
    """One module's output compared: its path, class, the graph tensor and the FFT-conv sites inside it."""

    module: str
    kind: str
    tensor: str
    report: OutputReport
    sites: list[str] = field(default_factory=list)
    input_report: OutputReport | None = None  # the module's first input, where it could be matched

    def summary(self) -> str:
        where = f" (FFT-conv site {', '.join(self.sites)})" if self.sites else ""
        return (f"first diverging module: {self.module or '<model>'} ({self.kind}){where}: rel L2 "
                f"{self.report.rel_l2:.2e}, max abs {self.report.max_abs:.2e}, cosine {self.report.cosine:.6f}")


def scope_table(model: onnx.ModelProto) -> dict[str, set[str]]:
    """Node name -> the module paths it was traced inside; nodes without scopes absent."""
    return {node.name: set(scopes) for node in model.graph.node if (scopes := module_scopes(node))}


def boundary_tensors(model: onnx.ModelProto, scopes: dict[str, set[str]]) -> dict[str, list[str]]:
    """Module path -> tensors its nodes produce that leave its scope, in graph order."""
    readers = consumers(model.graph)
    outputs = {o.name for o in model.graph.output}
    found: dict[str, list[str]] = {}
    for node in model.graph.node:
        for module in scopes.get(node.name, ()):
            for tensor in node.output:
                leaves = tensor in outputs or any(module not in scopes.get(r.name, ()) for r in readers.get(tensor, []))
                if tensor and leaves:
                    found.setdefault(module, []).append(tensor)
    return found


def entering_tensors(model: onnx.ModelProto, scopes: dict[str, set[str]]) -> dict[str, list[str]]:
    """Module path -> computed tensors its nodes read from outside its scope (graph inputs included), in order."""
    made_by = {out: node for node in model.graph.node for out in node.output}
    constants = {init.name for init in model.graph.initializer}
    found: dict[str, list[str]] = {}
    for node in model.graph.node:
        for module in scopes.get(node.name, ()):
            for tensor in node.input:
                producer = made_by.get(tensor)
                outside = producer is None or module not in scopes.get(producer.name, ())
                if tensor and tensor not in constants and outside and (producer is None or producer.op_type != "Constant"):
                    found.setdefault(module, []).append(tensor)
    return found


def _first_float(values) -> np.ndarray | None:
    tensors = [t for t in tree_leaves(values) if isinstance(t, torch.Tensor)]
    return tensors[0].detach().float().cpu().numpy() if tensors and tensors[0].is_floating_point() else None


def _capture(loaded: LoadedModel, inputs: list[np.ndarray]) -> list[tuple[str, str, np.ndarray, np.ndarray | None]]:
    """(path, class, first output, first float input) of every module called exactly once, in the order they
    finished."""
    done: list[tuple[str, str, np.ndarray, np.ndarray | None]] = []
    calls: dict[str, int] = {}
    hooks = []
    for path, module in loaded.module.named_modules():
        def hook(mod, args, out, path=path):
            calls[path] = calls.get(path, 0) + 1
            output = _first_float(out)
            if output is not None:
                done.append((path, type(mod).__name__, output, _first_float(args)))
        hooks.append(module.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            loaded.module(*(torch.from_numpy(a) for a in inputs))
    finally:
        for handle in hooks:
            handle.remove()
    return [entry for entry in done if calls[entry[0]] == 1]


def bisect(loaded: LoadedModel, model: onnx.ModelProto, tolerance: Tolerance,
           inputs: list[np.ndarray] | None = None) -> list[LayerReport]:
    """Every module output that could be matched in the graph, compared, in the order PyTorch finished them.

    ``inputs`` default to random ones at the graph's maximum length. A graph that pads a dynamic length computes
    its inner tensors at the maximum: they are compared on the positions PyTorch computed.
    """
    info = GraphInfo.of(model)
    max_len = info.max_seq_len or static_length(model) or loaded.example_inputs[0].shape[1]
    if inputs is None:
        inputs = [x.numpy() for x in loaded.make_inputs(1 if info.dynamic_batch else _static_batch(model), max_len,
                                                          fresh_rng())]
    scopes = scope_table(model)
    leaving, entering = boundary_tensors(model, scopes), entering_tensors(model, scopes)
    graph_inputs = set(graph_input_names(model))
    marked = [t for tensors in (*leaving.values(), *entering.values()) for t in tensors if t not in graph_inputs]
    runner = OrtRunner(model, extra_outputs=tuple(dict.fromkeys(marked)))
    values = dict(zip(runner.output_names, runner.run(inputs)))
    values.update(zip(graph_input_names(model), inputs))
    length = inputs[0].shape[1] if inputs and inputs[0].ndim > 1 else max_len
    if length != max_len:
        values = {name: _unpadded(np.asarray(value), max_len, length) for name, value in values.items()}
    site_readers = _site_scopes(model, info, scopes)
    reports = []
    for path, kind, want, want_in in _capture(loaded, inputs):
        tensor = _matching(leaving.get(path, []), values, want, last=True)
        if tensor is None:
            continue
        label = path or "<model>"
        report = compare_output(tensor, label, want, np.asarray(values[tensor]), tolerance)
        source = _matching(entering.get(path, []), values, want_in, last=False) if want_in is not None else None
        input_report = (compare_output(source, f"{label} input", want_in, np.asarray(values[source]), tolerance)
                        if source is not None else None)
        sites = [site for site, modules in site_readers.items() if path in modules]
        reports.append(LayerReport(path, kind, tensor, report, sites, input_report))
    return reports


def _unpadded(value: np.ndarray, max_len: int, length: int) -> np.ndarray:
    """``value`` cut to ``length`` on every axis of the padded size ``max_len``."""
    return value[tuple(slice(0, length) if size == max_len else slice(None) for size in value.shape)]


def _matching(tensors: list[str], values: dict[str, np.ndarray], want: np.ndarray, last: bool) -> str | None:
    """The last (or first) of ``tensors`` whose computed value is a float array of ``want``'s shape."""
    fitting = [t for t in tensors if np.shape(values.get(t)) == want.shape
               and np.issubdtype(np.asarray(values[t]).dtype, np.floating)]
    return (fitting[-1] if last else fitting[0]) if fitting else None


def first_divergence(reports: list[LayerReport]) -> LayerReport | None:
    """The first module whose output fails while its input matched (else the first that fails), or None."""
    failing = [r for r in reports if not r.report.passed]
    origin = (r for r in failing if r.input_report is None or r.input_report.passed)
    return next(origin, failing[0] if failing else None)


def bisect_summary(loaded: LoadedModel, model: onnx.ModelProto, tolerance: Tolerance,
                   inputs: list[np.ndarray] | None = None) -> str:
    """One phrase for a failure message: the first diverging module on ``inputs``, or why none was found."""
    reports = bisect(loaded, model, tolerance, inputs)
    if not reports:
        return "no module output could be matched in the graph (no module scopes recorded)"
    first = first_divergence(reports)
    return first.summary() if first else "no single module's output diverges on these inputs"


def _site_scopes(model: onnx.ModelProto, info: GraphInfo, scopes: dict[str, set[str]]) -> dict[str, set[str]]:
    """FFT-conv site (its output tensor) -> modules of the nodes that read it."""
    readers = consumers(model.graph)
    return {site["output"]: set().union(*(scopes.get(r.name, set()) for r in readers.get(site["output"], [])))
            for site in info.sites}


def _static_batch(model: onnx.ModelProto) -> int:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return dims[0].dim_value if dims and dims[0].HasField("dim_value") else 1
