"""Layout ops on complex tensors rewritten as the same ops on their real view, which torch.onnx translates.

torch.onnx represents a complex tensor as a real one with a trailing axis of 2, but has no complex
translation for ``unsqueeze``, ``expand``, ``repeat``, ``select``, ``split``/``chunk`` and ``unbind``: a
spectrum ``rfft(u).unsqueeze(1)`` fails to export. Each of these only moves whole complex
numbers, so ``op(z)`` equals ``view_as_complex(op'(view_as_real(z)))`` where ``op'`` is ``op``
with its axes counted as in the real view (a negative axis moves one further left) and its sizes
given a trailing 2 (``expand``) or 1 (``repeat``). Nothing is evaluated: the rewrite is exact.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import torch
from torch.export import ExportedProgram
from torch.fx import Node

aten = torch.ops.aten


def _axis(dim: int) -> int:
    """An axis of the complex tensor, counted in its real view."""
    return dim if dim >= 0 else dim - 1


def _axis_at(index: int, default: int = 0) -> Callable[[tuple], tuple]:
    def remap(args: tuple) -> tuple:
        args = list(args) + [default] * (index + 1 - len(args))
        args[index] = _axis(args[index])
        return tuple(args)
    return remap


def _sizes_with(extra: int) -> Callable[[tuple], tuple]:
    return lambda args: (args[0], [*args[1], extra], *args[2:])


# op -> (how its non-tensor arguments change, whether it returns a list of tensors)
_REAL_VIEW = {
    aten.unsqueeze.default: (_axis_at(1), False),
    aten.select.int: (_axis_at(1), False),
    aten.expand.default: (_sizes_with(2), False),
    aten.repeat.default: (_sizes_with(1), False),
    aten.split.Tensor: (_axis_at(2), True),
    aten.chunk.default: (_axis_at(2), True),
    aten.tensor_split.sections: (_axis_at(2), True),
    aten.tensor_split.indices: (_axis_at(2), True),
    aten.split_with_sizes.default: (_axis_at(2), True),
    aten.unbind.int: (_axis_at(1), True),
}


def lower_complex_layout_ops(program: ExportedProgram) -> int:
    """Rewrite, in place, every listed op whose input is complex; returns how many were rewritten."""
    graph = program.graph
    rewritten = 0
    for node in list(graph.nodes):
        rule = _REAL_VIEW.get(node.target) if node.op == "call_function" else None
        if rule is None or not node.args or not _is_complex(node.args[0]) or node.kwargs:
            continue
        remap, returns_list = rule
        if returns_list and any(user.target is not operator.getitem for user in node.users):
            continue  # a list read as a whole: left as traced (torch.onnx names it if it cannot translate it)
        with graph.inserting_before(node):  # new nodes land in creation order, before every reader of node
            real = _call(graph, aten.view_as_real.default, (node.args[0],), node)
            moved = _call(graph, node.target, remap((real, *node.args[1:])), node)
            if returns_list:
                for user in list(node.users):
                    part = _call(graph, operator.getitem, (moved, user.args[1]), user)
                    user.replace_all_uses_with(_call(graph, aten.view_as_complex.default, (part,), user))
                    graph.erase_node(user)
            else:
                node.replace_all_uses_with(_call(graph, aten.view_as_complex.default, (moved,), node))
        graph.erase_node(node)
        rewritten += 1
    if rewritten:
        program.graph_module.recompile()
    return rewritten


def _is_complex(arg: object) -> bool:
    value = arg.meta.get("val") if isinstance(arg, Node) else None
    return isinstance(value, torch.Tensor) and value.is_complex()


def _call(graph: torch.fx.Graph, target, args: tuple, like: Node) -> Node:
    """A call node with ``like``'s module stack and its value computed on the fake inputs."""
    node = graph.call_function(target, args)
    node.meta["nn_module_stack"] = like.meta.get("nn_module_stack", {})
    node.meta["stack_trace"] = like.meta.get("stack_trace")
    fake_args = torch.fx.node.map_arg(args, lambda n: n.meta["val"])
    fake_mode = next(v.fake_mode for v in torch.utils._pytree.tree_leaves(fake_args) if hasattr(v, "fake_mode"))
    with fake_mode:
        node.meta["val"] = target(*fake_args)
    return node
