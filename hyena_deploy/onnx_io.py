"""Validate and write ONNX files atomically (external data past 2 GB)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import onnx

from hyena_deploy.errors import HyenaDeployError, first_line
from hyena_deploy.plugins.schema import register_schema

PROTOBUF_LIMIT = 2**31 - 2**20  # a little under 2 GiB, leaving room for the graph itself


def load(path: Path) -> onnx.ModelProto:
    """An ONNX model from disk (external data included), or a one-line error."""
    if not path.is_file():
        raise HyenaDeployError(f"{path}: file not found")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf DecodeError and friends
        raise HyenaDeployError(f"{path}: not a readable ONNX model ({first_line(exc)})") from None


def check(model: onnx.ModelProto) -> None:
    """onnx.checker with full shape inference (by path for models past the protobuf limit)."""
    register_schema()  # hyena_deploy::FFTConv
    try:
        if model.ByteSize() < PROTOBUF_LIMIT:
            onnx.checker.check_model(model, full_check=True)
            return
        with staged_external(model) as path:
            onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise HyenaDeployError(f"the written graph fails onnx.checker: {first_line(exc)}") from None


@contextlib.contextmanager
def staged_external(model: onnx.ModelProto) -> Iterator[Path]:
    """A temporary copy of ``model`` on disk with external data, for tools that need a path."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)  # onnx.save with external data rewrites the proto it is given
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(copy, str(path), save_as_external_data=True, location="model.onnx.data")
        yield path


def save(model: onnx.ModelProto, path: Path) -> list[Path]:
    """Write ``path`` (plus ``path.data`` when the model passes 2 GB) atomically; return the files."""
    path = Path(path)
    if path.is_dir():
        raise HyenaDeployError(f"{path}: is a directory")
    if not path.parent.is_dir():
        raise HyenaDeployError(f"{path.parent}: output directory does not exist")
    external = model.ByteSize() >= PROTOBUF_LIMIT
    tmp = Path(tempfile.mkdtemp(prefix=".hyena-deploy-", dir=path.parent))
    try:
        staged = tmp / path.name
        if external:
            onnx.save(model, str(staged), save_as_external_data=True, all_tensors_to_one_file=True,
                      location=path.name + ".data", size_threshold=1024)
        else:
            staged.write_bytes(model.SerializeToString(deterministic=True))
        written = []
        for item in sorted(tmp.iterdir(), key=lambda p: p.name != path.name + ".data"):
            os.replace(item, path.parent / item.name)  # data file first, then the graph
            written.append(path.parent / item.name)
        return written
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
