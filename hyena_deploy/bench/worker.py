"""One measurement in a fresh process: ``python -m hyena_deploy.bench.worker JOB.json``.

The job names a backend (torch, ort or trt), a model (SOURCE for torch, an exported file otherwise),
saved inputs and the thread count. The worker imports the runtime, resets the kernel's peak-RSS mark
(``/proc/self/clear_refs``, Linux) and reads its RSS (``base``); then it loads the model, runs
``warmup`` untimed and ``repeats`` timed inferences, and prints one JSON line: the wall time of each
run, ``base`` and the peak RSS (``VmHWM``) at the end, in KiB. ``peak - base`` is everything the
backend allocated at its high-water mark: weights and graph constants, activations, runtime arenas.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hyena_deploy.runners import Runner


def _status_kib(field: str) -> int | None:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith(field + ":")), None)


def peak_rss_kib() -> int:
    """High-water RSS of this process image in KiB: ``VmHWM`` on Linux, else ``ru_maxrss``.

    Linux's ``ru_maxrss`` would also count the parent's RSS at fork (kept across exec).
    """
    return _status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def reset_peak_rss() -> int:
    """Reset the high-water mark to the current RSS where the kernel allows it; the RSS now, in KiB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # not Linux: the mark keeps the import peak, so ``peak - base`` may read low
        return peak_rss_kib()
    return _status_kib("VmRSS") or peak_rss_kib()


def _torch_runner(job: dict) -> Runner:
    from hyena_deploy.runners.torch_runner import TorchRunner
    from hyena_deploy.sources import load_source

    return TorchRunner(load_source(job["source"]), job["threads"])


def _graph_runner(job: dict) -> Runner:
    from hyena_deploy import targets

    return targets.get(job["target"]).make_runner(Path(job["model"]), job["threads"])


def _trt_runner(job: dict) -> Runner:
    import onnx

    from hyena_deploy.runners.trt_runner import TrtRunner
    from hyena_deploy.tensorrt import trt_api
    from hyena_deploy.tensorrt.plan import BuildOptions, make_plan

    graph = onnx.load(job["model"], load_external_data=False)
    plan = make_plan(graph, BuildOptions(), trt_api.trt_version())
    engine = Path(job["model"]).with_suffix(".engine")
    engine.write_bytes(trt_api.build_engine(job["model"], plan))
    return TrtRunner(engine, graph)


RUNNERS: dict[str, Callable[[dict], Runner]] = {"torch": _torch_runner, "ort": _graph_runner, "trt": _trt_runner}
IMPORTS = {"torch": ("torch", "hyena_deploy.sources", "hyena_deploy.runners.torch_runner"),
           "ort": ("onnx", "onnxruntime", "hyena_deploy.plugins.ort_fftconv", "hyena_deploy.targets"),
           "trt": ("onnx", "torch", "hyena_deploy.runners.trt_runner", "hyena_deploy.tensorrt.trt_api",
                   "hyena_deploy.tensorrt.plan")}


def time_calls(call: Callable[[], object], warmup: int, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` timed calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def measure(job: dict) -> dict:
    """Import, load, warm up, time; the result of one job (see the module docstring)."""
    for module in IMPORTS[job["kind"]]:  # before the baseline: imports are not the model's memory
        importlib.import_module(module)
    inputs = [np.load(p) for p in job["inputs"]]
    base = reset_peak_rss()
    runner = RUNNERS[job["kind"]](job)
    run = lambda: runner.run(inputs)[0]  # noqa: E731
    first = run()
    times = time_calls(run, job["warmup"], job["repeats"])
    peak = peak_rss_kib()
    if job.get("output"):
        np.save(job["output"], first)
    return {"times_s": times, "base_kib": base, "peak_kib": peak}


def main() -> None:
    print(json.dumps(measure(json.loads(Path(sys.argv[1]).read_text()))))


if __name__ == "__main__":
    main()
