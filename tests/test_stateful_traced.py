"""``export --stateful`` for models written elsewhere: the decode graph derived from traced graphs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner
from onnx import helper

from hyena_deploy.cli import main
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.graph import NodeBuilder
from hyena_deploy.runtime import Generator
from hyena_deploy.sources import load_source
from hyena_deploy.stateful import traced
from hyena_deploy.stateful.export import check_directory, export_stateful
from hyena_deploy.stateful.graph_states import BLOCK, history_conv, modal_conv
from hyena_deploy.stateful.layout import StateSpec
from hyena_deploy.strategies.modal import ModalPlan
from hyena_deploy.tensorrt.shapes import default_profile
from tests.helpers import assert_tensorrt_safe

ROOT = Path(__file__).resolve().parents[1]
STREAMING = ROOT / "tests" / "models_streaming.py"
ELSEWHERE = ROOT / "tests" / "models_elsewhere.py"
COMPLEX = ROOT / "tests" / "models_complex.py"


def _chunk_graph(build, channels: int, spec: StateSpec) -> ort.InferenceSession:
    nb = NodeBuilder("t")
    nb.op("Identity", [build(nb, "x", spec)], output="y")
    graph = helper.make_graph(nb.nodes, "chunk", [
        helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["b", channels, "t"]),
        helper.make_tensor_value_info(spec.input, onnx.TensorProto.FLOAT, ["b", *spec.shape])], [
        helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["b", channels, "t"]),
        helper.make_tensor_value_info(spec.output, onnx.TensorProto.FLOAT, ["b", *spec.shape])], nb.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _chunked(session: ort.InferenceSession, spec: StateSpec, u: np.ndarray, sizes: list[int]) -> np.ndarray:
    state = np.zeros((u.shape[0], *spec.shape), np.float32)
    outs, start, i = [], 0, 0
    while start < u.shape[-1]:
        end = min(u.shape[-1], start + sizes[i % len(sizes)])
        y, state = session.run(None, {"x": u[..., start:end].astype(np.float32), spec.input: state})
        outs.append(y)
        start, i = end, i + 1
    return np.concatenate(outs, axis=-1)


def _causal(u: np.ndarray, h: np.ndarray) -> np.ndarray:
    length = u.shape[-1]
    return np.stack([[np.convolve(row[c], h[c])[:length] for c in range(h.shape[0])] for row in u])


@pytest.mark.parametrize("sizes", [[1], [BLOCK], [7, 1, 40], [2 * BLOCK + 3], [150]])
def test_modal_chunks_equal_the_full_convolution(sizes: list[int]) -> None:
    rng = np.random.default_rng(len(sizes) * 100 + sizes[0])
    channels, modes, length = 3, 4, 150
    poles = rng.uniform(0.6, 0.99, (channels, modes)) * np.exp(1j * rng.uniform(0, np.pi, (channels, modes)))
    poles[:, 0] = poles[:, 0].real  # a real pole too
    plan = ModalPlan(poles, rng.normal(size=(channels, modes)) + 1j * rng.normal(size=(channels, modes)),
                     rng.normal(size=channels), length, 0.0)
    spec = StateSpec("modal_complex", "s", 0, (channels, 2 * modes))
    session = _chunk_graph(lambda nb, x, s: modal_conv(nb, x, plan, s, length), channels, spec)
    u = rng.normal(size=(2, channels, length))
    want = _causal(u, plan.impulse(length))
    got = _chunked(session, spec, u, sizes)
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-6


@pytest.mark.parametrize("sizes", [[1], [5, 1, 30]])
def test_history_chunks_equal_the_full_convolution(sizes: list[int]) -> None:
    rng = np.random.default_rng(sizes[0])
    h = rng.normal(size=(4, 50)) * np.exp(-np.arange(50) / 15.0)
    spec = StateSpec("history", "history", 0, (4, 49))
    session = _chunk_graph(lambda nb, x, s: history_conv(nb, x, h, s), 4, spec)
    u = rng.normal(size=(3, 4, 80))
    want = _causal(u, h)
    assert np.linalg.norm(_chunked(session, spec, u, sizes) - want) / np.linalg.norm(want) < 1e-6


@pytest.fixture(scope="module")
def modal(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("traced") / "modal"
    result = export_stateful(f"{STREAMING}:modal_lm", out, max_context=96)
    return out, result


def test_modal_model_written_elsewhere_gets_modal_states(modal) -> None:
    out, result = modal
    assert result.reports and all(r.passed for r in result.reports) and result.greedy_checked == 16
    layout = json.loads((out / "hyena_deploy.json").read_text())
    assert layout["family"] == "traced"
    kinds = sorted(s["kind"] for s in layout["states"])
    assert kinds == ["fir", "fir", "modal_complex", "modal_complex"], kinds  # short convs and modal filters
    assert all(s["shape"][-1] <= 2 * traced.STATE_MODES for s in layout["states"])  # O(1): nothing grows
    assert_tensorrt_safe(out / "decode.onnx")
    assert not (out / "genai_config.json").exists()
    inspected = CliRunner().invoke(main, ["inspect", str(out / "decode.onnx"), "--target", "tensorrt-10"])
    assert inspected.exit_code == 0, inspected.output
    ids = {p.name: p for p in default_profile(onnx.load(str(out / "decode.onnx")))}["input_ids"]
    assert (ids.min, ids.opt, ids.max) == ((1, 1), (1, 1), (8, 96))  # decode profile: one token per call


def test_modal_decoding_equals_full_recompute_over_64_tokens(modal) -> None:
    out, _ = modal
    module = load_source(f"{STREAMING}:modal_lm").module
    prompt = np.random.default_rng().integers(0, 48, (3, 9))
    got = Generator(out, threads=1).generate(prompt, 64, chunk=4)
    sequence = torch.from_numpy(prompt)
    with torch.no_grad():
        for _ in range(64):
            sequence = torch.cat([sequence, module(sequence)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert np.array_equal(got, sequence[:, 9:].numpy())


def test_check_reruns_the_verification_on_a_traced_directory(modal) -> None:
    out, _ = modal
    reports, greedy = check_directory(f"{STREAMING}:modal_lm", out)
    assert reports and all(r.passed for r in reports) and greedy == 16


@pytest.mark.parametrize("source, kinds", [
    (f"{ELSEWHERE}:lm", {"history", "fir"}),       # implicit filters, channels last, pad + shifted slices
    (f"{COMPLEX}:s4d", {"history"}),               # (B, H, L) layout, complex kernel folded at trace time
])
def test_other_styles_export_and_generate(tmp_path: Path, source: str, kinds: set[str]) -> None:
    result = CliRunner().invoke(main, ["export", source, "-o", str(tmp_path / "d"), "--stateful",
                                       "--max-context", "64"])
    assert result.exit_code == 0, result.output
    layout = json.loads((tmp_path / "d" / "hyena_deploy.json").read_text())
    assert {s["kind"] for s in layout["states"]} == kinds
    history = [s for s in layout["states"] if s["kind"] == "history"]
    assert all(s["shape"][-1] <= 63 for s in history)  # at most max_context - 1 inputs kept
    generated = CliRunner().invoke(main, ["generate", str(tmp_path / "d"), "--prompt-ids", "1,2,3",
                                          "--max-new-tokens", "5", "--json", str(tmp_path / "g.json")])
    assert generated.exit_code == 0, generated.output
    assert len(json.loads((tmp_path / "g.json").read_text())["sequences"][0]["generated_ids"]) == 5


@pytest.mark.parametrize("factory, needle", [
    ("positional_lm", "depends on the sequence length"),
    ("attention_lm", "depends on the sequence length"),
    ("running_mean_lm", "depends on the sequence length"),
])
def test_what_is_not_position_wise_is_refused_in_one_line(tmp_path: Path, factory: str, needle: str) -> None:
    result = CliRunner().invoke(main, ["export", f"{STREAMING}:{factory}", "-o", str(tmp_path / "d"),
                                       "--stateful", "--max-context", "32"])
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no streaming form" in errors[0] and needle in errors[0], result.output
    assert "Traceback" not in result.output and not (tmp_path / "d").exists()


def test_float_input_models_are_refused(tmp_path: Path) -> None:
    with pytest.raises(HyenaDeployError, match="token ids"):
        export_stateful(f"{ELSEWHERE}:order2", tmp_path / "d", max_context=64)


def test_a_dropped_cache_fails_verification(tmp_path: Path, monkeypatch) -> None:
    """Mutation: a short-conv cache that forgets the previous chunk must make export fail closed."""
    cache = traced._StreamBuilder._cache

    def forgetful(self, node, nb, axis, positions):
        joined = cache(self, node, nb, axis, positions)
        spec = self.specs[-1]
        concat = next(n for n in nb.nodes if n.output[0] == joined)
        zeros = nb.op("Mul", [spec.input, nb.const(np.zeros(1, np.float32))])
        concat.input[0] = zeros
        return joined

    monkeypatch.setattr(traced._StreamBuilder, "_cache", forgetful)
    with pytest.raises(HyenaDeployError, match="parity failed|differs from PyTorch full recompute"):
        export_stateful(f"{ELSEWHERE}:lm", tmp_path / "d", max_context=48)
    assert not (tmp_path / "d").exists()


def test_trace_lengths() -> None:
    assert traced.trace_lengths(4096) == traced.TRACE_LENGTHS
    short, long = traced.trace_lengths(12)
    assert short < long <= 12 and short % 2 == long % 2 == 1
    with pytest.raises(HyenaDeployError, match="too short"):
        traced.trace_lengths(4)


@pytest.fixture(scope="module")
def distilled(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("distilled") / "fits"
    result = CliRunner().invoke(main, ["distill", f"{ELSEWHERE}:lm_256", "-o", str(out),
                                       "--report", str(out.parent / "report.json")])
    assert result.exit_code == 0, result.output
    return out


def test_distill_a_model_written_elsewhere_then_decode_with_modal_states(distilled: Path, tmp_path: Path) -> None:
    config = json.loads((distilled / "distilled_sites.json").read_text())
    assert config["format"] == "hyena-deploy-distilled-sites" and len(config["sites"]) == 2
    report = json.loads((distilled.parent / "report.json").read_text())
    assert max(report["logits_rel_l2"].values()) <= 1e-2
    out = tmp_path / "dir"
    result = CliRunner().invoke(main, ["export", f"{ELSEWHERE}:lm_256", "-o", str(out), "--stateful",
                                       "--distilled", str(distilled), "--max-context", "200"])
    assert result.exit_code == 0, result.output
    assert "equals the distilled graph's full recompute" in result.output
    kinds = sorted(s["kind"] for s in json.loads((out / "hyena_deploy.json").read_text())["states"])
    assert kinds == ["fir", "fir", "modal_complex", "modal_complex"]  # no history left: O(1) per token
    reports, greedy = check_directory(f"{ELSEWHERE}:lm_256", out)  # the fits travel with the directory
    assert reports and all(r.passed for r in reports) and greedy == 16


def test_distilled_fits_belong_to_their_model(distilled: Path, tmp_path: Path) -> None:
    with pytest.raises(HyenaDeployError, match="digests differ"):
        export_stateful(f"{ELSEWHERE}:lm", tmp_path / "x", max_context=64, distilled=distilled)
    with pytest.raises(HyenaDeployError, match="is for models written elsewhere"):
        export_stateful("hyena-tiny", tmp_path / "x", max_context=64, distilled=distilled)
    result = CliRunner().invoke(main, ["export", f"{ELSEWHERE}:lm_256", "-o", str(tmp_path / "y.onnx"),
                                       "--distilled", str(distilled)])
    assert result.exit_code != 0 and "--distilled needs --stateful" in result.output
    assert not (tmp_path / "x").exists()


def test_distill_of_a_model_written_elsewhere_fails_closed(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["distill", f"{ELSEWHERE}:lm_256", "-o", str(tmp_path / "d"),
                                       "--max-order", "2", "--max-logits-err", "1e-4"])
    assert result.exit_code != 0 and "nothing written" in result.output and "worst site" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "d").exists()
