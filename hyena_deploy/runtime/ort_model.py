"""An exported graph in ONNX Runtime behind the :class:`~hyena_deploy.runtime.backend.Backend` interface."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from hyena_deploy.errors import HyenaDeployError, first_line
from hyena_deploy.runtime.sessions import PROVIDERS, hyena_metadata, open_session

if TYPE_CHECKING:
    import onnx


class OrtModel:
    """An exported graph in ONNX Runtime (CPU unless ``providers`` say otherwise), refusing inputs longer than
    its maximum length.

    ``model`` is a path, serialized bytes or an ``onnx.ModelProto``; paths and bytes of fp32 graphs
    need neither torch nor onnx.
    """

    def __init__(self, model: onnx.ModelProto | str | os.PathLike | bytes, threads: int | None = None,
                 providers: Sequence[str] = PROVIDERS) -> None:
        self.session = open_session(model, threads, providers)
        meta = hyena_metadata(self.session)
        self.max_seq_len = int(meta["max_seq_len"]) if "max_seq_len" in meta else None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Outputs for positional inputs (batch on axis 0, sequence on axis 1)."""
        if len(inputs) != len(self.input_names):
            raise HyenaDeployError(f"the model takes {len(self.input_names)} inputs, got {len(inputs)}")
        for array in inputs:
            if self.max_seq_len is not None and array.ndim > 1 and array.shape[1] > self.max_seq_len:
                raise HyenaDeployError(f"sequence length {array.shape[1]} exceeds the model's maximum "
                                       f"{self.max_seq_len}")
            if array.ndim > 1 and array.shape[1] == 0:
                raise HyenaDeployError("sequence length 0: inputs need at least one position")
        try:
            return self.session.run(None, dict(zip(self.input_names, inputs)))
        except Exception as exc:  # ORT raises its own exception types
            raise HyenaDeployError(f"ONNX Runtime failed: {first_line(exc)}") from None
