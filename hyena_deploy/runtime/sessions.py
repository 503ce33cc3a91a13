"""ONNX Runtime sessions for hyena-deploy graphs, with nothing but numpy and onnxruntime imported.

A plain fp32 graph opens straight from its file (ONNX Runtime resolves external data beside it and
reads the metadata itself). Two kinds of graph need the ``onnx`` package and are prepared first, so
only they import it (lazily): low-precision graphs (no bf16 arithmetic on ORT's CPU provider: they run
as :func:`hyena_deploy.precision.for_onnxruntime`'s view) and graphs with the ``hyena_deploy::FFTConv``
custom op (its PyOp library is registered on the options).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import onnxruntime as ort

from hyena_deploy.errors import HyenaDeployError, first_line
from hyena_deploy.metadata import PREFIX
from hyena_deploy.names import PLUGIN_DOMAIN

if TYPE_CHECKING:
    import onnx

PROVIDERS = ("CPUExecutionProvider",)


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """ONNX Runtime CPU options for every session hyena-deploy creates (benchmarks included).

    ``threads`` intra-op threads (ORT's default when None), one inter-op thread, sequential
    execution, all graph optimizations, and no memory pattern: the pattern pre-plans one block per
    activation and cost 1.7x the peak memory at 16K tokens (738 vs 423 MB, 4x128 LM) for no speed.
    """
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_mem_pattern = False
    return options


def hyena_metadata(session: ort.InferenceSession) -> dict[str, str]:
    """The hyena-deploy metadata of a session's model (keys without the ``hyena_deploy.`` prefix)."""
    found = session.get_modelmeta().custom_metadata_map
    return {key[len(PREFIX):]: value for key, value in found.items() if key.startswith(PREFIX)}


def open_session(model: onnx.ModelProto | str | os.PathLike | bytes, threads: int | None = None,
                 providers: Sequence[str] = PROVIDERS) -> ort.InferenceSession:
    """A session (CPU unless ``providers`` say otherwise) for a graph file, serialized bytes or an
    ``onnx.ModelProto``; one-line errors."""
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise HyenaDeployError(f"{path}: file not found")
        source: str | bytes = str(path)
    elif isinstance(model, bytes):
        source = model
    else:
        return _prepared_session(model, threads, providers)
    try:
        session = ort.InferenceSession(source, session_options(threads), providers=list(providers))
    except Exception as exc:  # ORT raises its own exception types
        proto = _proto_needing_preparation(source)
        if proto is None:
            raise HyenaDeployError(f"ONNX Runtime cannot load the model: {first_line(exc)}") from None
        return _prepared_session(proto, threads, providers)
    if hyena_metadata(session).get("precision", "fp32") != "fp32":
        return _prepared_session(_load_proto(source), threads, providers)
    return session


def _needs_preparation(proto: onnx.ModelProto) -> bool:
    meta = {p.key: p.value for p in proto.metadata_props}
    return (meta.get(PREFIX + "precision", "fp32") != "fp32"
            or any(node.domain == PLUGIN_DOMAIN for node in proto.graph.node))


def _load_proto(source: str | bytes) -> onnx.ModelProto:
    import onnx

    return onnx.load(source) if isinstance(source, str) else onnx.load_from_string(source)


def _proto_needing_preparation(source: str | bytes) -> onnx.ModelProto | None:
    """The model, when ORT refused it because it is low-precision or uses FFTConv; else None."""
    try:
        proto = _load_proto(source)
    except Exception:  # onnx missing (the torch-free install) or an unreadable file: ORT's error stands
        return None
    return proto if _needs_preparation(proto) else None


def _prepared_session(proto: onnx.ModelProto, threads: int | None, providers: Sequence[str]) -> ort.InferenceSession:
    """A session for a ModelProto: precision view and FFTConv PyOp where the graph needs them."""
    from hyena_deploy import onnx_io
    from hyena_deploy.plugins.ort_fftconv import session_options_for
    from hyena_deploy.precision import for_onnxruntime

    meta = {p.key: p.value for p in proto.metadata_props}
    if meta.get(PREFIX + "precision", "fp32") != "fp32":
        proto = for_onnxruntime(proto)  # low-precision I/O fed as fp32
    options, proto = session_options_for(proto, session_options(threads))
    try:
        if proto.ByteSize() < onnx_io.PROTOBUF_LIMIT:
            return ort.InferenceSession(proto.SerializeToString(), options, providers=list(providers))
        with onnx_io.staged_external(proto) as path:
            return ort.InferenceSession(str(path), options, providers=list(providers))
    except Exception as exc:  # ORT raises its own exception types
        raise HyenaDeployError(f"ONNX Runtime cannot load the model: {first_line(exc)}") from None
