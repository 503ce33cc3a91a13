"""PyTorch -> ONNX: torch.export, input-independent subgraphs folded in PyTorch, then torch.onnx (dynamo).

The dynamo exporter is the only one that exports torch.fft. Folding first (see :mod:`.fold`)
is what lets filters built in complex arithmetic export at all; the complex ops left on signal
spectra that torch.onnx cannot translate are rewritten exactly into ones it can (:mod:`.complex_lowering`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator

import numpy as np
import onnx
import torch

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.loaded import LoadedModel
from hyena_deploy.trace.complex_lowering import lower_complex_ops
from hyena_deploy.trace.diagnose import export_failure, translation_failure
from hyena_deploy.trace.fold import fold_input_independent
from hyena_deploy.trace.torch_run import check_runs_in_torch

IR_VERSION = 10  # what torch writes; onnxruntime >= 1.20 reads it (onnx 1.23 would write 14)
MIN_OPSET = 20   # DFT with the axis as an input and IRFFT semantics

__all__ = ["IR_VERSION", "MIN_OPSET", "check_runs_in_torch", "export_program", "trace"]


def trace(loaded: LoadedModel, seq_len: int, batch: int | None, opset: int) -> onnx.ModelProto:
    """Export at a static sequence length; batch is dynamic unless ``batch`` is given.

    The model first runs once in PyTorch at that length (a failure or NaN/Inf output is refused in
    one line). Exporter chatter is swallowed; a failed translation is named by op and module. The
    exporter's ``value_info`` is dropped: for dynamic shapes it is known to be wrong around IRFFT.
    """
    if opset < MIN_OPSET:
        raise HyenaDeployError(f"--opset {opset} is too old: FFT export needs opset >= {MIN_OPSET}")
    example = loaded.make_inputs(batch or 2, seq_len, np.random.default_rng(0))
    check_runs_in_torch(loaded, example)
    program = export_program(loaded, example, dynamic_batch=batch is None)
    with _quiet():
        try:
            onnx_program = torch.onnx.export(program, example, dynamo=True, opset_version=opset,
                                             output_names=loaded.output_names, optimize=True, verbose=False,
                                             report=False)
        except Exception as exc:  # the exporter raises many types; say which op of which module failed
            raise HyenaDeployError(f"torch.onnx could not export the model: {translation_failure(exc)}") from None
    model = onnx_program.model_proto
    del model.graph.value_info[:]
    model.ir_version = IR_VERSION
    return model


def export_program(loaded: LoadedModel, example: tuple[torch.Tensor, ...],
                   dynamic_batch: bool) -> torch.export.ExportedProgram:
    """``torch.export`` of the model, every input-independent subgraph folded to a constant and the
    complex ops torch.onnx cannot translate rewritten (see the module docstring)."""
    dynamic_shapes = None
    if dynamic_batch:
        dim = torch.export.Dim("batch", min=1, max=4096)
        dynamic_shapes = tuple({0: dim} for _ in example)
    with _quiet():
        try:
            program = torch.export.export(loaded.module, example, dynamic_shapes=dynamic_shapes, strict=False)
        except Exception as exc:  # torch.export raises many types; say what and where in the model's code
            raise HyenaDeployError(f"torch.export could not trace the model: {export_failure(exc)}") from None
    if any(isinstance(node.target, torch._ops.HigherOrderOperator) for node in program.graph.nodes):
        program = program.run_decompositions({})  # inlines `with torch.no_grad():` blocks, so their ops can fold
    fold_input_independent(program)
    lower_complex_ops(program)
    return program


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Exporter logs, prints and warnings swallowed (the failure itself is reported by the caller)."""
    torch_log = logging.getLogger("torch")
    level = torch_log.level
    try:
        torch_log.setLevel(logging.ERROR)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch_log.setLevel(level)
