"""Length buckets: one dynamic-length graph per maximum length, a manifest, and a runner that picks.

A graph right-pads every input to its maximum inside the graph, so a short input in a long graph
pays for the long one. ``export --buckets 1024,4096,16384`` writes ``OUT.b1024.onnx``, ... (each
dynamic up to its bucket) and then, atomically and last, ``OUT.buckets.json``;
:class:`BucketedModel` runs each input on the smallest bucket that holds it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.files import write_atomic
from hyena_deploy.loaded import LoadedModel
from hyena_deploy.pipeline import ExportResult, Progress, export_model
from hyena_deploy.runtime import OrtModel
from hyena_deploy.sources import load_source

FORMAT = "hyena-deploy-buckets"
VERSION = 1


@dataclass(frozen=True)
class Bucket:
    """One graph of a bucketed export: it takes sequences of 1..``max_seq_len`` positions."""

    max_seq_len: int
    file: Path


def paths_for(output: Path, buckets: list[int]) -> tuple[Path, list[Path]]:
    """``OUT.buckets.json`` and ``OUT.b<N>.onnx`` per bucket (OUT = ``output`` without ``.onnx``)."""
    stem = output.name[:-len(".onnx")] if output.name.endswith(".onnx") else output.name
    return (output.with_name(f"{stem}.buckets.json"),
            [output.with_name(f"{stem}.b{n}.onnx") for n in buckets])


def check_buckets(buckets: list[int], max_len: int | None) -> list[int]:
    """Sorted unique bucket sizes, each >= 1 and within the model's maximum length."""
    chosen = sorted(set(buckets))
    if not chosen:
        raise HyenaDeployError("--buckets is empty")
    if chosen[0] < 1:
        raise HyenaDeployError(f"bucket sizes must be >= 1, got {chosen[0]}")
    if max_len is not None and chosen[-1] > max_len:
        raise HyenaDeployError(f"bucket {chosen[-1]} is past the model's maximum sequence length {max_len}")
    return chosen


def export_buckets(source: str | LoadedModel, output: Path, buckets: list[int], *, progress: Progress = lambda _: None,
                   **options) -> list[ExportResult]:
    """Export one dynamic-length graph per bucket with :func:`export_model` ``options``, then the manifest.

    If any bucket fails, the graphs this call wrote are removed and no manifest is written.
    """
    if "seq_len" in options or "max_seq_len" in options:
        raise HyenaDeployError("--buckets sets each graph's maximum length: drop --seq-len/--max-seq-len")
    loaded = source if isinstance(source, LoadedModel) else load_source(source)
    chosen = check_buckets(buckets, loaded.max_seq_len)
    manifest, files = paths_for(output, chosen)
    results: list[ExportResult] = []
    try:
        for size, path in zip(chosen, files):
            results.append(export_model(loaded, path, max_seq_len=size,
                                        progress=lambda msg, size=size: progress(f"bucket {size}: {msg}"),
                                        **options))
    except BaseException:
        for result in results:
            for written in result.files:
                written.unlink(missing_ok=True)
        raise
    entries = [{"max_seq_len": size, "file": path.name} for size, path in zip(chosen, files)]
    payload = {"format": FORMAT, "version": VERSION, "source": loaded.name, "buckets": entries}
    write_atomic(manifest, (json.dumps(payload, indent=2) + "\n").encode())
    return results


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
