"""Shared fixtures: paths to the bundled samples and models written elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ELSEWHERE = ROOT / "tests" / "models_elsewhere.py"


@pytest.fixture(scope="session")
def elsewhere() -> str:
    """Prefix for FILE.py:factory sources of the independently written models."""
    return f"{ELSEWHERE}:"
