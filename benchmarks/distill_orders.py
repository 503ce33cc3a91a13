"""Orders needed for 1e-3 and 1e-5 filter relative L2 on the filters of the sample models, and the logits error.

    python benchmarks/distill_orders.py [--max-order 64] [--json benchmarks/results/distill_orders.json]
        [--plot benchmarks/results/hankel_hyena_tiny.png]

Samples: the bundled ``hyena-tiny`` and ``hyena-tiny-order3``, and small random-init checkpoints written
by ``samples/safari/make_checkpoint.py`` and ``samples/hyenadna/make_checkpoint.py`` (random weights:
their filters are what an untrained Sin MLP makes, not trained filters). For every channel the
smallest order meeting each tolerance up to ``--max-order`` (Hankel poles, least-squares residues); a
channel that does not get there within the limit is counted as not compressing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hyena_deploy.distill.run import (FitOptions, check_cases, distilled_copy, fit_layers, hankel_plot,  # noqa: E402
                                      logits_errors, skips)
from hyena_deploy.sources import load_source  # noqa: E402

TOLERANCES = (1e-3, 1e-5)


def sample_sources(workdir: Path) -> dict[str, str]:
    sources = {"hyena-tiny": "hyena-tiny", "hyena-tiny-order3": "hyena-tiny-order3"}
    for name, script, args in (("safari LM (random init)", "samples/safari/make_checkpoint.py", []),
                               ("HyenaDNA -hf (random init)", "samples/hyenadna/make_checkpoint.py", [])):
        out = workdir / name.split()[0].lower()
        subprocess.run([sys.executable, str(ROOT / script), str(out), *args], check=True, capture_output=True)
        sources[name] = str(out)
    return sources


def measure(source: str, max_order: int) -> dict:
    loaded = load_source(source)
    row: dict = {"source": source}
    for tol in TOLERANCES:
        start = time.perf_counter()
        fits = fit_layers(loaded.module, FitOptions(tol=tol, max_order=max_order))
        orders = np.concatenate([[f.order for f in layer.fits] for layer in fits])
        errors = np.concatenate([[f.error for f in layer.fits] for layer in fits])
        met = errors <= tol
        skip = skips(loaded.module, [f.module for f in fits])
        distilled = distilled_copy(loaded.module, [f.layer(skip[f.module]) for f in fits])
        logits = logits_errors(loaded, distilled, check_cases(loaded, 0))
        row[f"{tol:g}"] = {"channels": int(orders.size), "channels_meeting_tol": int(met.sum()),
                           "order_median_of_those": float(np.median(orders[met])) if met.any() else None,
                           "order_max_of_those": int(orders[met].max()) if met.any() else None,
                           "filter_error_median": float(np.median(errors)), "filter_error_max": float(errors.max()),
                           "logits_rel_l2": max(logits.values()), "fit_seconds": round(time.perf_counter() - start, 1)}
        row.setdefault("fits", fits)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-order", type=int, default=64)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/distill_orders.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "benchmarks/results/hankel_hyena_tiny.png")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, source in sample_sources(Path(tmp)).items():
            row = measure(source, args.max_order)
            fits = row.pop("fits")
            if name == "hyena-tiny":
                hankel_plot(args.plot, fits)
            results[name] = row
            for tol in TOLERANCES:
                r = row[f"{tol:g}"]
                print(f"{name:28s} tol {tol:g}: {r['channels_meeting_tol']}/{r['channels']} channels within order "
                      f"{args.max_order} (median order {r['order_median_of_those']}, max {r['order_max_of_those']}); "
                      f"filter error median {r['filter_error_median']:.1e} max {r['filter_error_max']:.1e}; "
                      f"logits rel L2 {r['logits_rel_l2']:.2e}; {r['fit_seconds']} s", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"max_order": args.max_order, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
