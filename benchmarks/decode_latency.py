"""Decode ms/token against context length for modal and history states, and the baselines, in one run.

    python benchmarks/decode_latency.py [--contexts 1k,8k,64k] [--models modal,history] [--json OUT] [--plot P]

A thin caller of ``hyena-deploy bench --decode`` (:mod:`hyena_deploy.bench.decode`) on two random-weight
checkpoints written to a temporary directory (fixed seeds): ``modal``, a StripedHyena (Hyena layers only,
width 256, 3 layers, 4 complex modes; the sample writer of ``samples/stripedhyena``), run at batch 1
and 8 against the ``stripedhyena`` package's own recurrent generation too; ``history``, a hyena_lm
(width 128, 2 layers, l_max 64k) whose implicit filters keep the exact input history, at batch 1.
Results merge into ``--json`` per model (``benchmarks/results/decode_latency.json``), the plot shows
every (model, batch) panel (``benchmarks/results/decode_latency.png``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from pathlib import Path

from hyena_deploy.bench import decode_report
from hyena_deploy.bench.decode import DecodeResult, run_decode_bench
from hyena_deploy.report import write_json

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "decode_latency.json"
MODAL = {"hidden_size": 256, "num_filters": 256, "num_attention_heads": 8, "inner_mlp_size": 512, "state_size": 4,
         "max_seqlen": 65536}
HISTORY = {"vocab_size": 16, "d_model": 128, "n_layer": 2, "d_inner": 256, "l_max": 65536}
BATCHES = {"modal": "1,8", "history": "1"}


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_modal(directory: Path) -> None:
    maker = _module(ROOT / "samples" / "stripedhyena" / "make_checkpoint.py")
    maker.COMMON.update(MODAL)
    maker.write_checkpoint(directory, "hf", hyena_only=True, seed=0)


def write_history(directory: Path) -> None:
    from hyena_deploy.models.lm import HyenaLMConfig

    _module(ROOT / "samples" / "make_samples.py").write_sample(directory, HyenaLMConfig(**HISTORY))


WRITERS = {"modal": write_modal, "history": write_history}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", default="1k,8k,64k")
    parser.add_argument("--recompute-contexts", help="Where the baselines run (default: the contexts up to 8k).")
    parser.add_argument("--models", default="modal,history")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=64, help="Timed decode steps per cell.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed full forwards per recompute cell.")
    parser.add_argument("--rounds", type=int, default=2, help="Every cell this many times, round robin.")
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--plot", type=Path, default=RESULTS.with_suffix(".png"))
    args = parser.parse_args()
    earlier = json.loads(args.json.read_text()) if args.json.is_file() else {}
    payload = {"models": {"modal": MODAL, "history": HISTORY}, **{k: v for k, v in earlier.items() if k in WRITERS}}
    results: dict[str, DecodeResult] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="decode-latency-") as tmp:
        for name in args.models.split(","):
            directory = Path(tmp) / name
            WRITERS[name](directory)
            results[name] = run_decode_bench(
                str(directory), lambda done, total, what, name=name: print(
                    f"[{time.perf_counter() - started:6.0f}s] {name} {done}/{total}: {what}", flush=True),
                contexts=args.contexts, recompute=args.recompute_contexts, batches=BATCHES[name], tokens=args.tokens,
                threads=args.threads, warmup=1, repeats=args.repeats, rounds=args.rounds)
            results[name].source = name
            payload[name] = decode_report.to_json(results[name])
            print(json.dumps({name: payload[name]["skipped"] | payload[name]["ratios"]}, indent=1), flush=True)
            write_json(args.json, payload)
    decode_report.plot(results, args.plot)
    print(f"wrote {args.json} and {args.plot}")


if __name__ == "__main__":
    main()
