"""Verification tells right from wrong: each mutation of an exported FFT convolution must fail parity.

The mutations are applied to the first rewritten site of a model written elsewhere (tests/models_elsewhere.py):
through the strategy builder (the filter it is handed) or in the rewritten graph (the skip term).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import pytest

import hyena_deploy.jobs.export as pipeline
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.graph import consumers
from hyena_deploy.sources import load_source
from hyena_deploy.strategies import BUILDERS

LENGTH = 96


def _delayed(h: np.ndarray, lead: int) -> tuple[np.ndarray, int]:
    out = np.zeros_like(h)
    out[..., 1:] = h[..., :-1]
    return out, lead


def _crop_off_by_one(h: np.ndarray, lead: int) -> tuple[np.ndarray, int]:
    return h, lead + 1  # every tap one lag earlier: y'[t] = y[t + 1]


def _one_channel(h: np.ndarray, lead: int) -> tuple[np.ndarray, int]:
    out = h.copy()
    out.reshape(-1, h.shape[-1])[0] *= 1 + 1e-3
    return out, lead


def _wrong_gain(h: np.ndarray, lead: int) -> tuple[np.ndarray, int]:
    return h * (1 + 1e-3), lead


FILTER_MUTATIONS: dict[str, Callable[[np.ndarray, int], tuple[np.ndarray, int]]] = {
    "filter shifted by one tap": _delayed, "output crop off by one": _crop_off_by_one,
    "one channel's filter scaled by 1 + 1e-3": _one_channel, "site folded with the wrong gain": _wrong_gain}


@pytest.fixture(scope="module")
def loaded(elsewhere: str):
    return load_source(elsewhere + "lm")


def _export(loaded, tmp_path):
    return pipeline.export_model(loaded, tmp_path / "m.onnx", fftconv="direct", seq_len=LENGTH)


def test_the_unmutated_export_passes(loaded, tmp_path):
    result = _export(loaded, tmp_path)
    assert result.reports and all(r.passed for r in result.reports)


@pytest.mark.parametrize("mutation", list(FILTER_MUTATIONS))
def test_a_mutated_filter_fails_verification(loaded, tmp_path, monkeypatch, mutation):
    real = BUILDERS["direct"]
    calls = []

    def mutated(nb, signal, output, h, lead=0):
        if not calls:
            h, lead = FILTER_MUTATIONS[mutation](h, lead)
        calls.append(output)
        return real(nb, signal, output, h, lead=lead) if lead else real(nb, signal, output, h)

    monkeypatch.setitem(BUILDERS, "direct", mutated)
    with pytest.raises(HyenaDeployError, match="parity failed"):
        _export(loaded, tmp_path)
    assert calls and not (tmp_path / "m.onnx").exists()


def test_a_dropped_skip_term_fails_verification(loaded, tmp_path, monkeypatch):
    real = pipeline.run_passes

    def without_skip(model, passes):
        result = real(model, passes)
        site = result.sites[0].output
        graph = result.model.graph
        (add,) = [n for n in consumers(graph)[site] if n.op_type == "Add"]
        replacement = onnx.helper.make_node("Identity", [site], list(add.output), name=add.name)
        graph.node[list(graph.node).index(add)].CopyFrom(replacement)
        return result

    monkeypatch.setattr(pipeline, "run_passes", without_skip)
    with pytest.raises(HyenaDeployError, match="parity failed"):
        _export(loaded, tmp_path)
