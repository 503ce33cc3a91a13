"""Stateful decode graphs for TensorRT: the tensorrt-10 rules accept them and build profiles suit decoding."""

from __future__ import annotations

from pathlib import Path

import onnx
from click.testing import CliRunner

from hyena_deploy.cli import main
from hyena_deploy.stateful.export import export_stateful
from hyena_deploy.tensorrt.shapes import default_profile, resolve_profile


def test_decode_graph_passes_tensorrt_rules_and_profiles_decode_one_token(tmp_path: Path) -> None:
    export_stateful("hyena-tiny", tmp_path / "tiny", max_context=48, verify=False)
    graph = tmp_path / "tiny" / "decode.onnx"
    result = CliRunner().invoke(main, ["inspect", str(graph), "--target", "tensorrt-10"])
    assert result.exit_code == 0, result.output
    profile = {p.name: p for p in default_profile(onnx.load(str(graph)))}
    ids = profile["input_ids"]
    assert (ids.min, ids.opt, ids.max) == ((1, 1), (1, 1), (8, 48))  # opt: one token per call; max: the context
    history = profile["past_key_values.0.history_0"]
    assert (history.min, history.opt, history.max) == ((1, 64, 47), (1, 64, 47), (8, 64, 47))
    chunked = {p.name: p for p in resolve_profile(onnx.load(str(graph)), opt_shapes="input_ids:4x16")}
    assert chunked["input_ids"].opt == (4, 16)
