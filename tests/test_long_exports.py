"""Honest fp32 exports at long lengths pass the default rule (no hand-tuned tolerance)."""

from __future__ import annotations

import pytest

from hyena_deploy.jobs.export import export_model


@pytest.mark.parametrize("length", [16384, 65536])
def test_default_export_passes_at_long_lengths(elsewhere, tmp_path, length):
    result = export_model(elsewhere + "lm_long", tmp_path / "m.onnx", seq_len=length, batch=1)
    assert result.sites and result.reports and all(r.passed for r in result.reports)
    worst = max(r.rel_l2 for r in result.reports)
    assert worst < 1e-5 and result.files[0].exists()
