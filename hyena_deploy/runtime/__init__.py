"""Backends that run an exported graph, importing only numpy and onnxruntime (and tensorrt for engines).

An application needs nothing else: ``pip install --no-deps hyena-deploy`` plus ``numpy`` and
``onnxruntime`` (the ``runtime`` extra names them). Heavier packages load lazily, only for graphs that
need them (low precision, the FFTConv custom op: onnx) or for engines (tensorrt).
"""

from hyena_deploy.runtime.backend import Backend
from hyena_deploy.runtime.buckets import Bucket, BucketedModel, pick_bucket, read_manifest
from hyena_deploy.runtime.engine_model import EngineModel
from hyena_deploy.runtime.generator import Generator
from hyena_deploy.runtime.layout import StatefulLayout, read_layout
from hyena_deploy.runtime.ort_model import OrtModel
from hyena_deploy.runtime.sessions import hyena_metadata, open_session, session_options

__all__ = ["Backend", "Bucket", "BucketedModel", "EngineModel", "Generator", "OrtModel", "StatefulLayout",
           "hyena_metadata", "open_session", "pick_bucket", "read_layout", "read_manifest", "session_options"]
