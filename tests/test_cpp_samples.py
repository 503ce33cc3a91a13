"""samples/cpp: ort_generate, built against ONNXRUNTIME_ROOT, prints the Python Generator's tokens."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hyena_deploy.runtime.generator import Generator
from tests.test_serve_toy import VOCAB, weights, write_stateful_dir

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "cpp"
ROOT = os.environ.get("ONNXRUNTIME_ROOT")

pytestmark = pytest.mark.skipif(
    not ROOT or not (Path(ROOT) / "include" / "onnxruntime_cxx_api.h").is_file() or not shutil.which("cmake"),
    reason="ort_generate needs ONNX Runtime's headers and library: set ONNXRUNTIME_ROOT (include/, lib/) and "
           "install cmake")


@pytest.fixture(scope="module")
def ort_generate(tmp_path_factory) -> Path:
    build = tmp_path_factory.mktemp("cpp")
    for command in (["cmake", "-S", str(SAMPLES), "-B", str(build), f"-DONNXRUNTIME_ROOT={ROOT}",
                     "-DCMAKE_BUILD_TYPE=Release"], ["cmake", "--build", str(build), "--target", "ort_generate"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    return build / "ort_generate"


def _run(binary: Path, directory: Path, prompt: np.ndarray, count: int) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), str(directory), "--prompt-ids", ",".join(map(str, prompt)),
                           "--max-new-tokens", str(count)], capture_output=True, text=True, timeout=120)


def _stateful_dirs(root: Path) -> list[Path]:
    from hyena_deploy.stateful.export import export_stateful

    toy = write_stateful_dir(root / "toy", weights(5))
    export_stateful("hyena-tiny", root / "tiny", max_context=64, verify=False)
    return [toy, root / "tiny"]


def test_ort_generate_prints_the_generator_tokens(ort_generate: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng()
    for directory in _stateful_dirs(tmp_path):
        generator = Generator(directory)
        for length in (1, 7):
            prompt = rng.integers(0, min(VOCAB, generator.vocab_size), length)
            done = _run(ort_generate, directory, prompt, 12)
            assert done.returncode == 0, done.stderr
            want = generator.generate(prompt[None], 12)[0]
            assert done.stdout.strip() == ",".join(map(str, want)), (directory.name, prompt)


def test_ort_generate_refuses_bad_input_in_one_line(ort_generate: Path, tmp_path: Path) -> None:
    directory = write_stateful_dir(tmp_path / "toy", weights(6))
    for args, needle in (([str(directory), "--prompt-ids", str(VOCAB)], "outside the vocabulary"),
                         ([str(tmp_path / "missing"), "--prompt-ids", "1"], "no hyena_deploy.json"),
                         ([str(directory)], "usage")):
        done = subprocess.run([str(ort_generate), *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and needle in done.stderr and len(done.stderr.strip().splitlines()) == 1
