"""``hyena-deploy bench``: option parsing, one real (tiny) run end to end, and its errors. No timing asserts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hyena_deploy.bench import report
from hyena_deploy.bench.spec import DEFAULT_LENGTHS, Backend, format_length, parse_backends, parse_length, parse_lengths
from hyena_deploy.cli import main
from hyena_deploy.errors import HyenaDeployError


def run(*args: str):
    return CliRunner().invoke(main, ["bench", *map(str, args)])


def one_line_error(result) -> str:
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 1 and len(errors) == 1, result.output
    return errors[0]


def test_lengths_take_k_and_m_suffixes() -> None:
    assert [parse_length(t) for t in ("100", "4k", "64K", "1m")] == [100, 4096, 65536, 1 << 20]
    assert [format_length(n) for n in (100, 1024, 65536, 1500)] == ["100", "1k", "64k", "1500"]
    for bad in ("", "4x", "0", "-1k", "1.5k"):
        with pytest.raises(HyenaDeployError, match="bad length"):
            parse_length(bad)


def test_default_lengths_stop_at_the_model_maximum() -> None:
    assert parse_lengths(None, None) == list(DEFAULT_LENGTHS)
    assert parse_lengths(None, 2048) == [1024]
    assert parse_lengths(None, 512) == [512]
    assert parse_lengths("4k,1k,4k", 4096) == [1024, 4096]
    with pytest.raises(HyenaDeployError, match="past the model's maximum sequence length 2048"):
        parse_lengths("1k,4k", 2048)


def test_backends_parse_in_order_without_duplicates() -> None:
    parsed = parse_backends("torch,ort:auto,ort:monarch,trt,torch")
    assert [b.name for b in parsed] == ["torch", "ort:auto", "ort:monarch", "trt"]
    assert parsed[2] == Backend("ort", "monarch")
    for bad, needle in [("ort:nope", "unknown strategy"), ("onnx", "unknown backend"), ("torch:x", "unknown backend"),
                        (",", "empty")]:
        with pytest.raises(HyenaDeployError, match=needle):
            parse_backends(bad)


def test_bench_measures_side_by_side_and_writes_json_and_plot(tmp_path: Path) -> None:
    out, png = tmp_path / "bench.json", tmp_path / "latency.png"
    result = run("hyena-tiny", "--lengths", "64,128", "--backends", "torch,ort:monarch,trt", "--repeats", "1",
                 "--warmup", "0", "--json", out, "--plot", png)
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["lengths"] == [64, 128] and payload["threads"] == 2
    assert payload["machine"]["cpu"] and "peak RSS" in payload["memory"]
    runs = {(m["backend"], m["length"]): m for m in payload["measurements"]}
    assert set(runs) == {(b, n) for b in payload["backends"] for n in (64, 128)}
    assert ("trt" in payload["skipped"]) != ("trt" in payload["backends"])
    for (backend, length), m in runs.items():
        assert m["median_ms"] > 0 and m["tokens_per_s"] == pytest.approx(length / (m["median_ms"] / 1e3))
        assert m["peak_mb"] >= 0 and m["peak_total_mb"] >= m["peak_mb"]
        assert m["rel_l2"] <= 1e-5, (backend, length)
        assert m["speedup"] == pytest.approx(runs["torch", length]["median_ms"] / m["median_ms"])
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "ort:monarch" in result.output and "x torch" in result.output


def test_a_length_past_the_maximum_fails_before_measuring() -> None:
    assert "past the model's maximum sequence length 2048" in one_line_error(run("hyena-tiny", "--lengths", "1k,4k"))


def test_plot_without_matplotlib_is_a_clear_error_before_measuring(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(HyenaDeployError, match=r"hyena-deploy\[plot\]"):
        report.require_matplotlib()
    assert "matplotlib" in one_line_error(run("hyena-tiny", "--lengths", "64", "--plot", tmp_path / "p.png"))
