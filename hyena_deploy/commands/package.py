"""``hyena-deploy package``."""

from __future__ import annotations

from pathlib import Path

import click

from hyena_deploy.report import console
from hyena_deploy.serve.config import BACKENDS, KINDS, STRATEGIES


@click.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--triton", "repo", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Triton model repository to write REPO/NAME into (created if missing).")
@click.option("--name", help="Model name in the repository (default: from SOURCE).")
@click.option("--backend", type=click.Choice(BACKENDS), help="Triton backend (default: tensorrt for an engine, "
              "onnxruntime otherwise).")
@click.option("--max-batch", type=int, help="max_batch_size (default 8; 0 for a graph with a fixed batch).")
@click.option("--instances", type=int, default=1, show_default=True, help="Model instances (instance_group count).")
@click.option("--kind", type=click.Choice(KINDS), help="Instance kind (default: gpu for tensorrt, cpu otherwise).")
@click.option("--version", "version", type=int, default=1, show_default=True, help="Model version directory.")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="oldest", show_default=True,
              help="Sequence-batcher strategy for stateful directories.")
@click.option("--batching", type=click.Choice(["auto", "dynamic", "sequence"]), default="auto", show_default=True,
              help="sequence for stateful directories, dynamic otherwise.")
@click.option("--force", is_flag=True, help="Replace an existing REPO/NAME.")
def package(source: Path, repo: Path, name: str | None, backend: str | None, max_batch: int | None, instances: int,
            kind: str | None, version: int, strategy: str, batching: str, force: bool) -> None:
    """Package SOURCE (exported .onnx, engine with sidecar, or --stateful directory) for Triton Inference Server.

    The config is parsed with tritonclient's model-config protobuf and checked against the model, and
    the batching is emulated, before anything is written.
    """
    from hyena_deploy.serve import package_triton

    with console.status("packaging"):
        result = package_triton(source, repo, name=name, backend=backend, max_batch=max_batch, instances=instances,
                                kind=kind, strategy=strategy, version=version, batching=batching, force=force)
    for check in result.checks:
        console.print(f"checked: {check}")
    for note in result.notes:
        console.print(f"note: {note}")
    console.print(f"wrote {result.entry} ({len(result.files)} files); serve with: "
                  f"tritonserver --model-repository {result.entry.parent}")
