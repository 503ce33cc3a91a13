"""The one parity driver: a reference runner and a candidate runner over the same cases, and the fail-closed
check every job (export, rewrite, check, bench) ends with."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.runners import Runner
from hyena_deploy.verify.cases import Case
from hyena_deploy.verify.metrics import OutputReport, Tolerance, compare_output


def compare(reference: Runner, candidate: Runner, cases: Iterable[Case], tolerance: Tolerance) -> list[OutputReport]:
    """Every output of ``candidate`` against ``reference`` on every case (outputs paired by position)."""
    reports: list[OutputReport] = []
    for case in cases:
        want = reference.run(case.inputs)
        got = candidate.run(case.inputs)
        if len(want) != len(got):
            raise HyenaDeployError(f"{reference.name} gives {len(want)} outputs, {candidate.name} {len(got)}")
        names = candidate.output_names or reference.output_names or [f"output{i}" for i in range(len(got))]
        reports.extend(compare_output(name, case.label, w, g, tolerance) for name, w, g in zip(names, want, got))
    return reports


def require_parity(reports: list[OutputReport], what: str,
                   explain: Callable[[OutputReport], str] | None = None) -> None:
    """Raise naming the worst failing output (and what ``explain`` finds for it, e.g. the first diverging module)."""
    failed = [r for r in reports if not r.passed]
    if not failed:
        return
    worst = max(failed, key=lambda r: r.rel_l2)
    detail = f"; {explain(worst)}" if explain is not None else ""
    raise HyenaDeployError(f"{what}: {worst.summary()}{detail} (nothing written)")
