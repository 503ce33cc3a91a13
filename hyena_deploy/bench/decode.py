"""``bench --decode``: decode ms/token and peak memory against context length, stateful graphs vs recompute.

Series: ``stateful`` (``export --stateful`` at each context, verified fail-closed, decoded by the
torch-free Generator), and the baselines at the recompute contexts: ``full`` (the full-sequence
graph, default export at that static length, re-run once per generated token), ``torch`` (PyTorch
eager full recompute) and ``stripedhyena`` (the package's own recurrent generation: prefill, then one
token per call; StripedHyena checkpoints only, skipped with a reason otherwise). Every (series,
context, batch) cell runs in a fresh process (:mod:`hyena_deploy.bench.decode_worker`,
:mod:`hyena_deploy.bench.worker`), ``rounds`` times round robin; medians over all timed steps.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from hyena_deploy.bench.runner import Steps, machine_info, run_worker
from hyena_deploy.bench.spec import format_length, parse_length
from hyena_deploy.errors import HyenaDeployError

Step = Callable[[int, int, str], None]  # (steps done, steps in all, what runs next)
SERIES = ("stateful", "full", "torch", "stripedhyena")
BASELINES = SERIES[1:]
DEFAULT_CONTEXTS = (1024, 8192, 65536)
RECOMPUTE_LIMIT = 8192  # default recompute contexts: those up to this (a full recompute at 64k takes seconds)
STATES = {"random": "random normal values (std 0.1) of each float state's shape, the position at the tokens consumed: "
                    "the graph has no data-dependent branch, so a step costs what it costs after a real prefix",
          "prefill": "a real prefill (chunks of 128) of random token ids"}
STATES_NOTE = " (timing starts after context - warmup - tokens tokens, so the timed steps end at the context)"
FULL_STRATEGY = "auto"
FIXED_KINDS = frozenset({"fir", "modal", "modal_complex", "position"})  # state kinds whose size ignores the context
WORKERS = {"stateful": "hyena_deploy.bench.decode_worker", "stripedhyena": "hyena_deploy.bench.decode_worker",
           "full": "hyena_deploy.bench.worker", "torch": "hyena_deploy.bench.worker"}


@dataclass(frozen=True)
class DecodeSettings:
    """What one ``bench --decode`` run measures (contexts sorted; recompute contexts a subset of them)."""

    contexts: list[int]
    recompute_contexts: list[int]
    baselines: list[str]
    batches: list[int]
    tokens: int = 32
    threads: int = 2
    warmup: int = 1
    repeats: int = 5
    rounds: int = 1
    states: str = "random"


@dataclass(frozen=True)
class DecodeCell:
    """One series at one context and batch: ms per decode step (one new token for each of ``batch`` rows)."""

    series: str
    context: int
    batch: int
    ms_per_token: float
    times_ms: list[float]
    peak_mb: float        # peak RSS while decoding minus RSS after the imports: model, states, activations, arenas
    peak_total_mb: float  # peak RSS of the whole worker process
    state_mb: float | None = None  # stateful: bytes of all states
    rel_l2: float | None = None    # full: logits vs PyTorch eager's on the same input

    @property
    def tokens_per_s(self) -> float:
        return self.batch * 1e3 / self.ms_per_token


@dataclass
class DecodeResult:
    """Everything one ``bench --decode`` run measured."""

    source: str
    settings: DecodeSettings
    cells: list[DecodeCell]
    skipped: dict[str, str] = field(default_factory=dict)
    exports: dict[str, dict[str, dict]] = field(default_factory=dict)
    machine: dict[str, object] = field(default_factory=dict)

    def get(self, series: str, context: int, batch: int) -> DecodeCell | None:
        return next((c for c in self.cells if (c.series, c.context, c.batch) == (series, context, batch)), None)

    @property
    def series(self) -> list[str]:
        return [s for s in SERIES if any(c.series == s for c in self.cells)]


def _ints(text: str, option: str, parse: Callable[[str], int]) -> list[int]:
    values = sorted({parse(part) for part in text.split(",") if part.strip()})
    if not values:
        raise HyenaDeployError(f"{option} is empty")
    return values


def _batch(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise HyenaDeployError(f"bad batch {text!r}: use a positive integer")
    return int(text)


def parse_settings(max_len: int | None, contexts: str | None = None, recompute: str | None = None,
                   baselines: str = ",".join(BASELINES), batches: str = "1", **numbers: int | str) -> DecodeSettings:
    """Checked settings for a model of maximum length ``max_len``; ``contexts``, ``recompute`` (None: the
    defaults), ``baselines`` and ``batches`` as comma lists; ``numbers``: tokens, threads, warmup, repeats,
    rounds and ``states`` (see :class:`DecodeSettings`)."""
    if contexts is None:
        chosen = [c for c in DEFAULT_CONTEXTS if max_len is None or c <= max_len] or [max_len]
    else:
        chosen = _ints(contexts, "--contexts", parse_length)
    too_long = [c for c in chosen if max_len is not None and c > max_len]
    if too_long:
        raise HyenaDeployError(f"context {format_length(too_long[0])} ({too_long[0]}) is past the model's maximum "
                               f"length {max_len}")
    if chosen[0] < 2:
        raise HyenaDeployError("contexts must be >= 2")
    if recompute is None:
        again = [c for c in chosen if c <= RECOMPUTE_LIMIT] or chosen[:1]
    else:
        again = _ints(recompute, "--recompute-contexts", parse_length)
        if stray := [c for c in again if c not in chosen]:
            raise HyenaDeployError(f"recompute context {format_length(stray[0])} is not one of --contexts")
    wanted = [b.strip() for b in baselines.split(",") if b.strip()]
    if unknown := [b for b in wanted if b not in BASELINES]:
        raise HyenaDeployError(f"unknown baseline {unknown[0]!r} (choose from {', '.join(BASELINES)})")
    settings = DecodeSettings(chosen, again, [b for b in BASELINES if b in wanted], _ints(batches, "--batch", _batch),
                              **numbers)
    if min(settings.tokens, settings.threads, settings.repeats, settings.rounds) < 1 or settings.warmup < 0:
        raise HyenaDeployError("--tokens, --threads, --repeats and --rounds must be >= 1, --warmup >= 0")
    if settings.states not in STATES:
        raise HyenaDeployError(f"--states must be one of {', '.join(STATES)}")
    return settings


def stripedhyena_unavailable(family: str, name: str, config) -> str | None:
    """Why the package's own recurrent generation cannot run for this model here, or None."""
    if family != "stripedhyena":
        return f"{name} is a {family} model, not a StripedHyena checkpoint"
    if importlib.util.find_spec("stripedhyena") is None:
        return "the stripedhyena package is not installed (pip install --no-deps stripedhyena==0.2.2)"
    if config.get("attn_layer_idxs") and importlib.util.find_spec("flash_attn") is None:
        return "the package decodes attention layers with flash_attn, which is not installed"
    return None


def run_decode_bench(source: str, step: Step = lambda done, total, what: None, **options: int | str | None
                     ) -> DecodeResult:
    """Export, then time every cell; ``options`` are :func:`parse_settings`' (checked against the model's maximum)."""
    from hyena_deploy.sources import load_source

    loaded = load_source(source)
    chosen = parse_settings(loaded.max_seq_len, **options)
    result = DecodeResult(source, chosen, [], machine=machine_info(chosen.threads))
    result.machine.pop("batch", None)
    full = "full" in chosen.baselines
    exports = len(chosen.contexts) + full * len(chosen.recompute_contexts)
    steps = Steps(step, exports + chosen.rounds * len(chosen.batches) * (
        len(chosen.contexts) + len(chosen.baselines) * len(chosen.recompute_contexts)))
    with tempfile.TemporaryDirectory(prefix="hyena-bench-decode-") as tmp:
        work = Path(tmp)
        family = _export_stateful(loaded, chosen, work, result, steps)
        if "stripedhyena" in chosen.baselines:
            config = getattr(getattr(loaded.module, "model", None), "config", None) or {}
            if reason := stripedhyena_unavailable(family, loaded.name, config):
                result.skipped["stripedhyena"] = reason
        if full:
            _export_full(loaded, chosen, work, result, steps)
        jobs = _jobs(loaded, source, chosen, work, result.skipped)
        steps.total = exports + chosen.rounds * len(jobs)  # skipped baselines left out
        result.cells = _rounds(jobs, chosen, work, steps)
        _compare_full(result, jobs)
    result.machine["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    steps.next("done")
    return result


def _export_stateful(loaded, settings: DecodeSettings, work: Path, result: DecodeResult, steps: Steps) -> str:
    """One verified export per context, longest first; when no state grows with the context (FIR caches,
    modal states, the position), the shorter contexts decode with the longest context's graph."""
    from hyena_deploy.stateful.export import export_stateful

    exports = result.exports.setdefault("stateful", {})
    family, shared = "", None
    for context in reversed(settings.contexts):
        steps.next(f"exporting the stateful graph at {format_length(context)} (verified)")
        directory = work / f"stateful-{context}"
        if shared is not None:
            directory.symlink_to(shared, target_is_directory=True)
            exports[str(context)] = {"graph_of": shared.name.removeprefix("stateful-"), "family": family}
            continue
        started = time.perf_counter()
        done = export_stateful(loaded, directory, max_context=context)
        family = done.layout["family"]
        exports[str(context)] = {"export_s": time.perf_counter() - started, "family": family,
                                 "greedy_checked": done.greedy_checked,
                                 "verify_rel_l2": max(r.rel_l2 for r in done.reports)}
        if all(state["kind"] in FIXED_KINDS for state in done.layout["states"]):
            shared = directory
    return family


def _export_full(loaded, settings: DecodeSettings, work: Path, result: DecodeResult, steps: Steps) -> None:
    from hyena_deploy.jobs.export import export_model

    for context in settings.recompute_contexts:
        steps.next(f"exporting the full-sequence graph at {format_length(context)}")
        (work / f"full-{context}").mkdir()
        started = time.perf_counter()
        done = export_model(loaded, work / f"full-{context}" / "model.onnx", fftconv=FULL_STRATEGY,
                            seq_len=context, verify=False)
        result.exports.setdefault("full", {})[str(context)] = {
            "export_s": time.perf_counter() - started, "fftconv": FULL_STRATEGY,
            "strategies": sorted({site.strategy for site in done.sites})}


def _jobs(loaded, source: str, settings: DecodeSettings, work: Path, skipped: dict[str, str]) -> list[dict]:
    """Every cell's job, context by context; recompute baselines share one saved input per (context, batch)."""
    common = {"source": source, "threads": settings.threads, "warmup": settings.warmup, "seed": 0}
    rng = np.random.default_rng(0)
    jobs = []
    for context in settings.contexts:
        for batch in settings.batches:
            cell = {**common, "context": context, "batch": batch, "length": context}
            jobs.append({**cell, "series": "stateful", "kind": "stateful", "tokens": settings.tokens,
                         "directory": str(work / f"stateful-{context}"), "states": settings.states})
            if context not in settings.recompute_contexts:
                continue
            ids = work / f"ids-{context}-{batch}.npy"
            np.save(ids, loaded.make_inputs(batch, context, rng)[0].numpy())
            for series in settings.baselines:
                if series in skipped:
                    continue
                if series == "stripedhyena":
                    jobs.append({**cell, "series": series, "kind": series, "tokens": settings.tokens})
                    continue
                jobs.append({**cell, "series": series, "kind": "ort" if series == "full" else "torch",
                             "repeats": settings.repeats, "inputs": [str(ids)], "target": "onnxruntime",
                             "strategy": FULL_STRATEGY, "model": str(work / f"full-{context}" / "model.onnx"),
                             "output": str(work / f"{series}-{context}-{batch}.npy")})
    return jobs


def _rounds(jobs: list[dict], settings: DecodeSettings, work: Path, steps: Steps) -> list[DecodeCell]:
    """Run every job ``rounds`` times round robin; one cell per job (median of all timed steps, largest peak)."""
    raws: list[list[dict]] = [[] for _ in jobs]
    for index in range(settings.rounds):
        suffix = f" (round {index + 1}/{settings.rounds})" if settings.rounds > 1 else ""
        for job, runs in zip(jobs, raws):
            steps.next(f"timing {job['series']} at {format_length(job['context'])}, batch {job['batch']}{suffix}")
            runs.append(run_worker(WORKERS[job["series"]], job, work, job["threads"],
                                   f"{job['series']} at context {format_length(job['context'])}, batch {job['batch']}"))
    cells = []
    for job, runs in zip(jobs, raws):
        times = [t * 1e3 for run in runs for t in run["times_s"]]
        peak = max(runs, key=lambda run: run["peak_kib"] - run["base_kib"])
        cells.append(DecodeCell(job["series"], job["context"], job["batch"], float(np.median(times)), times,
                                (peak["peak_kib"] - peak["base_kib"]) / 1024, peak["peak_kib"] / 1024,
                                runs[0].get("state_mb")))
    return cells


def _compare_full(result: DecodeResult, jobs: list[dict]) -> None:
    """The full graph's logits vs PyTorch eager's on the same input, where both ran."""
    from hyena_deploy.verify.metrics import Tolerance, compare_output

    outputs = {(j["series"], j["context"], j["batch"]): Path(j["output"]) for j in jobs if "output" in j}
    for i, cell in enumerate(result.cells):
        reference = outputs.get(("torch", cell.context, cell.batch))
        if cell.series == "full" and reference is not None:
            want, got = np.load(reference), np.load(outputs["full", cell.context, cell.batch])
            rel = compare_output("logits", f"L={cell.context}", want, got, Tolerance()).rel_l2
            result.cells[i] = replace(cell, rel_l2=rel)
