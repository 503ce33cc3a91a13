"""``hyena-deploy inspect``: what a graph holds and whether a target accepts it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click
import onnx
from rich.markup import escape

from hyena_deploy import onnx_io, targets
from hyena_deploy.compat import verdict
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.metadata import GraphInfo
from hyena_deploy.report import console
from hyena_deploy.rewrite.find import SkippedSite, find_sites


def _dims(vi: onnx.ValueInfoProto) -> str:
    dims = [d.dim_param or str(d.dim_value) if (d.dim_param or d.HasField("dim_value")) else "?"
            for d in vi.type.tensor_type.shape.dim]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type).name
    return escape(f"{vi.name}: {dtype}[{', '.join(dims)}]")


@click.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--target", type=click.Choice(targets.names()),
              help="Report every reason TARGET would reject the graph; exit 0 only when compatible.")
def inspect(model: Path, target: str | None) -> None:
    """Inputs/outputs, op histogram, strategy and length metadata, target compatibility of MODEL.onnx."""
    proto = onnx_io.load(model)
    inits = {i.name for i in proto.graph.initializer}
    console.print("inputs:")
    for vi in proto.graph.input:
        if vi.name not in inits:
            console.print(f"  {_dims(vi)}")
    console.print("outputs:")
    for vi in proto.graph.output:
        console.print(f"  {_dims(vi)}")
    info = GraphInfo.of(proto)
    unknown = "unknown"
    console.print(f"strategy: {info.strategy or 'unknown (not written by hyena-deploy)'}; "
                  f"max sequence length: {info.max_seq_len or unknown}; "
                  f"dynamic length: {unknown if info.dynamic_seq_len is None else str(info.dynamic_seq_len).lower()}; "
                  f"precision: {info.precision if info.version else unknown}; exported for: {info.target or unknown}")
    if info.version:
        console.print(f"long convolutions: {len(info.sites)} "
                      f"({', '.join(sorted({s['strategy'] for s in info.sites})) or 'none'})")
    skipped = [str(SkippedSite(**s)) for s in info.skipped] or [str(s) for s in find_sites(proto)[1]]
    for line in skipped:
        console.print(f"  {escape(line)}")
    console.print("ops: " + ", ".join(f"{op} {n}" for op, n in sorted(Counter(
        (f"{n.domain}::{n.op_type}" if n.domain else n.op_type) for n in proto.graph.node).items())))
    if target is None:
        return
    problems = targets.check(proto, target)
    for p in problems:
        console.print(f"  {p.severity}: {p.op_type} {p.node}: {p.reason}. Fix: {p.fix}")
    if not verdict(problems):
        raise HyenaDeployError(f"not compatible with {target}: "
                               f"{sum(p.severity == 'error' for p in problems)} problem(s) listed above")
    console.print(f"compatible with {target}")
