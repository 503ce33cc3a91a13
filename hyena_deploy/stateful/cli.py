"""What ``hyena-deploy export --stateful`` runs and prints (the option parsing stays in commands/export.py)."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.report import console, parity_table
from hyena_deploy.stateful.export import export_stateful
from hyena_deploy.verify import Tolerance


def run_stateful_export(source: str, output: Path, *, max_context: int | None, opset: int, tolerance: Tolerance,
                        verify: bool, distilled: Path | None, unsupported: dict[str, object]) -> None:
    """Export the stateful directory ``output``; ``unsupported`` maps options given that it does not take."""
    given = [name for name, value in unsupported.items() if value]
    if given:
        raise HyenaDeployError(f"{', '.join(given)} cannot be combined with --stateful")
    with console.status("exporting (stateful)") as status:
        result = export_stateful(source, output, max_context=max_context, opset=opset, tolerance=tolerance,
                                 verify=verify, distilled=distilled, progress=lambda msg: status.update(msg))
    for note in result.notes:
        console.print(f"note: {escape(note)}")
    layout = result.layout
    kinds = ", ".join(sorted({s["kind"] for s in layout["states"]}))
    console.print(f"{len(layout['states'])} state(s) ({kinds}); max context {layout['max_context']}")
    if result.reports:
        console.print(parity_table(result.reports))
        against = "the distilled graph's" if distilled is not None else "PyTorch"
        console.print(f"greedy decoding equals {against} full recompute over {result.greedy_checked} new tokens")
    for path in result.files:
        console.print(f"wrote {path}")
