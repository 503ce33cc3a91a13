"""Serving exported models with NVIDIA Triton Inference Server: repository entries, checked before writing.

``config`` builds ``config.pbtxt`` (dynamic batching for full-sequence graphs, the sequence batcher
with implicit state for stateful decode graphs); ``model_config`` parses it with the protobuf module
tritonclient ships; ``crosscheck`` matches it against the model; ``emulate`` drives the model as
Triton's batchers would; ``repository`` writes the entry atomically.
"""

from hyena_deploy.serve.repository import PackageResult, package_triton

__all__ = ["PackageResult", "package_triton"]
