"""End-to-end export: bundled samples and models written elsewhere, every strategy, parity with PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from hyena_deploy import metadata
from hyena_deploy.jobs.export import export_model
from hyena_deploy.sources import load_source
from tests.helpers import assert_tensorrt_safe, op_counts

STRATEGIES = ["monarch", "dft", "direct"]


def _parity(source: str, path: Path, lengths: list[int], batches: list[int]) -> None:
    """Independent of the pipeline's own verification: fresh inputs, ORT vs PyTorch, rel L2 <= 1e-5."""
    loaded = load_source(source)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng()
    for length in lengths:
        for batch in batches:
            inputs = loaded.make_inputs(batch, length, rng)
            with torch.no_grad():
                want = loaded.module(*inputs).numpy()
            got = session.run(None, {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)})[0]
            err = np.linalg.norm(got - want) / np.linalg.norm(want)
            assert err <= 1e-5, (source, length, batch, err)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("factory,length", [("order2", 64), ("order3", 1000), ("order2", 4096), ("order3", 4096)])
def test_models_written_elsewhere_static(tmp_path: Path, elsewhere: str, strategy: str, factory: str, length: int) -> None:
    out = tmp_path / "m.onnx"
    result = export_model(elsewhere + factory, out, fftconv=strategy, seq_len=length)
    assert len(result.sites) == (1 if factory == "order2" else 2)
    _parity(elsewhere + factory, out, [length], [1, 3])
    if strategy != "dft":
        assert_tensorrt_safe(out)
    else:
        assert op_counts(out)["DFT"] == 2 * len(result.sites)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_dynamic_export_matches_at_every_length(tmp_path: Path, elsewhere: str, strategy: str) -> None:
    out = tmp_path / "m.onnx"
    result = export_model(elsewhere + "order3", out, fftconv=strategy, max_seq_len=4096)
    assert result.dynamic_seq_len and result.max_seq_len == 4096
    _parity(elsewhere + "order3", out, [1, 17, 1000, 4096], [1, 3])
    inp = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert inp[0].dim_param and inp[1].dim_param


@pytest.mark.parametrize("sample", ["hyena-tiny", "hyena-tiny-order3"])
def test_bundled_samples_monarch(tmp_path: Path, sample: str) -> None:
    out = tmp_path / "m.onnx"
    export_model(sample, out, fftconv="monarch", max_seq_len=1000)
    _parity(sample, out, [1, 17, 999, 1000], [1, 3])
    assert_tensorrt_safe(out)


def test_written_file_is_deterministic_loadable_and_carries_metadata(tmp_path: Path) -> None:
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    export_model("hyena-tiny", a, fftconv="monarch", seq_len=128)
    export_model("hyena-tiny", b, fftconv="monarch", seq_len=128)
    assert a.read_bytes() == b.read_bytes()
    model = onnx.load(str(a))
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version <= 10
    meta = metadata.read(model)
    assert meta["fftconv"] == "monarch" and meta["max_seq_len"] == "128" and meta["dynamic_seq_len"] == "false"
    assert len(meta["source_sha256"]) == 64 and meta["version"]
    assert [s["strategy"] for s in json.loads(meta["sites"])] == ["monarch", "monarch"]


def test_filter_is_a_constant_of_the_graph(tmp_path: Path) -> None:
    """The positional table z (1, l_max, emb_dim) and the Sin MLP weights are gone from the graph."""
    out = tmp_path / "m.onnx"
    export_model("hyena-tiny", out, fftconv="monarch", seq_len=256)
    shapes = {tuple(i.dims) for i in onnx.load(str(out)).graph.initializer}
    assert (1, 2048, 5) not in shapes and (32, 5) not in shapes and (5, 32) not in shapes


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_exactly_zero_taps_are_not_paid_for(tmp_path: Path, elsewhere: str, strategy: str) -> None:
    """A 16-tap filter inside a full-length FFT is found to have 16 taps; direct keeps only those."""
    out = tmp_path / "m.onnx"
    result = export_model(elsewhere + "explicit_short_filter", out, fftconv=strategy, max_seq_len=256)
    assert [s.taps for s in result.sites] == [16]
    _parity(elsewhere + "explicit_short_filter", out, [1, 17, 255], [1, 3])
    if strategy == "direct":
        kernels = [tuple(i.dims) for i in onnx.load(str(out)).graph.initializer if "filter_taps" in i.name]
        assert kernels == [(8, 1, 16)]
