"""Stateful export + Generator + ``generate``: token for token against PyTorch full recompute, and bad input."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from hyena_deploy.cli import main
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.runtime.generator import Generator
from hyena_deploy.runtime.layout import Tokenizer, read_layout
from hyena_deploy.sources import load_source
from hyena_deploy.stateful.export import check_directory, export_stateful
from hyena_deploy.compat import TENSORRT_10, check_compatibility, verdict
from tests.helpers import FORBIDDEN_FOR_TENSORRT, assert_tensorrt_safe

ROOT = Path(__file__).resolve().parents[1]
CONTEXT = 160


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, needle: str) -> None:
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0], result.output
    assert "Traceback" not in result.output


def assert_decode_tensorrt_safe(path: Path) -> None:
    """No DFT/control flow and the tensorrt-10 rules pass (Exp/Sin/Cos stay: pole powers and rotary depend on T)."""
    model = onnx.load(str(path))
    assert not {n.op_type for n in model.graph.node} & FORBIDDEN_FOR_TENSORRT
    assert verdict(check_compatibility(model, TENSORRT_10))


def torch_greedy(module: torch.nn.Module, prompt: np.ndarray, tokens: int) -> np.ndarray:
    """Greedy tokens by re-running the whole sequence per token (the reference)."""
    sequence = torch.from_numpy(prompt)
    with torch.no_grad():
        for _ in range(tokens):
            nxt = module(sequence)[:, -1].argmax(-1, keepdim=True)
            sequence = torch.cat([sequence, nxt], dim=1)
    return sequence[:, prompt.shape[1]:].numpy()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stateful") / "tiny"
    result = export_stateful("hyena-tiny", out, max_context=CONTEXT)
    assert result.reports and all(r.passed for r in result.reports)
    assert result.greedy_checked == 16
    return out


def test_directory_layout(tiny: Path) -> None:
    layout = json.loads((tiny / "hyena_deploy.json").read_text())
    assert layout["format"] == "hyena-deploy-stateful" and layout["graphs"] == {"decode": "decode.onnx",
                                                                                 "prefill": None}
    assert layout["vocab_size"] == 16 and layout["max_context"] == CONTEXT
    states = {s["input"]: s for s in layout["states"]}
    assert states["past_key_values.1.conv_state"] == {
        "input": "past_key_values.1.conv_state", "output": "present.1.conv_state", "shape": ["batch", 192, 2],
        "dtype": "float32", "layer": 1, "kind": "fir"}
    assert states["past_key_values.0.history_0"]["shape"] == ["batch", 64, CONTEXT - 1]
    assert sorted(p.name for p in tiny.iterdir()) == ["decode.onnx", "hyena_deploy.json"]
    assert_tensorrt_safe(tiny / "decode.onnx")


def test_check_directory_reruns_the_verification(tiny: Path, tmp_path: Path) -> None:
    reports, greedy = check_directory("hyena-tiny", tiny)
    assert reports and all(r.passed for r in reports) and greedy == 16
    with pytest.raises(HyenaDeployError, match="exported from"):
        check_directory("hyena-tiny-order3", tiny)


def test_greedy_64_tokens_equal_full_recompute(tiny: Path) -> None:
    module = load_source("hyena-tiny").module.eval()
    prompt = np.random.default_rng().integers(0, 16, (3, 13))
    got = Generator(tiny, threads=1).generate(prompt, 64, chunk=5)
    assert np.array_equal(got, torch_greedy(module, prompt, 64))


def test_decode_logits_after_odd_prompts_match_pytorch(tiny: Path) -> None:
    module = load_source("hyena-tiny").module.eval()
    generator = Generator(tiny)
    ids = np.random.default_rng().integers(0, 16, (3, 60))
    with torch.no_grad():
        want = module(torch.from_numpy(ids)).numpy()
    for prompt in (1, 7, 33):
        logits, states = generator.prefill(ids[:, :prompt], chunk=7)
        pieces = [logits]
        for t in range(prompt, 60):
            logits, states = generator.step(ids[:, t:t + 1], states)
            pieces.append(logits)
        got = np.concatenate(pieces, axis=1)
        assert np.linalg.norm(got - want) / np.linalg.norm(want) <= 1e-5


def test_ragged_prompts_decode_together_exactly(tiny: Path) -> None:
    generator = Generator(tiny)
    rng = np.random.default_rng()
    prompts = [rng.integers(0, 16, n) for n in (1, 9, 30)]
    together = generator.generate_rows(prompts, 12).sequences
    for prompt, row in zip(prompts, together):
        assert np.array_equal(row, generator.generate(prompt[None], 12)[0])


def test_sampling_is_seeded_and_top_k_1_is_greedy(tiny: Path) -> None:
    generator = Generator(tiny)
    prompt = np.array([[1, 2, 3, 4]])
    first = generator.generate(prompt, 20, temperature=1.5, top_p=0.9, seed=7)
    assert np.array_equal(first, generator.generate(prompt, 20, temperature=1.5, top_p=0.9, seed=7))
    assert not np.array_equal(first, generator.generate(prompt, 20, temperature=50.0, seed=8))
    assert np.array_equal(generator.generate(prompt, 20, temperature=1.0, top_k=1, seed=3),
                          generator.generate(prompt, 20))


def test_stop_tokens_end_rows(tiny: Path) -> None:
    generator = Generator(tiny)
    greedy = generator.generate(np.array([[5, 6, 7]]), 10)[0]
    stop = int(greedy[3])
    result = generator.generate_rows([np.array([5, 6, 7])], 10, stop_tokens=[stop])
    row = result.sequences[0]
    assert row[-1] == stop and len(row) == list(greedy).index(stop) + 1


def test_generator_errors(tiny: Path, tmp_path: Path) -> None:
    generator = Generator(tiny)
    with pytest.raises(HyenaDeployError, match="past the max context"):
        generator.generate(np.zeros((1, CONTEXT - 3), dtype=np.int64), 4)
    with pytest.raises(HyenaDeployError, match="outside the vocabulary"):
        generator.generate(np.array([[1, 16]]), 2)
    with pytest.raises(HyenaDeployError, match="no hyena_deploy.json"):
        Generator(tmp_path)
    (tmp_path / "hyena_deploy.json").write_text((tiny / "hyena_deploy.json").read_text())
    with pytest.raises(HyenaDeployError, match="decode.onnx is missing"):
        Generator(tmp_path)


class NaNFrom:
    """A decode session whose logits are NaN from its ``call``-th run on (what an overflowing graph returns)."""

    def __init__(self, session, call: int) -> None:
        self.session, self.call, self.calls = session, call, 0

    def get_inputs(self):
        return self.session.get_inputs()

    def run(self, outputs, feed):
        self.calls += 1
        logits, *states = self.session.run(outputs, feed)
        return [np.full_like(logits, np.nan) if self.calls >= self.call else logits, *states]


def test_nan_logits_stop_generation_naming_the_token(tiny: Path) -> None:
    """NaN logits are a one-line error naming the token, not argmax's silent token 0."""
    session = Generator(tiny).session
    for call, needle in ((1, "generated token 1: the logits of row 0 are NaN or +Inf (from the prefill's last "
                               "position)"),
                         (3, "generated token 3: the logits of row 0 are NaN or +Inf (from decode step 2)")):
        generator = Generator.from_session(read_layout(tiny), NaNFrom(session, call))
        with pytest.raises(HyenaDeployError) as info:
            generator.generate(np.array([[1, 2, 3]]), 8)
        assert needle in str(info.value) and "\n" not in str(info.value)


def test_from_session_types_the_layout_dict(tiny: Path) -> None:
    """The exporter's entry point: the ``hyena_deploy.json`` dict is typed and checked like the file."""
    document = json.loads((tiny / "hyena_deploy.json").read_text())
    session = Generator(tiny).session
    generator = Generator.from_session(document, session)
    assert generator.layout.states == read_layout(tiny).states and generator.max_context == CONTEXT
    prompt = np.array([[3, 1, 4, 1, 5]])
    assert np.array_equal(generator.generate(prompt, 6), Generator(tiny).generate(prompt, 6))
    with pytest.raises(HyenaDeployError, match="stateful layout: malformed layout .*tokenizer type 'words'"):
        Generator.from_session({**document, "tokenizer": {"type": "words"}}, session)


def test_generate_cli_json_and_errors(tiny: Path, tmp_path: Path) -> None:
    batch = tmp_path / "prompts.txt"
    batch.write_text("ids:1,2,3\nids:4,5,6,7,8\n")
    report = tmp_path / "out.json"
    result = run("generate", tiny, "--batch-file", batch, "--max-new-tokens", 70, "--json", report)
    assert result.exit_code == 0, result.output
    payload = json.loads(report.read_text())
    assert [s["prompt_ids"] for s in payload["sequences"]] == [[1, 2, 3], [4, 5, 6, 7, 8]]
    assert all(len(s["generated_ids"]) == 70 for s in payload["sequences"])
    assert payload["decode_ms_per_token"] > 0 and payload["tokens_per_s"] > 0
    generator = Generator(tiny)
    assert payload["sequences"][0]["generated_ids"] == generator.generate(np.array([[1, 2, 3]]), 70)[0].tolist()
    assert_one_line_error(run("generate", tiny, "--prompt-ids", "1,x"), "comma-separated token ids")
    assert_one_line_error(run("generate", tiny, "--prompt", "hi"), "no tokenizer")
    assert_one_line_error(run("generate", tiny, "--prompt-ids", "1", "--max-new-tokens", CONTEXT), "max context")
    assert_one_line_error(run("generate", tmp_path / "nothing", "--prompt-ids", "1"), "not a directory")
    assert_one_line_error(run("generate", tiny), "exactly one of")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "decode.onnx").write_bytes((tiny / "decode.onnx").read_bytes())
    document = json.loads((tiny / "hyena_deploy.json").read_text())
    (broken / "hyena_deploy.json").write_text(json.dumps({**document, "special_tokens": {"eos": 99}}))
    assert_one_line_error(run("generate", broken, "--prompt-ids", "1"), "special token eos must be a token id")


def test_export_cli_stateful_and_its_errors(tmp_path: Path) -> None:
    out = tmp_path / "order3"
    result = run("export", "hyena-tiny-order3", "-o", out, "--stateful", "--max-context", 64)
    assert result.exit_code == 0, result.output
    assert "greedy decoding equals PyTorch" in result.output
    kinds = [s["kind"] for s in json.loads((out / "hyena_deploy.json").read_text())["states"]]
    assert kinds == ["fir", "history", "history"] * (len(kinds) // 3) and kinds  # order 3: two long convolutions
    assert_one_line_error(run("export", "hyena-tiny", "-o", tmp_path / "x", "--max-context", 8), "needs --stateful")
    assert_one_line_error(run("export", "hyena-tiny", "-o", tmp_path / "x", "--stateful", "--max-context", 99999),
                          "past the model's maximum")
    assert_one_line_error(run("export", "hyena-tiny", "-o", tmp_path / "x", "--stateful", "--buckets", "16"),
                          "cannot be combined with --stateful")
    positional = f"{ROOT / 'tests' / 'models_streaming.py'}:positional_lm"  # not position-wise: refused, not guessed
    assert_one_line_error(run("export", positional, "-o", tmp_path / "x", "--stateful", "--max-context", 64),
                          "no streaming form")
    assert not (tmp_path / "x").exists()


def _sample_script(family: str):
    path = ROOT / "samples" / family / "make_checkpoint.py"
    spec = importlib.util.spec_from_file_location(f"make_{family}_gen", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("family, make, kinds", [
    ("safari", lambda m, d: m.write_checkpoint(d, kind="lm", order=2, hyena_code="src"), {"fir", "history"}),
    ("hyenadna", lambda m, d: m.write_hf(d), {"fir", "history"}),
    ("evo2", lambda m, d: m.write_checkpoint(d), {"fir", "modal", "key", "value", "position"}),
    ("stripedhyena", lambda m, d: m.write_checkpoint(d, hyena_only=False),
     {"fir", "modal_complex", "key", "value", "position"}),
])
def test_family_samples_export_and_generate(family: str, make, kinds: set[str], tmp_path: Path) -> None:
    """Every family: verified export, greedy equal to full recompute, ragged prompts decoded together exactly."""
    make(_sample_script(family), tmp_path / "ckpt")
    result = export_stateful(str(tmp_path / "ckpt"), tmp_path / "out", max_context=80)
    assert all(r.passed for r in result.reports)
    assert {s["kind"] for s in result.layout["states"]} == kinds
    assert_decode_tensorrt_safe(tmp_path / "out" / "decode.onnx")
    module = load_source(str(tmp_path / "ckpt")).module.eval()
    generator = Generator(tmp_path / "out")
    rng = np.random.default_rng()
    prompt = rng.integers(7, 12, (2, 9))
    assert np.array_equal(generator.generate(prompt, 64, chunk=4), torch_greedy(module, prompt, 64))
    prompts = [rng.integers(7, 12, n) for n in (3, 11)]
    together = generator.generate_rows(prompts, 8).sequences
    for row, alone in zip(together, prompts):
        assert np.array_equal(row, torch_greedy(module, alone[None], 8)[0])
    if family in ("evo2", "stripedhyena"):  # vortex CharLevelTokenizer: UTF-8 bytes
        assert generator.layout.tokenizer == Tokenizer("bytes")
        assert generator.encode("ACé").tolist() == [65, 67, 195, 169] and generator.decode([65, 67]) == "AC"
    if family == "hyenadna":
        assert generator.layout.tokenizer.kind == "characters"
        assert generator.encode("ACgt").tolist() == [0, 7, 8, 9, 10]
        assert generator.decode([7, 8, 9, 10, 11]) == "ACGTN"
