"""``hyena-deploy bench --decode``: one real (tiny) run end to end, its settings and its errors. No timing asserts."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hyena_deploy.bench.decode import parse_settings, stripedhyena_unavailable
from hyena_deploy.cli import main
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.stateful.export import export_stateful


ROOT = Path(__file__).resolve().parent.parent


def run(*args: str):
    return CliRunner().invoke(main, ["bench", *map(str, args)])


def one_line_error(result) -> str:
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 1 and len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


def test_decode_bench_writes_every_cell_the_ratios_and_a_plot(tmp_path: Path) -> None:
    out, png = tmp_path / "decode.json", tmp_path / "decode.png"
    result = run("hyena-tiny", "--decode", "--contexts", "64,256", "--recompute-contexts", "64", "--baselines",
                 "full,stripedhyena", "--tokens", "2", "--repeats", "1", "--warmup", "0", "--json", out, "--plot", png)
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    settings = payload["settings"]
    assert settings["contexts"] == [64, 256] and settings["recompute_contexts"] == [64] and settings["threads"] == 2
    assert payload["states"].startswith("random") and "peak RSS" in payload["memory"] and payload["machine"]["cpu"]
    cells = {(c["series"], c["context"], c["batch"]): c for c in payload["cells"]}
    assert set(cells) == {("stateful", 64, 1), ("stateful", 256, 1), ("full", 64, 1)}
    for cell in cells.values():
        assert len(cell["times_ms"]) == (2 if cell["series"] == "stateful" else 1)
        assert cell["ms_per_token"] > 0 and cell["tokens_per_s"] == pytest.approx(1e3 / cell["ms_per_token"])
        assert cell["peak_total_mb"] >= cell["peak_mb"]
    assert cells["stateful", 256, 1]["state_mb"] > 3 * cells["stateful", 64, 1]["state_mb"]  # the history grows
    stateful = payload["exports"]["stateful"]
    assert {stateful[c]["family"] for c in ("64", "256")} == {"hyena_lm"}  # history grows: one export each
    assert max(stateful[c]["verify_rel_l2"] for c in ("64", "256")) <= 1e-5
    assert payload["exports"]["full"]["64"]["fftconv"] == "auto"
    ratios = payload["ratios"]
    assert ratios["stateful_speedup_vs_full"]["batch1"]["64"] == pytest.approx(
        cells["full", 64, 1]["ms_per_token"] / cells["stateful", 64, 1]["ms_per_token"])
    assert ratios["stateful_ms_per_token_256_vs_64"]["batch1"] == pytest.approx(
        cells["stateful", 256, 1]["ms_per_token"] / cells["stateful", 64, 1]["ms_per_token"])
    assert payload["skipped"] == {"stripedhyena": "hyena-tiny is a hyena_lm model, not a StripedHyena checkpoint"}
    assert "skipped stripedhyena: hyena-tiny is a hyena_lm model" in result.output
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_stripedhyena_checkpoints_get_the_packages_own_recurrent_generation(tmp_path: Path) -> None:
    pytest.importorskip("stripedhyena.model", reason="stripedhyena (pip install stripedhyena==0.2.2 --no-deps) is "
                                                      "not importable")
    spec = importlib.util.spec_from_file_location("sh_make_checkpoint",
                                                  ROOT / "samples" / "stripedhyena" / "make_checkpoint.py")
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    maker.write_checkpoint(tmp_path / "sh", "hf", hyena_only=True, seed=1)
    out = tmp_path / "decode.json"
    result = run(tmp_path / "sh", "--decode", "--contexts", "32,64", "--recompute-contexts", "64",
                 "--baselines", "stripedhyena", "--batch", "1,2",
                 "--tokens", "2", "--warmup", "0", "--json", out)
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["skipped"] == {}
    assert payload["exports"]["stateful"]["32"] == {"graph_of": "64", "family": "stripedhyena"}  # modal: one graph
    cells = {(c["series"], c["context"], c["batch"]) for c in payload["cells"]}
    assert cells == {("stateful", c, b) for c in (32, 64) for b in (1, 2)} | {("stripedhyena", 64, b) for b in (1, 2)}
    assert set(payload["ratios"]["stateful_speedup_vs_stripedhyena"]) == {"batch1", "batch2"}


@pytest.mark.parametrize("option", [("--lengths", "1k"), ("--backends", "torch")])
def test_full_sequence_options_with_decode_are_a_usage_error(option: tuple[str, str]) -> None:
    assert f"{option[0]} does not go with --decode" in one_line_error(run("hyena-tiny", "--decode", *option))


def test_decode_options_without_decode_are_a_usage_error() -> None:
    assert "--contexts does not go with a full-sequence bench" in one_line_error(run("hyena-tiny", "--contexts", "1k"))


def test_a_context_past_the_maximum_fails_before_measuring() -> None:
    error = one_line_error(run("hyena-tiny", "--decode", "--contexts", "1k,4k"))
    assert "context 4k (4096) is past the model's maximum length 2048" in error


def test_a_source_without_a_stateful_form_gets_the_exporters_error(tmp_path: Path) -> None:
    factory = tmp_path / "running_mean.py"
    factory.write_text("import torch\n"
                       "class RunningMean(torch.nn.Module):  # causal, but its state is no layer's: a running sum\n"
                       "    def __init__(self):\n"
                       "        super().__init__()\n"
                       "        self.emb, self.head = torch.nn.Embedding(8, 4), torch.nn.Linear(4, 8)\n"
                       "    def forward(self, ids):\n"
                       "        x = self.emb(ids).cumsum(1)\n"
                       "        return self.head(x / torch.arange(1, ids.shape[1] + 1)[:, None])\n"
                       "def make():\n"
                       "    return RunningMean()\n")
    source = f"{factory}:make"
    with pytest.raises(HyenaDeployError) as raised:
        export_stateful(source, tmp_path / "out", max_context=16)
    assert one_line_error(run(source, "--decode", "--contexts", "16")) == f"error: {raised.value}"


def test_settings_defaults_and_bad_values() -> None:
    settings = parse_settings(65536, tokens=4, threads=2, warmup=1, repeats=1, rounds=1)
    assert settings.contexts == [1024, 8192, 65536] and settings.recompute_contexts == [1024, 8192]
    assert settings.baselines == ["full", "torch", "stripedhyena"] and settings.batches == [1]
    assert parse_settings(2048).contexts == [1024] and parse_settings(512).contexts == [512]
    assert parse_settings(None, "64k", batches="8,1").recompute_contexts == [65536]  # nothing up to 8k: the shortest
    assert parse_settings(None, "64k", batches="8,1").batches == [1, 8]
    for kwargs, needle in [({"contexts": "1k", "recompute": "2k"}, "recompute context 2k is not one of --contexts"),
                           ({"baselines": "full,eager"}, "unknown baseline 'eager'"),
                           ({"batches": "0"}, "bad batch '0'"), ({"contexts": "1"}, "contexts must be >= 2"),
                           ({"tokens": 0}, "--tokens"), ({"states": "zeros"}, "--states must be one of")]:
        with pytest.raises(HyenaDeployError, match=needle):
            parse_settings(None, **kwargs)


def test_stripedhyena_baseline_skip_reasons(monkeypatch) -> None:
    assert "not a StripedHyena checkpoint" in stripedhyena_unavailable("evo2", "m", {})
    monkeypatch.setitem(sys.modules, "stripedhyena", None)
    assert "stripedhyena package is not installed" in stripedhyena_unavailable("stripedhyena", "m", {})
