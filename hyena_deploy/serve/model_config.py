"""Triton's model-config protobuf (``inference.ModelConfig``), as the ``tritonclient`` wheel ships it.

Only the generated module ``tritonclient/grpc/model_config_pb2.py`` is loaded, by file: the
``tritonclient.grpc`` package itself imports grpcio, which configs do not need. Install it with the
``serve`` extra (``pip install 'hyena-deploy[serve]'``).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType

from google.protobuf import text_format

from hyena_deploy.errors import HyenaDeployError, first_line

NOT_INSTALLED = "tritonclient is not installed (its model-config protobuf checks the config): " \
                "pip install 'hyena-deploy[serve]'"
# ONNX TensorProto element type names -> Triton DataType names.
TRITON_TYPES = {"FLOAT": "TYPE_FP32", "FLOAT16": "TYPE_FP16", "BFLOAT16": "TYPE_BF16", "DOUBLE": "TYPE_FP64",
                "INT8": "TYPE_INT8", "INT16": "TYPE_INT16", "INT32": "TYPE_INT32", "INT64": "TYPE_INT64",
                "UINT8": "TYPE_UINT8", "UINT16": "TYPE_UINT16", "UINT32": "TYPE_UINT32", "UINT64": "TYPE_UINT64",
                "BOOL": "TYPE_BOOL", "STRING": "TYPE_STRING"}
# numpy dtype names (as the stateful layout writes them) -> ONNX element type names.
NUMPY_TO_ONNX = {"float32": "FLOAT", "float16": "FLOAT16", "bfloat16": "BFLOAT16", "float64": "DOUBLE",
                 "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64", "uint8": "UINT8",
                 "bool": "BOOL"}


@functools.cache
def pb2() -> ModuleType:
    """The generated ``model_config_pb2`` module of the installed tritonclient."""
    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        raise HyenaDeployError(NOT_INSTALLED)
    path = Path(next(iter(spec.submodule_search_locations))) / "grpc" / "model_config_pb2.py"
    if not path.is_file():
        raise HyenaDeployError(f"{path} is missing from the installed tritonclient; " + NOT_INSTALLED)
    module_spec = importlib.util.spec_from_file_location("hyena_deploy_triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:  # protobuf runtime older than the generated code, and the like
        raise HyenaDeployError(f"cannot load tritonclient's model-config protobuf: {first_line(exc)}") from None
    return module


def new_config():
    """An empty ``inference.ModelConfig``."""
    return pb2().ModelConfig()


def parse(text: str):
    """Parse ``config.pbtxt`` text as Triton does (unknown fields and bad enums are errors)."""
    try:
        return text_format.Parse(text, pb2().ModelConfig())
    except text_format.ParseError as exc:
        raise HyenaDeployError(f"config.pbtxt does not parse as inference.ModelConfig: {first_line(exc)}") from None


def to_text(config) -> str:
    """``config.pbtxt`` text of a ModelConfig."""
    return text_format.MessageToString(config)


def data_type(onnx_type_name: str) -> int:
    """Triton DataType enum value for an ONNX element type name (``FLOAT``, ``INT64``, ...)."""
    if onnx_type_name not in TRITON_TYPES:
        raise HyenaDeployError(f"tensor type {onnx_type_name} has no Triton data type")
    return pb2().DataType.Value(TRITON_TYPES[onnx_type_name])


def data_type_name(value: int) -> str:
    """``TYPE_FP32`` for the enum value."""
    return pb2().DataType.Name(value)
