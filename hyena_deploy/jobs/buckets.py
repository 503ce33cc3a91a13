"""Length buckets, the export side: one dynamic-length graph per maximum length, then the manifest.

A graph right-pads every input to its maximum inside the graph, so a short input in a long graph
pays for the long one. ``export --buckets 1024,4096,16384`` writes ``OUT.b1024.onnx``, ... (each
dynamic up to its bucket) and then, atomically and last, ``OUT.buckets.json``;
:class:`~hyena_deploy.runtime.buckets.BucketedModel` runs each input on the smallest bucket that holds it.
"""

from __future__ import annotations

import json
from pathlib import Path

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.files import write_atomic
from hyena_deploy.jobs.export import ExportResult, Progress, export_model
from hyena_deploy.loaded import LoadedModel
from hyena_deploy.runtime.buckets import FORMAT, VERSION
from hyena_deploy.sources import load_source


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
    loaded = source if isinstance(source, LoadedModel) else load_source(source, max(buckets, default=None))
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
