"""One decode measurement in a fresh process: ``python -m hyena_deploy.bench.decode_worker JOB.json``.

``stateful``: the torch-free :class:`~hyena_deploy.runtime.Generator` on an export directory;
``stripedhyena``: the ``stripedhyena`` package's own recurrent generation (prefill, then one token
per call). Both decode ``warmup`` untimed then ``tokens`` timed greedy steps (one token per row per
call, the argmax included) with states of ``context`` tokens, and print one JSON line: the wall time
of each timed step, the RSS after the imports (``base_kib``) and the peak RSS of the decoding phase
(``peak_kib``: the mark is reset after the imports and again after a prefill).
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hyena_deploy.bench.worker import peak_rss_kib, reset_peak_rss, time_calls


def steps_before(job: dict) -> int:
    """Tokens the states hold when timing starts: the decoded steps end exactly at ``context``."""
    return max(job["context"] - job["warmup"] - job["tokens"], 1)


def _stateful(job: dict) -> dict:
    """The Generator with random states (or a real prefill) of ``context`` tokens."""
    from hyena_deploy.runtime.generator import Generator

    base = reset_peak_rss()
    generator = Generator(job["directory"], threads=job["threads"])
    rng = np.random.default_rng(job["seed"])
    batch, filled = job["batch"], steps_before(job)
    if job["states"] == "prefill":
        logits, states = generator.prefill(rng.integers(0, generator.vocab_size, (batch, filled)))
        reset_peak_rss()
    else:
        states = {name: (np.full(v.shape, filled) if v.dtype.kind == "i" else 0.1 * rng.standard_normal(v.shape))
                  .astype(v.dtype) for name, v in generator.initial_states(batch).items()}
        logits = np.zeros((batch, 1, generator.vocab_size), dtype=np.float32)
    state_mb = sum(v.nbytes for v in states.values()) / 2**20
    current = {"logits": logits, "states": states}

    def step() -> None:
        token = current["logits"][:, -1].argmax(-1)[:, None]
        current["logits"], current["states"] = generator.step(token, current["states"])

    times = time_calls(step, job["warmup"], job["tokens"])
    return {"times_s": times, "base_kib": base, "peak_kib": peak_rss_kib(), "state_mb": state_mb}


def _stripedhyena(job: dict) -> dict:
    """The package's ``StripedHyena`` (unpatched, the source's weights) prefilling then decoding token by token."""
    import torch
    from stripedhyena import model as sh_model

    from hyena_deploy.sources import load_source

    torch.set_num_threads(job["threads"])
    torch.set_flush_denormal(True)  # the package's decaying modal states otherwise slow it down by up to 20x
    base = reset_peak_rss()
    inner = load_source(job["source"]).module.model
    package = sh_model.StripedHyena(inner.config).eval()
    package.load_state_dict(inner.state_dict())
    del inner  # the loader's exportable copy (real-arithmetic filters, parallel path only)
    rng = np.random.default_rng(job["seed"])
    prompt = torch.from_numpy(rng.integers(0, int(package.config.vocab_size), (job["batch"], steps_before(job))))
    with torch.inference_mode():
        params = package.initialize_inference_params()
        logits, params = package(prompt, inference_params_dict=params)
        _advance(params, prompt.shape[1])
        reset_peak_rss()
        current = {"logits": logits, "params": params}

        def step() -> None:
            token = current["logits"][:, -1].argmax(-1, keepdim=True)
            current["logits"], current["params"] = package(token, inference_params_dict=current["params"])
            _advance(current["params"], 1)

        times = time_calls(step, job["warmup"], job["tokens"])
    return {"times_s": times, "base_kib": base, "peak_kib": peak_rss_kib(), "state_mb": None}


def _advance(params: dict, tokens: int) -> None:
    for p in params.values():
        p.seqlen_offset += tokens


KINDS: dict[str, Callable[[dict], dict]] = {"stateful": _stateful, "stripedhyena": _stripedhyena}
IMPORTS = {"stateful": ("onnxruntime", "hyena_deploy.runtime.generator"),
           "stripedhyena": ("torch", "stripedhyena.model", "hyena_deploy.sources")}


def measure(job: dict) -> dict:
    """Import (before the baseline: imports are not the model's memory), then measure one job."""
    for module in IMPORTS[job["kind"]]:
        importlib.import_module(module)
    return KINDS[job["kind"]](job)


def main() -> None:
    print(json.dumps(measure(json.loads(Path(sys.argv[1]).read_text()))))


if __name__ == "__main__":
    main()
