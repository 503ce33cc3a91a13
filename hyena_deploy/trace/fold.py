"""Fold every input-independent subgraph of an exported program into a constant, in PyTorch.

Filter generators (implicit MLPs, positional tables, decay windows, modal sums, complex
Vandermonde kernels, spectra of filters) depend only on parameters, buffers and constants. They
are evaluated once here, eagerly, and the first value on each path that an input-dependent node
reads becomes a lifted constant of the program. torch.onnx then never sees the complex arithmetic
(``1j * A``, complex ``exp``/``log``/``einsum``) it cannot translate. A complex constant enters the
graph as its real view (trailing axis of 2, torch.onnx's own representation of complex tensors)
followed by ``view_as_complex``, which torch.onnx translates to an Identity.

A node is input-dependent when any of its arguments is, starting from the user inputs, mutated
buffers and random ops; symbolic sizes of inputs count as inputs, so only what is fixed at every
batch size is folded. Constants are evaluated in the model's own dtypes: the folded value is what
PyTorch computes on every forward, the reference every export is verified against.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, InputSpec, TensorArgument
from torch.fx import Node
from torch.fx.node import map_aggregate, map_arg

from hyena_deploy.errors import HyenaDeployError, first_line

# Ops that only relabel or re-view one tensor: folding them would copy a weight, not simplify the graph.
_RELABELLING = {
    "aten.t.default", "aten.transpose.int", "aten.permute.default", "aten.view.default", "aten.reshape.default",
    "aten.unsqueeze.default", "aten.squeeze.dim", "aten.squeeze.dims", "aten.expand.default", "aten.contiguous.default",
    "aten.clone.default", "aten.alias.default", "aten.detach.default", "aten.to.dtype", "aten._to_copy.default",
    "aten.to.dtype_layout", "aten.type_as.default",
}


_FILTER_TRANSFORMS = {torch.ops.aten.fft_rfft.default, torch.ops.aten.fft_fft.default}


@dataclass(frozen=True)
class FoldedConstant:
    """One folded subgraph: the constant that replaced it and the module that computed it."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    module: str


def module_path(node: Node) -> str:
    """The dotted path of the innermost module that made ``node`` (``""`` for the root module)."""
    stack = node.meta.get("nn_module_stack") or {}
    for path, _ in reversed(list(stack.values())):
        if not path.startswith("_empty_nn_module_stack"):
            return _dotted(path)
    return ""


def _dotted(path: str) -> str:
    """``L['self'].blocks[0].filter`` or ``blocks.0.filter`` -> ``blocks.0.filter``."""
    for prefix in ("L['self'].", "L['self']"):
        path = path.removeprefix(prefix)
    return path.replace("[", ".").replace("]", "").replace("'", "")


def input_dependent(program: ExportedProgram) -> set[Node]:
    """Nodes whose value can change with the user inputs (or with state the program mutates)."""
    signature = program.graph_signature
    roots = set(signature.user_inputs) | set(signature.buffers_to_mutate.values())
    roots |= {spec.arg.name for spec in signature.input_specs if spec.kind in (InputKind.TOKEN, InputKind.CUSTOM_OBJ)}
    dependent: set[Node] = set()
    for node in program.graph.nodes:
        if node.op == "placeholder":
            if node.name in roots:
                dependent.add(node)
        elif node.op != "call_function" or _is_random(node) or any(a in dependent for a in node.all_input_nodes):
            dependent.add(node)
    return dependent


def _is_random(node: Node) -> bool:
    return torch.Tag.nondeterministic_seeded in getattr(node.target, "tags", ())


def fold_input_independent(program: ExportedProgram) -> list[FoldedConstant]:
    """Replace, in place, every input-independent value read by an input-dependent node with a constant.

    Values are computed in graph order and released once nothing left to compute reads them, so
    the peak memory is that of one eager forward's filter computation, not of all intermediates.
    """
    graph = program.graph
    dependent = input_dependent(program)
    dependent |= _kept_filter_transforms(graph, dependent)
    leaves = _constant_leaves(program)
    frontier = {n for n in graph.nodes if n not in dependent and any(u in dependent for u in n.users)}
    needed = _constant_ancestors(frontier, dependent)
    readers = {n: sum(u in needed for u in n.users) for n in needed}
    values: dict[Node, object] = {}
    folded: list[FoldedConstant] = []
    fake_mode = _fake_mode(program)
    for node in [n for n in graph.nodes if n in needed]:
        values[node] = leaves[node] if node.op == "placeholder" else _evaluate(node, values)
        for parent in dict.fromkeys(node.all_input_nodes):
            readers[parent] -= 1
            if not readers[parent]:
                del values[parent]
        if node in frontier:
            folded.extend(_fold(program, node, values[node], fake_mode, dependent))
        if not readers[node]:
            del values[node]
    _remove_dead_constants(program, dependent)
    program.graph_module.recompile()
    return folded


def _kept_filter_transforms(graph: torch.fx.Graph, dependent: set[Node]) -> set[Node]:
    """FFTs of a real input-independent filter read only by input-dependent nodes: kept as traced.

    Their real input is folded instead, half the size of the spectrum (and no complex constant);
    the FFT-convolution rewrite measures the filter and drops the transform anyway.
    """
    kept = set()
    for node in graph.nodes:
        if node.target in _FILTER_TRANSFORMS and node not in dependent and node.users \
                and all(u in dependent for u in node.users) and not _is_complex_value(node.args[0]):
            kept.add(node)
    return kept


def _is_complex_value(arg: object) -> bool:
    value = arg.meta.get("val") if isinstance(arg, Node) else None
    return isinstance(value, torch.Tensor) and value.is_complex()


def _constant_ancestors(frontier: set[Node], dependent: set[Node]) -> set[Node]:
    """The frontier and every input-independent node it is computed from."""
    needed, stack = set(), list(frontier)
    while stack:
        node = stack.pop()
        if node not in needed and node not in dependent:
            needed.add(node)
            stack.extend(node.all_input_nodes)
    return needed


def _fold(program: ExportedProgram, node: Node, value: object, fake_mode, dependent: set[Node]) -> list[FoldedConstant]:
    """Make the input-dependent readers of ``node`` read ``value``: a Python scalar in place, a tensor as a constant.

    A parameter or buffer is already a constant (only a complex one is replaced, by its real view);
    a chain that only relabels one weight is left as traced, so no weight is stored twice.
    """
    if isinstance(value, (int, float, bool)) and node.op != "placeholder":
        for user in [u for u in node.users if u in dependent]:
            user.args = map_aggregate(user.args, lambda a: value if a is node else a)
            user.kwargs = map_aggregate(user.kwargs, lambda a: value if a is node else a)
        return []
    if not isinstance(value, torch.Tensor):
        return []
    if value.is_complex() or (node.op != "placeholder" and not _only_relabels(node)):
        return [_replace(program, node, value, fake_mode, dependent)]
    return []


def _constant_leaves(program: ExportedProgram) -> dict[Node, object]:
    """Parameter, buffer and constant placeholders with their tensors."""
    by_name = {spec.arg.name: spec for spec in program.graph_signature.input_specs}
    leaves = {}
    for node in program.graph.nodes:
        spec = by_name.get(node.name)
        if node.op != "placeholder" or spec is None or spec.target is None:
            continue
        if spec.kind in (InputKind.PARAMETER, InputKind.BUFFER) and spec.target in program.state_dict:
            leaves[node] = program.state_dict[spec.target]
        elif spec.kind in (InputKind.CONSTANT_TENSOR, InputKind.BUFFER) and spec.target in program.constants:
            leaves[node] = program.constants[spec.target]
    return leaves


def _evaluate(node: Node, values: dict[Node, object]) -> object:
    """The eager value of an input-independent node whose inputs are in ``values``."""
    args = map_arg(node.args, lambda n: values[n])
    kwargs = map_arg(node.kwargs, lambda n: values[n])
    try:
        with torch.no_grad():
            return node.target(*args, **kwargs)
    except Exception as exc:  # an op that ran in the traced forward but not eagerly here
        raise HyenaDeployError(f"folding {node.target} in {module_path(node) or 'the top-level module'} failed: "
                               f"{type(exc).__name__}: {first_line(exc)}") from None


def _only_relabels(node: Node) -> bool:
    """True when ``node`` is a chain of relabelling ops over one parameter/buffer (nothing to compute)."""
    while node.op == "call_function":
        tensors = node.all_input_nodes
        if str(node.target) not in _RELABELLING or len(tensors) != 1:
            return False
        node = tensors[0]
    return node.op == "placeholder"


def _fake_mode(program: ExportedProgram):
    for node in program.graph.nodes:
        fake = getattr(node.meta.get("val"), "fake_mode", None)
        if fake is not None:
            return fake
    raise RuntimeError("the exported program carries no fake tensors")


def _replace(program: ExportedProgram, node: Node, value: torch.Tensor, fake_mode,
             dependent: set[Node]) -> FoldedConstant:
    """Lift ``value`` as a constant placeholder and make the input-dependent readers of ``node`` read it.

    Placeholders and input specs run in the same order, constants before user inputs.
    """
    graph = program.graph
    name = next(f"hyena_folded_{i}" for i in itertools.count() if f"hyena_folded_{i}" not in program.constants)
    stored = torch.view_as_real(value.resolve_conj()).clone() if value.is_complex() else value.detach().clone()
    specs = program.graph_signature.input_specs
    position = next((i for i, s in enumerate(specs) if s.kind == InputKind.USER_INPUT), len(specs))
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    anchor = placeholders[position] if position < len(placeholders) else \
        next(n for n in graph.nodes if n.op != "placeholder")
    with graph.inserting_before(anchor):
        constant = graph.placeholder(name)
    constant.meta["val"] = fake_mode.from_tensor(stored, static_shapes=True)
    specs.insert(position, InputSpec(InputKind.CONSTANT_TENSOR, TensorArgument(constant.name), name))
    program.constants[name] = stored
    replacement = constant
    if value.is_complex():
        with graph.inserting_before(node if node.op != "placeholder" else anchor):
            replacement = graph.call_function(torch.ops.aten.view_as_complex.default, (constant,))
        with fake_mode:
            replacement.meta["val"] = torch.view_as_complex(constant.meta["val"])
        replacement.meta["nn_module_stack"] = node.meta.get("nn_module_stack", {})
    for user in [u for u in node.users if u in dependent]:
        user.replace_input_with(node, replacement)
    return FoldedConstant(name, tuple(value.shape), str(value.dtype).removeprefix("torch."), module_path(node))


def _remove_dead_constants(program: ExportedProgram, dependent: set[Node]) -> None:
    """Drop input-independent nodes nothing reads any more (assertions on them included) and their placeholders."""
    graph = program.graph
    for node in reversed(list(graph.nodes)):
        if node in dependent or node.users or node.op not in ("call_function", "placeholder"):
            continue
        if node.op == "placeholder":
            _drop_input(program, node)
        graph.erase_node(node)


def _drop_input(program: ExportedProgram, node: Node) -> None:
    specs = program.graph_signature.input_specs
    index = next(i for i, s in enumerate(specs) if s.arg.name == node.name)
    spec = specs.pop(index)
    if spec.kind in (InputKind.PARAMETER, InputKind.BUFFER):
        program.state_dict.pop(spec.target, None)
    program.constants.pop(spec.target, None)
