"""The runtime package: torch- and onnx-free for plain graphs, lazy heavy paths, one-line load errors, typed layouts."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from hyena_deploy import onnx_io
from hyena_deploy.jobs.buckets import export_buckets
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.jobs.export import export_model
from hyena_deploy.runtime import EngineModel, OrtModel
from hyena_deploy.runtime.layout import Tokenizer, read_layout
from hyena_deploy.sources import load_source
from tests.test_serve_toy import VOCAB, greedy_reference, layout, weights, write_stateful_dir

# Everything an application install (numpy + onnxruntime + hyena-deploy --no-deps) lacks.
HEAVY = ("torch", "onnx", "onnxscript", "onnx_ir", "onnxsim", "onnxruntime_extensions", "ml_dtypes", "safetensors",
         "click", "rich", "yaml", "scipy", "tensorrt", "stripedhyena")

BLOCKER = """
import importlib.abc, sys
HEAVY = set({heavy!r})
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY:
            raise ImportError(f"blocked for this test: {{name}}")
        return None
sys.meta_path.insert(0, Refuse())
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("runtime")
    export_model("hyena-tiny", out / "tiny.onnx", verify=False)
    export_buckets("hyena-tiny", out / "bucketed.onnx", [16, 64], verify=False)
    write_stateful_dir(out / "toy", weights(4))
    return {"graph": out / "tiny.onnx", "manifest": out / "bucketed.buckets.json", "dir": out}


def _run_blocked(script: str, cwd: Path) -> subprocess.CompletedProcess:
    code = BLOCKER.format(heavy=HEAVY) + textwrap.dedent(script)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_runtime_runs_with_torch_and_onnx_blocked(exported: dict[str, Path]) -> None:
    rng = np.random.default_rng()
    ids = {"a": rng.integers(0, 16, (2, 37)), "b": rng.integers(0, 16, (3, 50))}
    for name, array in ids.items():
        np.save(exported["dir"] / f"ids_{name}.npy", array)
    result = _run_blocked(f"""
        import sys
        import numpy as np
        from hyena_deploy.runtime import BucketedModel, OrtModel
        d = {str(exported["dir"])!r}
        a, b = np.load(d + "/ids_a.npy"), np.load(d + "/ids_b.npy")
        np.save(d + "/out_graph.npy", OrtModel({str(exported["graph"])!r}, threads=1).run([a])[0])
        np.save(d + "/out_bucket.npy", BucketedModel({str(exported["manifest"])!r}, threads=1).run([b])[0])
        from hyena_deploy.runtime.generator import Generator
        np.save(d + "/out_tokens.npy", Generator(d + "/toy", threads=1).generate(a[:1] % {VOCAB}, 5))
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {set(HEAVY)!r})
        print("loaded:", heavy)
    """, exported["dir"])
    assert result.returncode == 0, result.stderr
    assert "loaded: []" in result.stdout
    module = load_source("hyena-tiny").module.eval()
    for name, ids_name in (("graph", "a"), ("bucket", "b")):
        with torch.no_grad():
            expected = module(torch.from_numpy(ids[ids_name])).numpy()
        got = np.load(exported["dir"] / f"out_{name}.npy")
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, err_msg=name)
    tokens = np.load(exported["dir"] / "out_tokens.npy")
    np.testing.assert_array_equal(tokens[0], greedy_reference(weights(4), ids["a"][0] % VOCAB, 5))
    in_process = OrtModel(onnx_io.load(exported["graph"]), threads=1).run([ids["a"]])[0]
    np.testing.assert_allclose(np.load(exported["dir"] / "out_graph.npy"), in_process, rtol=1e-6, atol=1e-6)


def test_path_bytes_and_proto_give_the_same_outputs(exported: dict[str, Path]) -> None:
    ids = np.random.default_rng().integers(0, 16, (2, 23))
    path = exported["graph"]
    outputs = [OrtModel(m).run([ids])[0] for m in (path, str(path), path.read_bytes(), onnx_io.load(path))]
    for other in outputs[1:]:
        np.testing.assert_array_equal(outputs[0], other)


def test_low_precision_and_plugin_graphs_load_from_a_path(tmp_path: Path) -> None:
    """The graphs that need onnx (bf16 view, FFTConv PyOp) still open from their file, lazily."""
    ids = np.random.default_rng().integers(0, 16, (1, 40))
    module = load_source("hyena-tiny").module.eval()
    with torch.no_grad():
        expected = module(torch.from_numpy(ids)).numpy()
    for options, bound in (({"precision": "bf16"}, 3e-2), ({"fftconv": "plugin"}, 1e-4)):
        path = tmp_path / f"{'-'.join(options.values())}.onnx"
        export_model("hyena-tiny", path, verify=False, **options)
        got = OrtModel(path).run([ids])[0]
        assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < bound, options


def test_load_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(HyenaDeployError, match="file not found"):
        OrtModel(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(HyenaDeployError, match="ONNX Runtime cannot load the model") as info:
        OrtModel(junk)
    assert "\n" not in str(info.value)


def test_engine_model_without_tensorrt_says_how_to_install(tmp_path: Path) -> None:
    try:
        import tensorrt  # noqa: F401
    except (ImportError, OSError):
        with pytest.raises(HyenaDeployError, match="TensorRT is not installed"):
            EngineModel(tmp_path / "model.engine")
    else:
        pytest.skip("TensorRT is installed here: the engine path is covered by the TensorRT tests")


CHARACTERS = {"type": "characters", "prefix": [0], "unknown": 5, "table": {"A": 1, "C": 2}}


def test_layout_carries_typed_tokenizer_and_special_tokens(tmp_path: Path) -> None:
    directory = write_stateful_dir(tmp_path / "toy", weights(1))
    plain = read_layout(directory)
    assert plain.tokenizer is None and plain.special_tokens == {"bos": None, "eos": None, "pad": None}
    (directory / "hyena_deploy.json").write_text(json.dumps({**layout(), "tokenizer": CHARACTERS,
                                                             "special_tokens": {"bos": 0, "eos": 3, "pad": None}}))
    typed = read_layout(directory)
    assert typed.tokenizer == Tokenizer("characters", prefix=(0,), table={"A": 1, "C": 2}, unknown=5)
    assert typed.special_tokens == {"bos": 0, "eos": 3, "pad": None}
    (directory / "hyena_deploy.json").write_text(json.dumps({**layout(), "tokenizer": {"type": "bytes"}}))
    assert read_layout(directory).tokenizer == Tokenizer("bytes")


@pytest.mark.parametrize("change, needle", [
    ({"tokenizer": {"type": "words"}}, "tokenizer type 'words'"),
    ({"tokenizer": "bytes"}, "tokenizer must be an object or null"),
    ({"tokenizer": {**CHARACTERS, "table": {"A": VOCAB}}}, "tokenizer id of 'A' must be a token id in 0..10"),
    ({"tokenizer": {**CHARACTERS, "table": {"AB": 1}}}, "single characters"),
    ({"tokenizer": {**CHARACTERS, "prefix": ["x"]}}, "tokenizer prefix id must be a token id"),
    ({"tokenizer": {"type": "characters", "table": {"A": 1}}}, "KeyError: 'prefix'"),
    ({"special_tokens": {"eos": -1}}, "special token eos must be a token id in 0..10, got -1"),
    ({"special_tokens": {"pad": True}}, "special token pad must be a token id"),
    ({"special_tokens": [1]}, "special_tokens must be an object"),
    ({"vocab_size": "11"}, "vocab_size must be a positive integer, got '11'"),
    ({"max_context": 0}, "max_context must be a positive integer"),
])
def test_malformed_layouts_are_one_line_errors(tmp_path: Path, change: dict, needle: str) -> None:
    directory = write_stateful_dir(tmp_path / "toy", weights(1))
    (directory / "hyena_deploy.json").write_text(json.dumps({**layout(), **change}))
    with pytest.raises(HyenaDeployError, match="malformed layout") as info:
        read_layout(directory)
    assert needle in str(info.value) and "\n" not in str(info.value)
