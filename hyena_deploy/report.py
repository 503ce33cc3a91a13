"""Human-readable tables (rich) and JSON reports of parity results."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hyena_deploy.files import write_atomic
from hyena_deploy.verify import OutputReport

console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)


def parity_table(reports: list[OutputReport], title: str = "parity vs PyTorch fp32") -> Table:
    """One row per (input case, output): max abs, max rel, p99 rel, rel L2, cosine, verdict."""
    table = Table(title=title, show_lines=False)
    for column in ("case", "output", "max abs", "max rel", "p99 rel", "rel L2", "cosine", ""):
        table.add_column(column, justify="left" if column in ("case", "output") else "right")
    for r in reports:
        verdict = "[green]PASSED[/green]" if r.passed else "[red]FAILED[/red]"
        table.add_row(r.case, r.output, f"{r.max_abs:.2e}", f"{r.max_rel:.2e}", f"{r.p99_rel:.2e}",
                      f"{r.rel_l2:.2e}", f"{r.cosine:.9f}", verdict)
    return table


def write_json(path: Path, payload: dict) -> None:
    """Write a JSON report atomically."""
    write_atomic(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())
