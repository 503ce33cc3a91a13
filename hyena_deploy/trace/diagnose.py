"""One line for a failed torch.onnx translation: the op, whether it was complex, and the module it came from.

torch.onnx reports a failed node as a multi-line banner whose first lines end at "Next steps:".
The FX node being translated is still a local of the exporter's frames in the traceback; its
target and ``nn_module_stack`` are what a user can act on.
"""

from __future__ import annotations

import torch
from torch.fx import Node

from hyena_deploy.errors import first_line
from hyena_deploy.trace.fold import module_path


def translation_failure(exc: BaseException) -> str:
    """``aten.mul.Scalar on a complex tensor in blocks.0.filter: <torch.onnx's reason>``, or the deepest cause."""
    node = _failed_node(exc)
    causes = list(_chain(exc))
    if node is None:
        return first_line(causes[-1])
    where = module_path(node)
    complex_args = any(_is_complex(a) for a in node.all_input_nodes) or _is_complex(node)
    what = f"{node.target} on a complex tensor" if complex_args else str(node.target)
    reason = first_line(causes[-1]).rpartition("Failure message: ")[2]
    return f"{what} in {where or 'the top-level module'}: {reason}"


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _failed_node(exc: BaseException) -> Node | None:
    """The innermost ``call_function`` FX node held by a frame of any exception in the chain."""
    found = None
    for link in _chain(exc):
        tb = link.__traceback__
        while tb is not None:
            candidate = tb.tb_frame.f_locals.get("node")
            if isinstance(candidate, Node) and candidate.op == "call_function":
                found = candidate
            tb = tb.tb_next
    return found


def _is_complex(node: Node) -> bool:
    value = node.meta.get("val")
    return isinstance(value, torch.Tensor) and value.is_complex()
