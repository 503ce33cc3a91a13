"""Measure direct vs monarch vs dft per filter length on this CPU and write ``crossovers.json``.

One convolution site (batch 1, 128 channels, length = taps) per strategy, ONNX Runtime CPU with the
benchmark's session options, median of ``--repeats`` runs after a warm-up. ``--fftconv auto`` then picks,
per filter length, the strategy that was fastest here. TensorRT needs a GPU and is not measured: its
rules are carried over from the existing file.

    python benchmarks/crossover.py [--threads 2] [--repeats 7] [--radices] [--modal | --modal-only]

``--radices`` also times a few Monarch radix plans per FFT size against the default
(:func:`hyena_deploy.strategies.monarch.radices`) and prints them.

``--modal`` also times modal vs monarch on exactly modal filters per (length, modes) and writes the
``modal`` rules ``[[min_length, max_modes], ...]``: from ``min_length`` on, a filter that is modal
with at most ``max_modes`` modes gets ``modal`` (0: never). ``--modal-only`` keeps the file's other
rules as they are.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from functools import partial
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from hyena_deploy.bench.runner import machine_info
from hyena_deploy.runtime import session_options
from hyena_deploy.graph import NodeBuilder
from hyena_deploy.spectral import fft_size_for
from hyena_deploy.strategies import BUILDERS, monarch
from hyena_deploy.strategies.modal import NotModal

TABLE = Path(__file__).resolve().parent.parent / "hyena_deploy" / "strategies" / "crossovers.json"
TAPS = [1 << p for p in range(3, 17)]
CHANNELS = 128
MEASURED = ("direct", "monarch", "dft")
TRT_BY_HAND = {"rules": [[64, "direct"], [None, "monarch"]],
               "note": "not measured (needs a GPU): direct Conv for short filters, monarch MatMuls beyond"}
MARGIN = 0.1    # a strategy must beat monarch by 10% to be chosen over it
MODAL_LENGTHS = (1024, 4096, 16384, 65536)
MODAL_MODES = (1, 2, 4, 8, 16, 32)
MODAL_CHANNELS = 32  # both strategies scale linearly in channels; fewer keep the modal fits short
GIVE_UP = 10.0  # stop timing a strategy once it is this many times slower than the best


def site(build, h: np.ndarray) -> onnx.ModelProto:
    nb = NodeBuilder("conv")
    build(nb, "u", "y", h)
    dims = ["batch", h.shape[0], "seq"]
    graph = helper.make_graph(nb.nodes, "g", [helper.make_tensor_value_info("u", onnx.TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, dims)], nb.initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)


def median_ms(model: onnx.ModelProto, u: np.ndarray, threads: int, repeats: int) -> float:
    session = ort.InferenceSession(model.SerializeToString(), session_options(threads),
                                   providers=["CPUExecutionProvider"])
    session.run(None, {"u": u})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, {"u": u})
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def filters(taps: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h = rng.standard_normal((CHANNELS, taps)) * np.exp(-np.arange(taps) / max(taps / 4, 1))
    return h, rng.standard_normal((1, CHANNELS, taps)).astype(np.float32)


def measure(threads: int, repeats: int) -> dict[int, dict[str, float]]:
    rng = np.random.default_rng(0)
    table: dict[int, dict[str, float]] = {}
    given_up: set[str] = set()
    for taps in TAPS:
        h, u = filters(taps, rng)
        row = {s: median_ms(site(BUILDERS[s], h), u, threads, repeats) for s in MEASURED if s not in given_up}
        best = min(row.values())
        given_up |= {s for s, ms in row.items() if ms > GIVE_UP * best}
        table[taps] = row
        print(f"{taps:6d} taps: " + "  ".join(f"{s} {ms:8.2f} ms" for s, ms in row.items()), flush=True)
    return table


def fastest(row: dict[str, float]) -> str:
    """The fastest strategy; monarch unless another beats it by more than ``MARGIN`` (noise)."""
    best = min(row, key=row.get)
    return best if row[best] < (1 - MARGIN) * row["monarch"] else "monarch"


def rules(table: dict[int, dict[str, float]]) -> list[list]:
    """[[max_taps, strategy], ..., [null, strategy]]: the fastest strategy per measured tap range."""
    winners = [(taps, fastest(row)) for taps, row in sorted(table.items())]
    out: list[list] = []
    for (taps, strategy), following in itertools.zip_longest(winners, winners[1:]):
        if following is None or following[1] != strategy:
            out.append([taps if following is not None else None, strategy])
    return out


def modal_filters(length: int, modes: int, rng: np.random.Generator) -> np.ndarray:
    from hyena_deploy.distill.fit import modal_impulse

    radius = 1 - 10 ** rng.uniform(-5, -2, (MODAL_CHANNELS, modes))
    poles = radius * np.exp(1j * rng.uniform(0, np.pi, (MODAL_CHANNELS, modes)))
    return modal_impulse(poles, rng.standard_normal(poles.shape) + 1j * rng.standard_normal(poles.shape), length)


def measure_modal(threads: int, repeats: int) -> tuple[list[list[int]], dict]:
    """Modal vs monarch per (length, modes); rules: per length the most modes at which modal wins by MARGIN."""
    rng = np.random.default_rng(2)
    rules_out, timings = [], {}
    for length in MODAL_LENGTHS:
        u = rng.standard_normal((1, MODAL_CHANNELS, length)).astype(np.float32)
        winning = 0
        for modes in MODAL_MODES:
            h = modal_filters(length, modes, rng)
            try:
                row = {s: median_ms(site(BUILDERS[s], h), u, threads, repeats) for s in ("modal", "monarch")}
            except NotModal as exc:  # the fit did not reach fp32 accuracy: modal is not an option here
                print(f"{length:6d} taps, {modes:2d} modes: {exc}", flush=True)
                break
            timings[f"{length}/{modes}"] = {s: round(ms, 3) for s, ms in row.items()}
            print(f"{length:6d} taps, {modes:2d} modes: modal {row['modal']:8.2f} ms  monarch {row['monarch']:8.2f} ms",
                  flush=True)
            if row["modal"] >= (1 - MARGIN) * row["monarch"]:
                break
            winning = modes
        rules_out.append([length, winning])
    return rules_out, timings


def radix_plans(n: int) -> list[tuple[int, ...]]:
    """The default plan and neighbours: first radix 16..128, the rest 2..32, at most 5 stages."""
    p = n.bit_length() - 1
    plans = {monarch.radices(n)}
    for first in range(4, 8):
        for stages in range(1, 5):
            rest = p - first
            if rest < stages or rest > 5 * stages:
                continue
            base = [rest // stages + (i < rest % stages) for i in range(stages)]
            plans.add(tuple(1 << e for e in (first, *base)))
    return sorted(plans)


def sweep_radices(threads: int, repeats: int) -> None:
    rng = np.random.default_rng(1)
    for taps in (1024, 4096, 16384, 65536):
        h, u = filters(taps, rng)
        n = fft_size_for(taps)
        timed = sorted((median_ms(site(partial(monarch.build, digits=plan), h), u, threads, repeats), plan)
                       for plan in radix_plans(n))
        default = monarch.radices(n)
        default_ms = next(ms for ms, plan in timed if plan == default)
        print(f"N={n}: default {'x'.join(map(str, default))} {default_ms:.2f} ms "
              f"({default_ms / timed[0][0]:.2f}x the best); "
              + ", ".join(f"{'x'.join(map(str, plan))} {ms:.2f}" for ms, plan in timed[:4]), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--radices", action="store_true", help="also time Monarch radix plans")
    parser.add_argument("--modal", action="store_true", help="also measure the modal crossover")
    parser.add_argument("--modal-only", action="store_true", help="measure only the modal crossover")
    parser.add_argument("--output", type=Path, default=TABLE)
    args = parser.parse_args()
    previous = json.loads(TABLE.read_text())["targets"] if TABLE.is_file() else {}
    if args.modal or args.modal_only:
        modal_rules, modal_ms = measure_modal(args.threads, args.repeats)
    if args.modal_only:
        payload = json.loads(TABLE.read_text())
        payload["targets"]["onnxruntime"].update({"modal": modal_rules, "modal_median_ms": modal_ms})
        args.output.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.output}: onnxruntime modal rules {modal_rules}")
        return
    table = measure(args.threads, args.repeats)
    machine = machine_info(args.threads)
    payload = {
        "source": "benchmarks/crossover.py: median ONNX Runtime CPU latency of one convolution site "
                  f"(batch 1, {CHANNELS} channels, length = taps, {args.threads} threads)",
        "machine": {k: machine[k] for k in ("cpu", "logical_cpus", "threads", "onnxruntime", "load_average_1m")},
        "targets": {
            "onnxruntime": {"rules": rules(table),
                            "median_ms": {str(t): {s: round(ms, 3) for s, ms in row.items()}
                                          for t, row in table.items()}},
            "tensorrt": previous["tensorrt"] if "rules" in previous.get("tensorrt", {}) else TRT_BY_HAND,
        },
    }
    kept_modal = {k: v for k, v in previous.get("onnxruntime", {}).items() if k.startswith("modal")}
    payload["targets"]["onnxruntime"].update(
        {"modal": modal_rules, "modal_median_ms": modal_ms} if args.modal else kept_modal)
    args.output.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.output}: onnxruntime rules {payload['targets']['onnxruntime']['rules']}")
    if args.radices:
        sweep_radices(args.threads, args.repeats)


if __name__ == "__main__":
    main()
