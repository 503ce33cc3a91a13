"""Drive a benchmark: export each graph per length, measure every (backend, length) in its own process."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from pathlib import Path

import numpy as np

from hyena_deploy import tool_version
from hyena_deploy.bench.spec import Backend, format_length, parse_backends, parse_lengths
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.jobs.export import export_model
from hyena_deploy.sources import load_source
from hyena_deploy.verify.metrics import Tolerance, compare_output

Step = Callable[[int, int, str], None]  # (steps done, steps in all, what runs next)
BATCH = 1


@dataclass(frozen=True)
class Measurement:
    """Median latency and peak memory of one backend at one length (batch 1)."""

    backend: str
    length: int
    median_ms: float
    times_ms: list[float]
    peak_mb: float        # peak RSS minus RSS after the runtime's imports: model, constants, activations
    peak_total_mb: float  # peak RSS of the whole worker process
    speedup: float | None = None  # PyTorch eager median / this median (same run)
    rel_l2: float | None = None   # first output vs PyTorch eager's

    @property
    def tokens_per_s(self) -> float:
        return BATCH * self.length / (self.median_ms / 1e3)


@dataclass
class BenchResult:
    """Everything one ``bench`` run measured, with the machine it ran on."""

    source: str
    threads: int
    lengths: list[int]
    backends: list[str]
    measurements: list[Measurement]
    skipped: dict[str, str] = field(default_factory=dict)
    machine: dict[str, object] = field(default_factory=dict)

    def get(self, backend: str, length: int) -> Measurement | None:
        return next((m for m in self.measurements if m.backend == backend and m.length == length), None)


def cpu_model() -> str:
    """The CPU's model name and widest vector extension, from /proc/cpuinfo where there is one."""
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "unknown CPU")
    flags = set(next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), []))
    vector = next((isa for flag, isa in (("avx512f", "AVX-512"), ("avx2", "AVX2")) if flag in flags), None)
    return f"{name} ({vector})" if vector else name


def machine_info(threads: int) -> dict[str, object]:
    """CPU, core count, thread setting, load and library versions, recorded with every result."""
    return {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "threads": threads, "batch": BATCH,
            "load_average_1m": round(os.getloadavg()[0], 2), "python": platform.python_version(),
            "torch": version("torch"), "onnxruntime": version("onnxruntime"), "hyena_deploy": tool_version()}


def trt_unavailable() -> str | None:
    """Why the trt backend cannot run here, or None when TensorRT and a CUDA GPU are present."""
    from hyena_deploy.tensorrt import trt_api

    try:
        trt_api.environment()
    except HyenaDeployError as exc:
        return str(exc)
    return None


def run_worker(module: str, job: dict, work: Path, threads: int, what: str) -> dict:
    """``job`` run by ``python -m module JOB.json`` in a fresh process with ``threads`` math threads: the JSON of
    its last output line, or a one-line error naming ``what`` failed and the worker's last stderr line."""
    job_file = work / "job.json"
    job_file.write_text(json.dumps(job))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, "-m", module, str(job_file)], capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        detail = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        raise HyenaDeployError(f"{what} failed: {detail[-1] if detail else f'exit code {done.returncode}'}")
    return json.loads(lines[-1])


def _export(loaded, backend: Backend, length: int, path: Path) -> None:
    if backend.kind == "ort":
        strategy, target = backend.strategy, backend.target
    else:
        from hyena_deploy.tensorrt import trt_api
        from hyena_deploy.tensorrt.plan import compat_target

        strategy, target = "auto", compat_target(trt_api.trt_version())
    export_model(loaded, path, fftconv=strategy, target=target, seq_len=length, batch=BATCH, verify=False)


def run_bench(source: str, lengths: str | None, backends: str, threads: int = 2, repeats: int = 5,
              warmup: int = 1, rounds: int = 1, step: Step = lambda done, total, what: None) -> BenchResult:
    """Measure ``backends`` at ``lengths`` side by side; see :mod:`hyena_deploy.bench.worker` for what is timed.

    Per length, every graph is exported first; then ``rounds`` times every backend runs once in a
    fresh worker (round robin, so drifting machine load hits all alike). The median is over all
    timed runs of all rounds, the peak memory the largest of the rounds.
    """
    if min(threads, repeats, rounds) < 1 or warmup < 0:
        raise HyenaDeployError("--threads, --repeats and --rounds must be >= 1, --warmup >= 0")
    loaded = load_source(source)
    chosen = parse_lengths(lengths, loaded.max_seq_len)
    wanted = parse_backends(backends)
    skipped = {}
    if Backend("trt") in wanted and (reason := trt_unavailable()):
        skipped["trt"] = reason
    runnable = [b for b in wanted if b.name not in skipped]
    result = BenchResult(source, threads, chosen, [b.name for b in runnable], [], skipped, machine_info(threads))
    steps = Steps(step, len(chosen) * (sum(b.kind != "torch" for b in runnable) + rounds * len(runnable)))
    settings = {"source": source, "threads": threads, "warmup": warmup, "repeats": repeats}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="hyena-bench-") as tmp:
        for length in chosen:
            work = Path(tmp) / str(length)
            work.mkdir()
            inputs = []
            for i, tensor in enumerate(loaded.make_inputs(BATCH, length, rng)):
                inputs.append(str(work / f"input{i}.npy"))
                np.save(inputs[-1], tensor.numpy())
            jobs = {}
            for index, backend in enumerate(runnable):
                jobs[backend.name] = {**settings, "kind": backend.kind, "strategy": backend.strategy,
                                      "target": backend.target, "length": length,
                                      "inputs": inputs, "output": str(work / f"out{index}.npy")}
                if backend.kind != "torch":
                    steps.next(f"exporting {backend.name} at {format_length(length)}")
                    jobs[backend.name]["model"] = str(work / f"graph{index}" / "model.onnx")
                    Path(jobs[backend.name]["model"]).parent.mkdir()
                    _export(loaded, backend, length, Path(jobs[backend.name]["model"]))
            result.measurements.extend(_rounds(jobs, rounds, work, steps))
            _compare_to_torch(result, length, {name: Path(job["output"]) for name, job in jobs.items()})
            shutil.rmtree(work)
    result.machine["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    steps.next("done")
    return result


class Steps:
    """Progress over a known number of steps: ``next(what)`` announces one and counts the previous."""

    def __init__(self, step: Step, total: int) -> None:
        self.step, self.total, self.done = step, total, -1

    def next(self, what: str) -> None:
        self.done += 1
        self.step(self.done, self.total, what)


def _rounds(jobs: dict[str, dict], rounds: int, work: Path, steps: Steps) -> list[Measurement]:
    """Run every job ``rounds`` times round robin; one Measurement per job."""
    raws: dict[str, list[dict]] = {name: [] for name in jobs}
    for round_index in range(rounds):
        for name, job in jobs.items():
            suffix = f" (round {round_index + 1}/{rounds})" if rounds > 1 else ""
            steps.next(f"timing {name} at {format_length(job['length'])}{suffix}")
            raws[name].append(run_worker("hyena_deploy.bench.worker", job, work, job["threads"],
                                         f"{job['kind']} at length {job['length']}"))
    measurements = []
    for name, runs in raws.items():
        times = [t * 1e3 for run in runs for t in run["times_s"]]
        peak = max(runs, key=lambda run: run["peak_kib"] - run["base_kib"])
        measurements.append(Measurement(name, jobs[name]["length"], float(np.median(times)), times,
                                        (peak["peak_kib"] - peak["base_kib"]) / 1024, peak["peak_kib"] / 1024))
    return measurements


def _compare_to_torch(result: BenchResult, length: int, outputs: dict[str, Path]) -> None:
    """Fill speedup and rel L2 of every backend at ``length`` against PyTorch eager, when it ran."""
    torch_run = result.get("torch", length)
    if torch_run is None:
        return
    reference = np.load(outputs["torch"])
    for i, m in enumerate(result.measurements):
        if m.length == length:
            got = np.load(outputs[m.backend])
            rel = (compare_output(m.backend, f"L={length}", reference, got, Tolerance()).rel_l2
                   if got.shape == reference.shape else float("nan"))
            result.measurements[i] = replace(m, speedup=torch_run.median_ms / m.median_ms, rel_l2=rel)
