"""Distil the 64k-context HyenaDNA sample, then decode ms/token at 1k vs 64k context of its stateful export.

    python benchmarks/distill_decode.py [--distilled DIR] [--contexts 1k,64k] [--threads 2] [--tokens 64]
        [--rounds 3] [--json benchmarks/results/distill_decode.json]

Runs ``hyena-deploy distill hyenadna-64k`` (default ``--tol 1e-3 --max-order 64``; fail-closed on the
logits at ``--max-logits-err 1e-2``) unless ``--distilled`` names an earlier output, then
``hyena-deploy bench --decode`` on the distilled directory: ``export --stateful`` per context
(verified against PyTorch, fail-closed), states of the full context's size, every cell ``--rounds``
times round robin, medians. The JSON holds the distillation report (orders, filter and logits errors,
state bytes) and the decode cells with their ratios.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hyena_deploy.bench import decode_report  # noqa: E402
from hyena_deploy.bench.decode import run_decode_bench  # noqa: E402
from hyena_deploy.report import write_json  # noqa: E402

SAMPLE = "hyenadna-64k"


def distil(out: Path, report: Path, tol: float, max_order: int) -> float:
    """Run the distill command; returns the seconds it took."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from hyena_deploy.cli import main; main()", "distill", SAMPLE, "-o", str(out), "--tol", str(tol),
                    "--max-order", str(max_order), "--report", str(report)], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--distilled", type=Path, help="An earlier `distill hyenadna-64k` output (with its report.json "
                                                        "beside it, if any): skip the fit.")
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--max-order", type=int, default=64)
    parser.add_argument("--contexts", default="1k,64k")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/distill_decode.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="distill-decode-") as tmp:
        payload: dict = {"sample": SAMPLE}
        if args.distilled is None:
            directory, report = Path(tmp) / "distilled", Path(tmp) / "report.json"
            payload["distill_s"] = round(distil(directory, report, args.tol, args.max_order), 1)
        else:
            directory, report = args.distilled, args.distilled.with_name("report.json")
        if report.is_file():
            payload["distill_report"] = json.loads(report.read_text())
        result = run_decode_bench(str(directory), step=lambda done, total, what: print(f"{done}/{total}: {what}", flush=True),
                                  contexts=args.contexts, recompute=args.contexts.split(",")[0], baselines="full",
                                  tokens=args.tokens, threads=args.threads, warmup=1, repeats=3, rounds=args.rounds)
        result.source = SAMPLE + " (distilled)"
        payload["decode"] = decode_report.to_json(result)
    write_json(args.json, payload)
    print(json.dumps(payload["decode"]["ratios"], indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
