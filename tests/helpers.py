"""Assertions shared by tests."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import onnx

FILTER_GENERATING = {"Sin", "Cos", "Exp", "Log"}
FORBIDDEN_FOR_TENSORRT = {"DFT", "Loop", "If", "Scan", "STFT"}


def op_counts(path: Path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def assert_tensorrt_safe(path: Path) -> None:
    """No DFT/control flow, no complex tensors, nothing left of filter generation."""
    model = onnx.load(str(path))
    ops = {n.op_type for n in model.graph.node}
    assert not ops & (FORBIDDEN_FOR_TENSORRT | FILTER_GENERATING), ops & (FORBIDDEN_FOR_TENSORRT | FILTER_GENERATING)
    complex_types = {onnx.TensorProto.COMPLEX64, onnx.TensorProto.COMPLEX128}
    assert all(i.data_type not in complex_types for i in model.graph.initializer)
    inferred = onnx.shape_inference.infer_shapes(model)
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        assert vi.type.tensor_type.elem_type not in complex_types, vi.name
