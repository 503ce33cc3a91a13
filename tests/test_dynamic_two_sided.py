"""Dynamic length for non-causal models: exact where two-sided FFT convolutions cause it, refused otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.jobs.export import export_model

STYLES = Path(__file__).with_name("models_styles.py")


@pytest.mark.parametrize("factory", ["m2_bert_bidirectional", "centred_same"])
def test_two_sided_models_export_with_a_dynamic_length(tmp_path, factory):
    result = export_model(f"{STYLES}:{factory}", tmp_path / "m.onnx", fftconv="monarch", max_seq_len=64)
    assert result.dynamic_seq_len and any(site.lead for site in result.sites)
    assert {r.case.split()[-1] for r in result.reports} >= {"L=1", "L=17", "L=64"}
    assert all(r.passed for r in result.reports)


def test_a_flip_is_still_refused_a_dynamic_length(tmp_path):
    with pytest.raises(HyenaDeployError, match="not causal along axis 1.*export with --seq-len"):
        export_model(f"{STYLES}:caduceus_bidirectional", tmp_path / "m.onnx", fftconv="monarch", max_seq_len=64)
    assert not (tmp_path / "m.onnx").exists()


def test_unverified_two_sided_dynamic_exports_are_refused(tmp_path):
    with pytest.raises(HyenaDeployError, match="not causal along axis 1"):
        export_model(f"{STYLES}:centred_same", tmp_path / "m.onnx", fftconv="monarch", max_seq_len=64, verify=False)
