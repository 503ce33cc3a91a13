"""The wheel: built from a copy of the source tree, installed into a fresh venv, run from outside the tree.

Offline: ``pip wheel --no-deps --no-build-isolation`` uses this environment's setuptools, and the
fresh venv reaches this environment's dependencies (torch, onnx, ...) through a ``.pth`` line
(directories named in a ``.pth`` file are not scanned for further ``.pth`` files, so this
checkout's editable install stays invisible there).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "hyena_deploy", "exporters", "samples")


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([str(a) for a in args], cwd=cwd, env={**env, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(venv, its site-packages) with the freshly built wheel installed, nothing else."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    for name in SOURCES:  # a copy, so that the build leaves no build/ or *.egg-info in the checkout
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                 "-w", root / "dist", source, cwd=root)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (root / "dist").glob("hyena_deploy-*.whl")
    venv = root / "venv"
    made = _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=root)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                     cwd=root).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q",
                     wheel, cwd=root)
    assert installed.returncode == 0, installed.stderr[-2000:]
    return venv, site


def test_sample_exports_from_the_installed_wheel(installed: tuple[Path, Path], tmp_path: Path) -> None:
    venv, site = installed
    where = _run(venv / "bin" / "python", "-c", "import hyena_deploy; print(hyena_deploy.__file__)", cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout + where.stderr
    assert (site / "hyena_deploy" / "samples" / "hyena-tiny" / "model.safetensors").is_file()
    assert not (site / "hyena_deploy" / "samples").is_symlink()
    result = _run(venv / "bin" / "hyena-deploy", "export", "hyena-tiny", "-o", "x.onnx", "--seq-len", "64",
                  cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-1500:] + result.stderr[-1500:]
    assert (tmp_path / "x.onnx").is_file() and "PASSED" in result.stdout


def test_families_install_under_the_project_namespace(installed: tuple[Path, Path]) -> None:
    _, site = installed
    assert not (site / "exporters").exists()
    assert (site / "hyena_deploy" / "exporters" / "safari.py").is_file()
