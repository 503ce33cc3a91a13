"""Length buckets: file naming, picking, per-bucket parity, errors past the largest bucket, atomic manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from hyena_deploy import metadata, onnx_io
from hyena_deploy.jobs import buckets
from hyena_deploy.jobs.buckets import check_buckets, export_buckets, paths_for
from hyena_deploy.runtime.buckets import Bucket, BucketedModel, pick_bucket
from hyena_deploy.cli import main
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.sources import load_source

SIZES = [64, 256]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("buckets") / "tiny.onnx"
    export_buckets("hyena-tiny", out, [256, 64, 64], fftconv="monarch", verify=False)
    return out.with_name("tiny.buckets.json")


def test_paths_for_names_graphs_and_manifest_after_the_output() -> None:
    manifest, files = paths_for(Path("d/model.onnx"), [64, 1024])
    assert manifest == Path("d/model.buckets.json")
    assert files == [Path("d/model.b64.onnx"), Path("d/model.b1024.onnx")]
    assert paths_for(Path("d/model"), [8])[1] == [Path("d/model.b8.onnx")]


def test_check_buckets_sorts_dedupes_and_refuses_bad_sizes() -> None:
    assert check_buckets([4096, 1024, 4096], 4096) == [1024, 4096]
    for sizes, needle in [([], "empty"), ([0, 8], ">= 1"), ([8, 4097], "past the model's maximum")]:
        with pytest.raises(HyenaDeployError, match=needle):
            check_buckets(sizes, 4096)


def test_pick_bucket_takes_the_smallest_that_holds_the_length() -> None:
    table = [Bucket(64, Path("a")), Bucket(256, Path("b"))]
    assert [pick_bucket(table, n).max_seq_len for n in (1, 63, 64, 65, 256)] == [64, 64, 64, 256, 256]
    with pytest.raises(HyenaDeployError, match="past the largest bucket"):
        pick_bucket(table, 257)
    with pytest.raises(HyenaDeployError, match=">= 1"):
        pick_bucket(table, 0)


def test_each_bucket_is_a_dynamic_graph_up_to_its_size(manifest: Path) -> None:
    payload = json.loads(manifest.read_text())
    assert [b["max_seq_len"] for b in payload["buckets"]] == SIZES
    for entry in payload["buckets"]:
        meta = metadata.read(onnx_io.load(manifest.parent / entry["file"]))
        assert meta["max_seq_len"] == str(entry["max_seq_len"]) and meta["dynamic_seq_len"] == "true"


def test_bucketed_model_matches_pytorch_in_every_bucket(manifest: Path) -> None:
    loaded = load_source("hyena-tiny")
    model = BucketedModel(manifest)
    rng = np.random.default_rng(0)
    for length, bucket in [(1, 64), (17, 64), (64, 64), (65, 256), (200, 256), (256, 256)]:
        inputs = loaded.make_inputs(2, length, rng)
        with torch.no_grad():
            want = loaded.module(*inputs).numpy()
        got = model.run([x.numpy() for x in inputs])[0]
        assert model.model_for(length).max_seq_len == bucket
        assert np.linalg.norm(got - want) / np.linalg.norm(want) <= 1e-5, (length, bucket)


def test_past_the_largest_bucket_is_an_error(manifest: Path) -> None:
    with pytest.raises(HyenaDeployError, match=r"past the largest bucket \(256\)"):
        BucketedModel(manifest).run([np.zeros((1, 257), np.int64)])


def test_a_failed_bucket_leaves_no_manifest_and_no_graphs(tmp_path: Path, monkeypatch) -> None:
    real = buckets.export_model

    def fail_on_second(source, path, **options):
        if options["max_seq_len"] > 32:
            raise HyenaDeployError("parity failed")
        return real(source, path, **options)

    monkeypatch.setattr(buckets, "export_model", fail_on_second)
    with pytest.raises(HyenaDeployError, match="parity failed"):
        export_buckets("hyena-tiny", tmp_path / "m.onnx", [16, 64], fftconv="monarch", verify=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("payload,needle", [("{", "not a readable"), ('{"format": "x"}', "not a hyena-deploy"),
                                            ('{"format": "hyena-deploy-buckets", "version": 1, "buckets": '
                                             '[{"max_seq_len": 8, "file": "gone.onnx"}]}', "is missing")])
def test_bad_manifests_are_clear_errors(tmp_path: Path, payload: str, needle: str) -> None:
    path = tmp_path / "m.buckets.json"
    path.write_text(payload)
    with pytest.raises(HyenaDeployError, match=needle):
        BucketedModel(path)


@pytest.mark.parametrize("args,needle", [(["--buckets", "64,4k"], "past the model's maximum"),
                                         (["--buckets", "64", "--seq-len", "8"], "drop --seq-len"),
                                         (["--buckets", "64,x"], "bad length")])
def test_cli_bucket_errors_are_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    result = CliRunner().invoke(main, ["export", "hyena-tiny", "-o", str(tmp_path / "m.onnx"), *args])
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 1 and len(errors) == 1 and needle in errors[0], result.output
    assert list(tmp_path.iterdir()) == []
