"""Ops on complex signal tensors that torch.onnx cannot translate, rewritten exactly into ones it can.

torch.onnx represents a complex tensor as a real one with a trailing axis of 2 and translates
complex ``mul``/``add``/``view``/``permute``/``slice``/``real``/``imag``/``complex``, but not:

* layout ops (``unsqueeze``, ``expand``, ``repeat``, ``select``, ``split``/``chunk``/``tensor_split``,
  ``unbind``): they only move whole complex numbers, so ``op(z)`` is
  ``view_as_complex(op'(view_as_real(z)))`` with ``op'``'s axes counted in the real view (a
  negative axis moves one further left) and its sizes given a trailing 2 (``expand``) or 1 (``repeat``);
* dtype changes between complex types (explicit ``.to(torch.complex128)``, or the promotion of a
  ``complex64 * complex128`` product): the real view is cast instead;
* ``einsum`` with complex operands (two at most): it is bilinear, so it splits into real einsums
  of the real and imaginary parts, recombined with ``complex``.

Nothing is evaluated and nothing is approximated: each rewrite computes the same values.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import torch
from torch.export import ExportedProgram
from torch.fx import Graph, Node

aten = torch.ops.aten
_REAL_OF = {torch.complex64: torch.float32, torch.complex128: torch.float64, torch.complex32: torch.float16}
_PROMOTING = {aten.mul.Tensor, aten.add.Tensor, aten.sub.Tensor, aten.div.Tensor}
_CASTS = {aten.to.dtype, aten._to_copy.default}


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


# layout op -> (how its non-tensor arguments change, whether it returns a list of tensors)
_REAL_VIEW = {
    aten.unsqueeze.default: (_axis_at(1), False),
    aten.select.int: (_axis_at(1), False),
    aten.expand.default: (_sizes_with(2), False),
    aten.repeat.default: (_sizes_with(1), False),
    aten.split.Tensor: (_axis_at(2), True),
    aten.split_with_sizes.default: (_axis_at(2), True),
    aten.chunk.default: (_axis_at(2), True),
    aten.tensor_split.sections: (_axis_at(2), True),
    aten.tensor_split.indices: (_axis_at(2), True),
    aten.unbind.int: (_axis_at(1), True),
}


def lower_complex_ops(program: ExportedProgram) -> int:
    """Rewrite, in place, the ops above wherever they read a complex tensor; returns how many were rewritten."""
    graph = program.graph
    rewritten = 0
    for node in list(graph.nodes):
        if node.op != "call_function":
            continue
        if node.target in _PROMOTING:
            rewritten += _cast_operands(graph, node)
            continue
        with graph.inserting_before(node):  # new nodes land in creation order, before every reader of node
            done = _lower_layout(graph, node) or _lower_cast(graph, node) or _lower_einsum(graph, node)
        if done:
            graph.erase_node(node)
            rewritten += 1
    if rewritten:
        program.graph_module.recompile()
    return rewritten


def _lower_layout(graph: Graph, node: Node) -> bool:
    rule = _REAL_VIEW.get(node.target)
    if rule is None or not node.args or not _is_complex(node.args[0]) or node.kwargs:
        return False
    remap, returns_list = rule
    if returns_list and any(user.target is not operator.getitem for user in node.users):
        return False  # a list read as a whole: left as traced (torch.onnx names it if it cannot translate it)
    moved = _call(graph, node.target, remap((_real_view(graph, node.args[0], node), *node.args[1:])), node)
    if returns_list:
        for user in list(node.users):
            part = _call(graph, operator.getitem, (moved, user.args[1]), user)
            user.replace_all_uses_with(_call(graph, aten.view_as_complex.default, (part,), user))
            graph.erase_node(user)
    else:
        node.replace_all_uses_with(_call(graph, aten.view_as_complex.default, (moved,), node))
    return True


def _lower_cast(graph: Graph, node: Node) -> bool:
    """``z.to(complex128)`` of a complex ``z`` as a cast of its real view."""
    if node.target not in _CASTS or not node.args or not _is_complex(node.args[0]):
        return False
    target = node.meta["val"].dtype
    if target not in _REAL_OF or set(node.kwargs) - {"dtype"} or (node.target is aten.to.dtype and len(node.args) > 2):
        return False
    node.replace_all_uses_with(_as_complex_dtype(graph, node.args[0], target, node))
    return True


def _cast_operands(graph: Graph, node: Node) -> int:
    """Make the promotion of a mixed-precision complex product explicit (torch.onnx cannot cast complex)."""
    result = node.meta.get("val")
    if not isinstance(result, torch.Tensor) or result.dtype not in _REAL_OF:
        return 0
    casts = 0
    for operand in dict.fromkeys(a for a in node.args if _is_complex(a) and a.meta["val"].dtype != result.dtype):
        with graph.inserting_before(node):
            node.replace_input_with(operand, _as_complex_dtype(graph, operand, result.dtype, node))
        casts += 1
    return casts


def _lower_einsum(graph: Graph, node: Node) -> bool:
    """``einsum(eq, a, b)`` with complex ``a`` and/or ``b``: real einsums of their parts."""
    if node.target is not aten.einsum.default or len(node.args) != 2 or len(node.args[1]) != 2 or node.kwargs:
        return False
    equation, (a, b) = node.args
    if not (_is_complex(a) or _is_complex(b)):
        return False
    (ar, ai), (br, bi) = _parts(graph, a, node), _parts(graph, b, node)
    result = node.meta["val"]
    with result.fake_mode:  # the parts' value, given rather than traced: einsum's own tracing would guard on sizes
        part = torch.empty_like(result, dtype=_REAL_OF[result.dtype])
    term = lambda x, y: _call(graph, aten.einsum.default, (equation, [x, y]), node, part)  # noqa: E731
    real = term(ar, br) if ai is None or bi is None else \
        _call(graph, aten.sub.Tensor, (term(ar, br), term(ai, bi)), node, part)
    imag = term(ar, bi) if ai is None else term(ai, br) if bi is None else \
        _call(graph, aten.add.Tensor, (term(ar, bi), term(ai, br)), node, part)
    node.replace_all_uses_with(_call(graph, aten.complex.default, (real, imag), node, result))
    return True


def _parts(graph: Graph, x: Node, like: Node) -> tuple[Node, Node | None]:
    if not _is_complex(x):
        return x, None
    return _call(graph, aten.real.default, (x,), like), _call(graph, aten.imag.default, (x,), like)


def _real_view(graph: Graph, x: Node, like: Node) -> Node:
    return _call(graph, aten.view_as_real.default, (x,), like)


def _as_complex_dtype(graph: Graph, x: Node, dtype: torch.dtype, like: Node) -> Node:
    cast = _call(graph, aten.to.dtype, (_real_view(graph, x, like), _REAL_OF[dtype]), like)
    return _call(graph, aten.view_as_complex.default, (cast,), like)


def _is_complex(arg: object) -> bool:
    value = arg.meta.get("val") if isinstance(arg, Node) else None
    return isinstance(value, torch.Tensor) and value.is_complex()


def _call(graph: Graph, target, args: tuple, like: Node, value: torch.Tensor | None = None) -> Node:
    """A call node with ``like``'s module stack and its value (``value``, or computed on the fake inputs)."""
    node = graph.call_function(target, args)
    node.meta["nn_module_stack"] = like.meta.get("nn_module_stack", {})
    node.meta["stack_trace"] = like.meta.get("stack_trace")
    if value is None:
        fake_args = torch.fx.node.map_arg(args, lambda n: n.meta["val"])
        fake_mode = next(v.fake_mode for v in torch.utils._pytree.tree_leaves(fake_args) if hasattr(v, "fake_mode"))
        with fake_mode:
            value = target(*fake_args)
    node.meta["val"] = value
    return node
