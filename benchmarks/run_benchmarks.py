"""Reproduce the README's performance table and plot (not a test: it takes minutes and measures this machine).

    python benchmarks/run_benchmarks.py [--threads 2] [--repeats 5] [--rounds 2]

Runs ``hyena-deploy bench`` (PyTorch eager vs ONNX Runtime with the auto, monarch and dft rewrites)
for the bundled ``hyena-tiny`` (l_max 2048) and the 4-block width-128 LM of
``tests/models_elsewhere.py:lm_4x128`` (l_max 65536), then writes ``benchmarks/results/<model>.json``,
``benchmarks/results/latency.png`` and ``benchmarks/results/table.md``, and checks the targets.
Run it on an otherwise idle machine: the load average is recorded with the results.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hyena_deploy.bench import report
from hyena_deploy.bench.runner import BenchResult, run_bench
from hyena_deploy.bench.spec import format_length
from hyena_deploy.report import console, write_json

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
BACKENDS = "torch,ort:auto,ort:monarch,ort:dft"
MODELS = {  # name -> (SOURCE, lengths)
    "hyena-tiny": ("hyena-tiny", "1k,2k"),
    "lm_4x128": ("tests/models_elsewhere.py:lm_4x128", "1k,4k,16k,64k"),
}


def measure(source: str, lengths: str, args: argparse.Namespace) -> BenchResult:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(source, total=None)
        return run_bench(source, lengths, BACKENDS, args.threads, args.repeats, args.warmup, args.rounds,
                         step=lambda done, total, what: progress.update(task, completed=done, total=total,
                                                                       description=what))


def markdown(results: dict[str, BenchResult]) -> str:
    """The README table: median ms per backend (x PyTorch eager) and peak MB, per model and length."""
    lines = ["| model | length | PyTorch eager | ort:auto | ort:monarch | ort:dft | peak MB eager / auto |",
             "|---|---|---|---|---|---|---|"]
    for name, result in results.items():
        for length in result.lengths:
            cells = []
            for backend in ("torch", "ort:auto", "ort:monarch", "ort:dft"):
                m = result.get(backend, length)
                cells.append(f"{m.median_ms:.1f} ms" + ("" if backend == "torch" else f" ({m.speedup:.2f}x)"))
            memory = f"{result.get('torch', length).peak_mb:.0f} / {result.get('ort:auto', length).peak_mb:.0f}"
            lines.append(f"| {name} | {format_length(length)} | " + " | ".join(cells) + f" | {memory} |")
    return "\n".join(lines) + "\n"


def targets(results: dict[str, BenchResult]) -> list[tuple[str, bool]]:
    """The issue's targets, each with whether this run met it."""
    checks = []
    for name, result in results.items():
        for length in result.lengths:
            auto = result.get("ort:auto", length).speedup
            checks.append((f"{name} {format_length(length)}: auto {auto:.2f}x PyTorch eager (>= 1)", auto >= 1))
            if length >= 4096:
                ratio = result.get("ort:dft", length).median_ms / result.get("ort:monarch", length).median_ms
                checks.append((f"{name} {format_length(length)}: monarch {ratio:.2f}x faster than dft (>= 3)",
                               ratio >= 3))
        if {4096, 65536} <= set(result.lengths):
            growth = result.get("ort:monarch", 65536).median_ms / result.get("ort:monarch", 4096).median_ms
            checks.append((f"{name}: monarch latency 64k / 4k = {growth:.1f} (<= 24)", growth <= 24))
        if 16384 in result.lengths:
            eager, auto = result.get("torch", 16384).peak_mb, result.get("ort:auto", 16384).peak_mb
            checks.append((f"{name} 16k: peak memory auto {auto:.0f} MB vs eager {eager:.0f} MB", auto <= eager))
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    os.chdir(ROOT.parent)  # SOURCEs are relative to the repository root
    RESULTS.mkdir(exist_ok=True)
    results = {}
    for name, (source, lengths) in MODELS.items():
        results[name] = measure(source, lengths, args)
        console.print(report.table(results[name]))
        write_json(RESULTS / f"{name}.json", report.to_json(results[name]))
    report.plot(list(results.values()), RESULTS / "latency.png")
    (RESULTS / "table.md").write_text(markdown(results))
    console.print(markdown(results))
    for text, met in targets(results):
        console.print(f"{'met' if met else '[red]NOT MET[/red]'}: {text}")
    console.print(f"wrote {RESULTS}/*.json, latency.png, table.md")


if __name__ == "__main__":
    main()
