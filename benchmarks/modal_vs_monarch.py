"""``--fftconv modal`` vs ``monarch`` on StripedHyena-style modal long convolutions, side by side in one run.

    python benchmarks/modal_vs_monarch.py [--channels 128] [--modes 2,8,16] [--lengths 16k,64k] [--threads 2]
        [--repeats 7] [--json benchmarks/results/modal_vs_monarch.json] [--model]

Each case is one long-convolution site as the rewrite builds it (batch 1, C channels, dynamic length
up to L, run at L): filters ``h_t = Re sum_n R_n p_n^t`` with N complex modes per channel (the
StripedHyena state size; radii 0.99..0.99999 as trained long-memory poles), in ONNX Runtime on
the CPU with ``--threads`` intra-op threads. Both graphs are timed alternately, each latency the
median of ``--repeats`` runs; accuracy is the relative L2 against a float64 convolution; the modal
fit time (Hankel realisation of every channel from the sampled filter) is reported separately.

``--model`` instead exports a whole LM with StripedHyena-style modal long filters (the project's 2-block
``hyena_lm`` of width ``--channels`` with every filter distilled to ``--modes`` complex modes of radius
0.99..0.999) at each length with each strategy through ``export`` (verified against PyTorch) and
times the two ONNX graphs alternately.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hyena_deploy.bench.spec import parse_length  # noqa: E402
from hyena_deploy.distill.fit import modal_impulse  # noqa: E402
from hyena_deploy.graph import NodeBuilder  # noqa: E402
from hyena_deploy.spectral import causal_conv_reference  # noqa: E402
from hyena_deploy.strategies import BUILDERS, modal  # noqa: E402

STRATEGIES = ("modal", "monarch")


def striped_filters(channels: int, modes: int, length: int, rng: np.random.Generator) -> np.ndarray:
    radius = 1 - 10 ** rng.uniform(-5, -2, (channels, modes))
    poles = radius * np.exp(1j * rng.uniform(0, np.pi, (channels, modes)))
    residues = (rng.standard_normal((channels, modes)) + 1j * rng.standard_normal((channels, modes))) / modes
    return modal_impulse(poles, residues, length)


def site_session(strategy: str, h: np.ndarray, threads: int) -> ort.InferenceSession:
    nb = NodeBuilder("conv")
    BUILDERS[strategy](nb, "u", "y", h)
    dims = ["batch", h.shape[0], "seq"]
    graph = helper.make_graph(nb.nodes, "site", [helper.make_tensor_value_info("u", onnx.TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, dims)], nb.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def modal_lm_checkpoint(directory: Path, length: int, width: int, modes: int) -> Path:
    """A 2-block hyena_lm whose long filters are modal with ``modes`` complex modes (a distilled checkpoint).

    StripedHyena-style long convolutions (modal, state size ``modes``, radii 0.99..0.999) in the
    project's own LM, written in the ``hyena-deploy distill`` format.
    """
    import torch
    from safetensors.torch import save_model

    from hyena_deploy.distill.checkpoint import DistilledLayer, write_distilled
    from hyena_deploy.distill.run import implicit_filters
    from hyena_deploy.models.lm import HyenaLM, HyenaLMConfig

    config = HyenaLMConfig(vocab_size=16, d_model=width, n_layer=2, d_inner=2 * width, l_max=length)
    torch.manual_seed(0)
    model = HyenaLM(config)
    base = directory / "base"
    base.mkdir(parents=True)
    (base / "config.json").write_text(json.dumps(config.to_dict()) + "\n")
    save_model(model, str(base / "model.safetensors"))
    rng = np.random.default_rng(0)
    layers = []
    for name, module, _ in implicit_filters(model):
        poles = (1 - 10 ** rng.uniform(-3, -2, (width, modes))) * np.exp(1j * rng.uniform(0, np.pi, (width, modes)))
        residues = (rng.standard_normal(poles.shape) + 1j * rng.standard_normal(poles.shape)) / modes
        layers.append(DistilledLayer(name, poles, residues, module.skip().detach().double().numpy(),
                                     [2 * modes] * width, [0.0] * width))
    write_distilled(directory / "distilled", base, "hyena_lm", layers, {})
    return directory / "distilled"


def model_rows(args: argparse.Namespace) -> list[dict]:
    import tempfile

    from hyena_deploy.jobs.export import export_model
    from hyena_deploy.runtime import session_options

    rows = []
    rng = np.random.default_rng(0)
    for length in (parse_length(x) for x in args.lengths.split(",")):
        for state_size in (int(x) for x in args.modes.split(",")):
            with tempfile.TemporaryDirectory() as tmp:
                source = modal_lm_checkpoint(Path(tmp) / "ckpt", length, args.channels, state_size)
                sessions, errors, export_s = {}, {}, {}
                for strategy in STRATEGIES:
                    start = time.perf_counter()
                    result = export_model(str(source), Path(tmp) / f"{strategy}.onnx", fftconv=strategy, seq_len=length)
                    export_s[strategy] = round(time.perf_counter() - start, 1)
                    assert {site.strategy for site in result.sites} == {strategy}, result.sites
                    errors[strategy] = max(r.rel_l2 for r in result.reports)
                    sessions[strategy] = ort.InferenceSession(str(Path(tmp) / f"{strategy}.onnx"),
                                                              session_options(args.threads),
                                                              providers=["CPUExecutionProvider"])
                ids = rng.integers(0, 512, (1, length)).astype(np.int64)
                name = sessions["modal"].get_inputs()[0].name
                times: dict[str, list[float]] = {s: [] for s in STRATEGIES}
                for session in sessions.values():
                    session.run(None, {name: ids})
                for _ in range(args.repeats):
                    for s, session in sessions.items():
                        t0 = time.perf_counter()
                        session.run(None, {name: ids})
                        times[s].append(time.perf_counter() - t0)
            ms = {s: 1e3 * float(np.median(v)) for s, v in times.items()}
            row = {"model": f"hyena_lm, 2 blocks, width {args.channels}, modal filters", "length": length,
                   "state_size": state_size, "median_ms": ms, "speedup": ms["monarch"] / ms["modal"],
                   "rel_l2_vs_pytorch": errors, "export_s": export_s}
            rows.append(row)
            print(f"model L={length:6d} state {state_size:2d}: modal {ms['modal']:8.2f} ms  monarch "
                  f"{ms['monarch']:8.2f} ms  speedup {row['speedup']:.2f}x  rel L2 vs PyTorch modal "
                  f"{errors['modal']:.1e} monarch {errors['monarch']:.1e}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--modes", default="2,8,16")
    parser.add_argument("--lengths", default="16k,64k")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/modal_vs_monarch.json")
    parser.add_argument("--model", action="store_true", help="whole StripedHyena-style LMs through export")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = model_rows(args) if args.model else []
    for length in [] if args.model else (parse_length(x) for x in args.lengths.split(",")):
        for modes in (int(x) for x in args.modes.split(",")):
            h = striped_filters(args.channels, modes, length, rng)
            start = time.perf_counter()
            modal.fit_modal(h)
            fit_s = time.perf_counter() - start
            sessions = {s: site_session(s, h, args.threads) for s in STRATEGIES}
            u = rng.standard_normal((1, args.channels, length)).astype(np.float32)
            want = causal_conv_reference(u.astype(np.float64), h)
            times: dict[str, list[float]] = {s: [] for s in STRATEGIES}
            errors = {}
            for s, session in sessions.items():
                got = session.run(None, {"u": u})[0]
                errors[s] = float(np.linalg.norm(got - want) / np.linalg.norm(want))
            for _ in range(args.repeats):
                for s, session in sessions.items():
                    t0 = time.perf_counter()
                    session.run(None, {"u": u})
                    times[s].append(time.perf_counter() - t0)
            ms = {s: 1e3 * float(np.median(v)) for s, v in times.items()}
            row = {"length": length, "modes": modes, "channels": args.channels,
                   "chunk": modal.chunk_size(length, modes), "median_ms": ms, "rel_l2": errors,
                   "speedup": ms["monarch"] / ms["modal"], "modal_fit_s": round(fit_s, 1)}
            rows.append(row)
            print(f"L={length:6d} N={modes:2d} T={row['chunk']:3d}: modal {ms['modal']:8.2f} ms  monarch "
                  f"{ms['monarch']:8.2f} ms  speedup {row['speedup']:.2f}x  rel L2 modal {errors['modal']:.1e} "
                  f"monarch {errors['monarch']:.1e}  (fit {fit_s:.0f} s)", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"threads": args.threads, "repeats": args.repeats, "cpus": os.cpu_count(),
                                     "load_average_1m": os.getloadavg()[0], "onnxruntime": ort.__version__,
                                     "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
