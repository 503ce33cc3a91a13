"""ONNX Runtime GenAI generates from a stateful directory as it stands (modal/FIR-only models).

GenAI reads the config's ``pad_token_id`` as right padding and, without an end id, stops at it; the
config once gave 0, a real token, so prompts ending in 0 were read one token short and a generated 0
ended the row. The prompts below end in 0 and hold it inside, and the model emits it.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hyena_deploy.runtime.generator import Generator
from hyena_deploy.sources import load_source
from hyena_deploy.stateful.export import export_stateful
from hyena_deploy.stateful.genai import genai_config
from hyena_deploy.stateful.layout import StateSpec, position_spec

og = pytest.importorskip("onnxruntime_genai", reason="onnxruntime-genai is not installed (pip install "
                                                      "'hyena-deploy[genai]'; it needs onnxruntime >= 1.31)")
ROOT = Path(__file__).resolve().parents[1]


def _striped_hyena(directory: Path, hyena_only: bool) -> None:
    spec = importlib.util.spec_from_file_location("make_sh_genai", ROOT / "samples/stripedhyena/make_checkpoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_checkpoint(directory, hyena_only=hyena_only)


def _genai_greedy(directory: Path, prompt: np.ndarray, tokens: int) -> list[int]:
    """GenAI's greedy tokens after ``prompt`` (L,), one intra-op thread: up to ``tokens``, ending at its end id."""
    config = og.Config(str(directory))
    config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": 1}}}}))
    model = og.Model(config)
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=prompt.size + tokens, do_sample=False)
    generator = og.Generator(model, params)
    generator.append_tokens(prompt[None].astype(np.int32))
    out = []
    while not generator.is_done():
        generator.generate_next_token()
        out.append(int(generator.get_next_tokens()[0]))
    return out


def _prompts_with_zeros(vocab: int, length: int, count: int) -> list[np.ndarray]:
    """Seeded prompts: half end in token 0, the others hold it in the middle."""
    rng = np.random.default_rng(11)
    prompts = [rng.integers(1, vocab, length) for _ in range(count)]
    for i, prompt in enumerate(prompts):
        prompt[-1 if i % 2 == 0 else length // 2] = 0
    return prompts


def _assert_genai_equals_generator(directory: Path, prompts: list[np.ndarray], tokens: int) -> list[list[int]]:
    """GenAI's tokens equal the Generator's, stopped at GenAI's end id (a stand-in where the model has none)."""
    ends = json.loads((directory / "genai_config.json").read_text())["model"]["eos_token_id"]
    generator = Generator(directory, threads=1)
    ours = [generator.generate_rows([p], tokens, stop_tokens=ends).sequences[0].tolist() for p in prompts]
    for prompt, want in zip(prompts, ours):
        assert _genai_greedy(directory, prompt, tokens) == want, prompt.tolist()
    return ours


def test_onnxruntime_genai_greedy_equals_generator_and_pytorch(tmp_path: Path) -> None:
    _striped_hyena(tmp_path / "ckpt", hyena_only=True)
    out = tmp_path / "out"
    export_stateful(str(tmp_path / "ckpt"), out, max_context=64)
    config = json.loads((out / "genai_config.json").read_text())
    assert config["model"]["decoder"]["num_hidden_layers"] == 3
    prompts = [np.random.default_rng(3).integers(0, 256, 7), *_prompts_with_zeros(256, 7, 6)]
    ours = _assert_genai_equals_generator(out, prompts, 40)
    assert any(0 in row for row in ours[1:])  # the model emits 0 (what the old config ended rows at)
    module = load_source(str(tmp_path / "ckpt")).module.eval()
    for prompt, row in zip(prompts[:2], ours):  # a plain prompt and one ending in 0: PyTorch agrees
        sequence = torch.from_numpy(prompt[None])
        with torch.no_grad():
            for _ in range(len(row)):
                sequence = torch.cat([sequence, module(sequence)[:, -1].argmax(-1, keepdim=True)], dim=1)
        assert row == sequence[0, prompt.size:].tolist()


def test_genai_config_special_ids() -> None:
    """Undeclared pad: an id outside the vocabulary; undeclared end: the last id (GenAI needs one inside)."""
    specs = [StateSpec("fir", "conv_state", 0, (96, 2)), StateSpec("modal", "recurrent_state", 0, (32, 2))]
    model = genai_config(specs, 512, 64, {"bos": None, "eos": None, "pad": None})["model"]
    assert (model["pad_token_id"], model["eos_token_id"]) == (512, [511])
    model = genai_config(specs, 512, 64, {"bos": 1, "eos": 0, "pad": 3})["model"]
    assert (model["bos_token_id"], model["pad_token_id"], model["eos_token_id"]) == (1, 3, [0])


def test_no_genai_config_for_layouts_it_cannot_drive() -> None:
    """History states, attention KV (with the position) and layers of different shapes are not GenAI's layout."""
    def pair(layer: int, kind: str = "modal_complex", modes: int = 2) -> list[StateSpec]:
        return [StateSpec("fir", "conv_state", layer, (96, 2)),
                StateSpec(kind, "recurrent_state", layer, (32, modes, 2))]

    assert genai_config(pair(0) + pair(1), 512, 64, {})["model"]["decoder"]["num_hidden_layers"] == 2
    assert genai_config(pair(0) + pair(1, modes=3), 512, 64, {}) is None
    assert genai_config(pair(0) + pair(1, kind="history"), 512, 64, {}) is None
    attention = [StateSpec("key", "key", 1, (2, 64, 8)), StateSpec("value", "value", 1, (2, 64, 8)), position_spec()]
    assert genai_config(pair(0) + attention, 512, 64, {}) is None


def test_distilled_lm_gets_modal_states_that_genai_runs(tmp_path: Path) -> None:
    """A hyena_lm whose filters have modal_form() (what distillation writes) exports modal states GenAI can drive."""
    from hyena_deploy.loaded import LoadedModel
    from hyena_deploy.models.lm import HyenaLM, HyenaLMConfig
    from hyena_deploy.models.modal_filter import ModalFilter

    torch.manual_seed(0)
    lm = HyenaLM(HyenaLMConfig(vocab_size=16, d_model=16, n_layer=2, d_inner=32, l_max=128)).eval()
    for block in lm.layers:
        poles = torch.polar(0.5 + 0.45 * torch.rand(16, 4, dtype=torch.float64),
                            torch.rand(16, 4, dtype=torch.float64) * 3)
        residues = 0.3 * torch.complex(torch.randn(16, 4, dtype=torch.float64), torch.randn(16, 4, dtype=torch.float64))
        block.mixer.filter_fn = ModalFilter(poles, residues, torch.randn(16), length=128)
    loaded = LoadedModel(module=lm, example_inputs=(torch.zeros(1, 8, dtype=torch.long),), name="distilled",
                         source_sha256="test", max_seq_len=128, vocab_size=16, output_names=["logits"])
    result = export_stateful(loaded, tmp_path / "out", max_context=64)
    assert [s["kind"] for s in result.layout["states"]] == ["fir", "modal_complex"] * 2
    rng = np.random.default_rng(7)
    _assert_genai_equals_generator(tmp_path / "out", [rng.integers(0, 16, 5), *_prompts_with_zeros(16, 5, 6)], 30)
