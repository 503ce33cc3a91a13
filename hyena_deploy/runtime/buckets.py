"""Running a bucketed export: the manifest ``OUT.buckets.json`` and the runner that picks a graph per length.

The export side (writing the graphs and the manifest) is :mod:`hyena_deploy.jobs.buckets`; this side
needs only numpy and onnxruntime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.runtime.ort_model import OrtModel

FORMAT = "hyena-deploy-buckets"
VERSION = 1


@dataclass(frozen=True)
class Bucket:
    """One graph of a bucketed export: it takes sequences of 1..``max_seq_len`` positions."""

    max_seq_len: int
    file: Path


def read_manifest(path: Path) -> list[Bucket]:
    """The buckets of a manifest, smallest first, with files resolved beside it (and checked to exist)."""
    try:
        payload = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise HyenaDeployError(f"{path}: not a readable bucket manifest ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or payload.get("version") != VERSION:
        raise HyenaDeployError(f"{path}: not a {FORMAT} manifest (version {VERSION})")
    try:
        buckets = sorted((Bucket(int(e["max_seq_len"]), Path(path).parent / e["file"]) for e in payload["buckets"]),
                         key=lambda b: b.max_seq_len)
    except (KeyError, TypeError, ValueError) as exc:
        raise HyenaDeployError(f"{path}: malformed bucket entry ({exc})") from None
    if not buckets:
        raise HyenaDeployError(f"{path}: lists no buckets")
    missing = [b.file for b in buckets if not b.file.is_file()]
    if missing:
        raise HyenaDeployError(f"{path}: bucket file {missing[0]} is missing")
    return buckets


def pick_bucket(buckets: list[Bucket], length: int) -> Bucket:
    """The smallest bucket holding ``length`` positions (``buckets`` sorted, smallest first)."""
    if length < 1:
        raise HyenaDeployError(f"sequence length must be >= 1, got {length}")
    for bucket in buckets:
        if length <= bucket.max_seq_len:
            return bucket
    raise HyenaDeployError(f"sequence length {length} is past the largest bucket ({buckets[-1].max_seq_len})")


class BucketedModel:
    """ONNX Runtime over a bucket manifest: each run goes to the smallest bucket >= its length.

    Graphs load on first use and stay loaded.
    """

    def __init__(self, manifest: Path, threads: int | None = None) -> None:
        self.buckets = read_manifest(Path(manifest))
        self.max_seq_len = self.buckets[-1].max_seq_len
        self._threads = threads
        self._models: dict[int, OrtModel] = {}

    def model_for(self, length: int) -> OrtModel:
        """The (loaded) graph that runs sequences of ``length`` positions."""
        bucket = pick_bucket(self.buckets, length)
        if bucket.max_seq_len not in self._models:
            self._models[bucket.max_seq_len] = OrtModel(bucket.file, self._threads)
        return self._models[bucket.max_seq_len]

    @property
    def input_names(self) -> list[str]:
        return self.model_for(1).input_names

    @property
    def output_names(self) -> list[str]:
        return self.model_for(1).output_names

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Outputs for positional inputs (batch on axis 0, sequence on axis 1)."""
        lengths = {a.shape[1] for a in inputs if a.ndim > 1}
        if len(lengths) != 1:
            raise HyenaDeployError(f"inputs disagree on the sequence length (axis 1): {sorted(lengths)}")
        return self.model_for(lengths.pop()).run(inputs)
