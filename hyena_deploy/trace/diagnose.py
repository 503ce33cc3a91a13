"""One line for a failed export: what failed, and where in the model's own code.

torch.onnx reports a failed node as a multi-line banner whose first lines end at "Next steps:".
The FX node being translated is still a local of the exporter's frames in the traceback; its
target, ``nn_module_stack`` and recorded source line are what a user can act on. torch.export
failures are raised while the model's forward runs, so the innermost frame of model code in the
traceback is where the cause is.
"""

from __future__ import annotations

import re
import sysconfig
import traceback
from pathlib import Path

import torch
from torch.fx import Node
from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode

import hyena_deploy
from hyena_deploy.errors import first_line
from hyena_deploy.trace.fold import module_path

_TOOLS = tuple(Path(m.__file__).resolve().parent for m in (torch, hyena_deploy))
_PACKAGES = tuple(Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib"))
_STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()


def export_failure(exc: BaseException) -> str:
    """torch.export's cause in one line, with the line of model code that raised it."""
    causes = list(_chain(exc))
    if any(isinstance(c, GuardOnDataDependentSymNode) for c in causes):
        what = "the model branches on a tensor's value (data-dependent control flow cannot be exported)"
    else:
        what = first_line(causes[-1])
    where = _model_frame(causes)
    return f"{what}, at {where}" if where else what


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
    line = _recorded_line(node)
    return f"{what} in {where or 'the top-level module'}{f' ({line})' if line else ''}: {reason}"


def _recorded_line(node: Node) -> str:
    """``file.py:12`` of the model code that made ``node``, from the trace's recorded stack."""
    recorded = re.findall(r'File "([^"]+)", line (\d+)', node.meta.get("stack_trace") or "")
    calls = [(file, line) for file, line in recorded if _is_model_code(file)]
    return f"{Path(calls[-1][0]).name}:{calls[-1][1]}" if calls else ""


def _model_frame(causes: list[BaseException]) -> str:
    """``file.py:7 in forward: <code>`` for the innermost traceback frame outside torch, hyena_deploy and the stdlib."""
    found = ""
    for cause in causes:
        for frame in traceback.extract_tb(cause.__traceback__):
            if _is_model_code(frame.filename):
                found = f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}: {(frame.line or '').strip()}"
    return found


def _is_model_code(filename: str) -> bool:
    """Not torch, not hyena_deploy, not generated code, not the stdlib (installed packages do count)."""
    if filename.startswith("<"):
        return False
    path = Path(filename).resolve()
    if any(path.is_relative_to(tool) for tool in _TOOLS):
        return False
    return any(path.is_relative_to(p) for p in _PACKAGES) or not path.is_relative_to(_STDLIB)


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
