"""Options shared by several commands."""

from __future__ import annotations

import click

from hyena_deploy.verify import Tolerance, parse_overrides


def tolerance_options(func):
    """--atol/--rtol (repeatable, ``name:value`` per output) and --max-rel-l2."""
    func = click.option("--max-rel-l2", type=float,
                        help=f"Fail an output whose relative L2 error exceeds this (default {Tolerance.max_rel_l2}; "
                             "1e-2 for fp16 and 3e-2 for bf16 models).")(func)
    func = click.option("--rtol", multiple=True, metavar="R|NAME:R",
                        help=f"Relative tolerance (default {Tolerance.rtol}); NAME:R overrides one output.")(func)
    func = click.option("--atol", multiple=True, metavar="A|NAME:A",
                        help=f"Absolute tolerance (default {Tolerance.atol}); NAME:A overrides one output. "
                             "An element fails only when both are exceeded (Polygraphy semantics).")(func)
    return func


def make_tolerance(atol: tuple[str, ...], rtol: tuple[str, ...], max_rel_l2: float | None,
                   base: Tolerance = Tolerance()) -> Tolerance:
    """Build a Tolerance from the raw option values (validated there); ``base`` fills what is not given."""
    max_rel_l2 = base.max_rel_l2 if max_rel_l2 is None else max_rel_l2
    a_default, a_over = parse_overrides(atol, "--atol")
    r_default, r_over = parse_overrides(rtol, "--rtol")
    overrides = tuple((name, a_over.get(name), r_over.get(name)) for name in sorted(set(a_over) | set(r_over)))
    for name, a, r in overrides:
        Tolerance(a if a is not None else 1.0, r if r is not None else 1.0, max_rel_l2)  # validate
    return Tolerance(base.atol if a_default is None else a_default,
                     base.rtol if r_default is None else r_default, max_rel_l2, overrides)
