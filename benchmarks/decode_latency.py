"""Decode ms/token against context length for modal and history states, and the baselines, in one run.

    python benchmarks/decode_latency.py [--contexts 1k,16k,64k] [--threads 2] [--tokens 64] [--json OUT]

Models (random weights, fixed seeds): ``modal``, a StripedHyena (Hyena layers only, width 256, 4
layers, 4 complex modes) run through the ``stripedhyena`` package; ``history``, a hyena_lm (width
128, 2 layers, l_max 64k) whose implicit filters keep the exact input history. For each context
each model is exported with ``export_stateful`` (verified against PyTorch: fail-closed) and timed
in a fresh process that imports only the torch-free Generator: one token per ``decode.onnx`` call,
batch 1, states of the full context size filled with random values (the graph has no data-dependent
branch: its cost is that of a real prefix of that length), median over ``--tokens`` calls after a
warm-up. Peak memory is the timing process's peak RSS above its RSS after importing the runtime.
Then all contexts of a model take turns in one process (8 rounds), so their ratio shares the
machine's load: ``interleaved_ratio_max_vs_min_context``.

Baselines at ``--recompute-context`` (8k): re-running the full-sequence ONNX graph (``export``,
monarch) once per token, PyTorch eager full recompute, and the ``stripedhyena`` package's own
recurrent generation (prefill then one token per call, batch 1 and 8), whose greedy tokens are also
checked against the Generator's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import torch

from hyena_deploy.report import write_json

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "decode_latency.json"
MODAL = {"hidden_size": 256, "num_filters": 256, "num_attention_heads": 8, "inner_mlp_size": 512, "state_size": 4,
         "max_seqlen": 65536}
HISTORY = {"vocab_size": 16, "d_model": 128, "n_layer": 2, "d_inner": 256, "l_max": 65536}
TIMER = """
import json, statistics, sys, time
import numpy as np
from hyena_deploy.runtime.generator import Generator
def status(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key))
open("/proc/self/clear_refs", "w").write("5")  # reset the peak RSS to the current RSS (after the imports)
base = status("VmRSS:")
generator = Generator({directory!r}, threads={threads})
rng = np.random.default_rng(0)
states = {{name: (rng.standard_normal(v.shape) * 0.1).astype(v.dtype)
          for name, v in generator.initial_states(1).items()}}
token = np.array([[3]])
times = []
for i in range({tokens} + 5):
    start = time.perf_counter()
    _, states = generator.step(token, states)
    times.append(time.perf_counter() - start)
peak = status("VmHWM:")
state_bytes = sum(v.nbytes for v in states.values())
print(json.dumps({{"ms_per_token": 1e3 * statistics.median(times[5:]), "peak_mb": (peak - base) / 1024,
                  "state_mb": state_bytes / 2**20}}))
"""


def parse_length(text: str) -> int:
    text = text.strip().lower()
    return int(text[:-1]) * 1024 if text.endswith("k") else int(text)


def modal_model():
    """(LoadedModel, package config) of the modal StripedHyena."""
    import importlib.util

    from hyena_deploy.exporters.stripedhyena import StripedHyenaLogits, build_model
    from hyena_deploy.loaded import LoadedModel

    spec = importlib.util.spec_from_file_location("sh_make", ROOT / "samples/stripedhyena/make_checkpoint.py")
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    maker.COMMON.update(MODAL)
    config = maker.tiny_config("hf", hyena_only=True)
    torch.manual_seed(0)
    model = maker.randomize(build_model(config), 0)
    loaded = LoadedModel(module=StripedHyenaLogits(model).eval(),
                         example_inputs=(torch.zeros(1, 64, dtype=torch.long),),
                         name="modal-sh", source_sha256="bench", max_seq_len=MODAL["max_seqlen"],
                         vocab_size=config["vocab_size"], output_names=["logits"])
    return loaded, config


def history_model():
    from hyena_deploy.loaded import LoadedModel
    from hyena_deploy.models.lm import HyenaLM, HyenaLMConfig

    torch.manual_seed(0)
    config = HyenaLMConfig(**HISTORY)
    return LoadedModel(module=HyenaLM(config).eval(), example_inputs=(torch.zeros(1, 64, dtype=torch.long),),
                       name="history-lm", source_sha256="bench", max_seq_len=config.l_max,
                       vocab_size=config.vocab_size, output_names=["logits"])


def time_stateful(loaded, context: int, threads: int, tokens: int, work: Path) -> dict:
    from hyena_deploy.stateful.export import export_stateful

    directory = work / f"{loaded.name}-{context}"
    started = time.perf_counter()
    result = export_stateful(loaded, directory, max_context=context)
    export_s = time.perf_counter() - started
    worst = max(r.rel_l2 for r in result.reports)
    code = textwrap.dedent(TIMER.format(directory=str(directory), threads=threads, tokens=tokens))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "export_s": export_s, "verify_rel_l2": worst,
            "greedy_checked": result.greedy_checked}


INTERLEAVED = """
import json, statistics, time
import numpy as np
from hyena_deploy.runtime.generator import Generator
generators = {{name: Generator(path, threads={threads}) for name, path in {directories!r}.items()}}
rng = np.random.default_rng(0)
states = {{name: {{k: (rng.standard_normal(v.shape) * 0.1).astype(v.dtype) for k, v in g.initial_states(1).items()}}
          for name, g in generators.items()}}
token, times = np.array([[3]]), {{name: [] for name in generators}}
for round in range({rounds}):
    for name, g in generators.items():
        for i in range({per_round} + 2):
            start = time.perf_counter()
            _, states[name] = g.step(token, states[name])
            if i >= 2:
                times[name].append(time.perf_counter() - start)
print(json.dumps({{name: 1e3 * statistics.median(t) for name, t in times.items()}}))
"""


def interleaved(directories: dict[str, Path], threads: int, tokens: int) -> dict[str, float]:
    """ms/token per context, contexts taking turns in one process (the machine's load shared alike)."""
    code = textwrap.dedent(INTERLEAVED.format(directories={k: str(v) for k, v in directories.items()},
                                              threads=threads, rounds=8, per_round=max(tokens // 8, 1)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def recompute_baselines(loaded, context: int, threads: int, work: Path) -> dict:
    """ms per generated token when each token re-runs the whole sequence of ``context`` tokens."""
    from hyena_deploy.jobs.export import export_model
    from hyena_deploy.runtime import OrtModel

    torch.set_num_threads(threads)
    ids = np.random.default_rng(0).integers(0, loaded.vocab_size, (1, context))
    with torch.inference_mode():
        eager = median_ms(lambda: loaded.module(torch.from_numpy(ids)), 3)
    path = work / f"{loaded.name}-full-{context}.onnx"
    export_model(loaded, path, fftconv="monarch", seq_len=context, verify=False)
    graph = OrtModel(path, threads=threads)
    return {"eager_full_ms": eager, "onnx_full_ms": median_ms(lambda: graph.run([ids]), 3)}


GENERATE = """
import json, sys
import numpy as np
from hyena_deploy.runtime.generator import Generator
generator = Generator({directory!r}, threads={threads})
prompt = np.load({prompt!r})
generator.generate_rows(list(prompt), 4)  # warm-up
result = generator.generate_rows(list(prompt), {tokens})
np.save({prompt!r} + ".out.npy", np.stack(result.sequences))
print(json.dumps({{"tokens_per_s": len(prompt) * 1e3 / result.decode_ms_per_token}}))
"""


def package_generation(loaded, config: dict, threads: int, tokens: int, directory: Path) -> dict:
    """tokens/s of the stripedhyena package's own recurrent generation vs the Generator (fresh process), batch 1, 8."""
    from stripedhyena import model as sh_model
    from stripedhyena.utils import dotdict

    from hyena_deploy.exporters.stripedhyena import package_config

    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # the package's decaying modal states otherwise slow it down by up to 20x
    package = sh_model.StripedHyena(dotdict(package_config(config))).eval()
    package.load_state_dict(loaded.module.model.state_dict())
    out = {}
    for batch in (1, 8):
        prompt = np.random.default_rng(batch).integers(0, 256, (batch, 16))
        with torch.inference_mode():
            params = package.initialize_inference_params()
            logits, params = package(torch.from_numpy(prompt), inference_params_dict=params)
            for p in params.values():
                p.seqlen_offset += prompt.shape[1]
            token = logits[:, -1].argmax(-1, keepdim=True)
            package_tokens = [token]
            start = time.perf_counter()
            for _ in range(tokens - 1):
                logits, params = package(token, inference_params_dict=params)
                for p in params.values():
                    p.seqlen_offset += 1
                token = logits[:, -1].argmax(-1, keepdim=True)
                package_tokens.append(token)
            package_s = time.perf_counter() - start
        path = directory.parent / f"prompt{batch}.npy"
        np.save(path, prompt)
        code = textwrap.dedent(GENERATE.format(directory=str(directory), threads=threads, prompt=str(path),
                                               tokens=tokens))
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
        ours = np.load(str(path) + ".out.npy")
        out[f"batch{batch}"] = {
            "package_tokens_per_s": batch * (tokens - 1) / package_s,
            "generator_tokens_per_s": json.loads(run.stdout.strip().splitlines()[-1])["tokens_per_s"],
            "greedy_equal": bool(np.array_equal(ours, torch.cat(package_tokens, 1).numpy()))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", default="1k,16k,64k")
    parser.add_argument("--recompute-context", default="8k")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--parts", default="modal,history,recompute,package",
                        help="What to measure now; results merge into --json, so parts can run one at a time.")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    contexts = sorted({parse_length(c) for c in args.contexts.split(",")} | {parse_length(args.recompute_context)})
    recompute = parse_length(args.recompute_context)
    parts = set(args.parts.split(","))
    models = {"modal": modal_model()[0], "history": history_model()}
    results: dict = json.loads(args.json.read_text()) if args.json.is_file() else {}
    results.update({"threads": args.threads, "tokens": args.tokens, "models": {"modal": MODAL, "history": HISTORY}})
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for kind, loaded in models.items():
            entry = results.setdefault(kind, {})
            if kind in parts:
                entry.setdefault("stateful", {})
                for context in contexts:
                    entry["stateful"][str(context)] = time_stateful(loaded, context, args.threads, args.tokens, work)
                    print(kind, context, json.dumps(entry["stateful"][str(context)]), flush=True)
                    write_json(args.json, results)
                turns = interleaved({str(c): work / f"{loaded.name}-{c}" for c in contexts}, args.threads, args.tokens)
                for context, ms in turns.items():
                    entry["stateful"][context]["interleaved_ms_per_token"] = ms
                entry["interleaved_ratio_max_vs_min_context"] = turns[str(contexts[-1])] / turns[str(contexts[0])]
                print(kind, "interleaved", json.dumps(turns), flush=True)
                write_json(args.json, results)
            if "recompute" in parts:
                entry["recompute"] = {"context": recompute,
                                      **recompute_baselines(loaded, recompute, args.threads, work)}
                print(kind, "recompute", json.dumps(entry["recompute"]), flush=True)
                write_json(args.json, results)
        if "package" in parts:
            loaded, config = modal_model()
            from hyena_deploy.stateful.export import export_stateful

            directory = work / "package-dir"
            export_stateful(loaded, directory, max_context=contexts[0])
            results["package"] = package_generation(loaded, config, args.threads, args.tokens, directory)
            print("package", json.dumps(results["package"]), flush=True)
    for kind in models:
        rows = results.get(kind, {}).get("stateful", {})
        if str(contexts[0]) in rows and str(contexts[-1]) in rows:
            results[kind]["ratio_max_vs_min_context"] = (rows[str(contexts[-1])]["ms_per_token"]
                                                         / rows[str(contexts[0])]["ms_per_token"])
        baseline = results.get(kind, {}).get("recompute", {})
        if str(baseline.get("context")) in rows:
            results[kind]["speedup_vs_onnx_recompute"] = (baseline["onnx_full_ms"]
                                                          / rows[str(baseline["context"])]["ms_per_token"])
    write_json(args.json, results)
    print(json.dumps({k: {m: v for m, v in results[k].items() if m.startswith(("ratio", "speedup"))}
                      for k in models if k in results}, indent=2))


if __name__ == "__main__":
    main()
