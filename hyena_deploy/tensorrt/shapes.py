"""Optimization-profile shapes: ``--min/--opt/--max-shapes`` parsing, defaults from the model, merging.

Defaults, per dimension of every graph input (inputs have batch on axis 0 and sequence on axis 1):

* static dims are fixed (min = opt = max = the model's value);
* a dynamic batch axis is ``min 1, opt 1, max`` :data:`DEFAULT_MAX_BATCH`. The profile's max sizes
  the activation memory and FFT workspaces the engine reserves, so the default is a modest serving
  batch; pass ``--max-shapes`` for more;
* a dynamic sequence axis is ``min 1, opt = max = max_seq_len`` (ONNX metadata). Opt sits at the
  maximum on purpose: the monarch, dft and plugin FFT convolutions pad every sequence to one FFT
  size fixed by ``max_seq_len``, so their cost barely depends on L, and tuning the remaining layers
  for the longest sequence optimises the worst-case latency a deployment is sized for, instead of a
  short-sequence shape whose tactics can be slow at full length. Pass ``--opt-shapes`` to tune for a
  typical shorter length;
* any other dynamic dim has no default: the user must give at least its opt or max.

User shapes replace the defaults of the inputs they name, and the missing ones are derived from them:
a missing max grows to cover the given min/opt, a missing opt is the default opt clamped into
[min, max] (or the max when there is no default). Then min <= opt <= max, static dims and
``max_seq_len`` are checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import onnx

from hyena_deploy import metadata
from hyena_deploy.errors import HyenaDeployError

DEFAULT_MAX_BATCH = 8
KINDS = ("min", "opt", "max")
_DIMS = re.compile(r"[0-9]+(x[0-9]+)*")

Shape = tuple[int, ...]


@dataclass(frozen=True)
class InputShape:
    """The min/opt/max shapes of one engine input."""

    name: str
    min: Shape
    opt: Shape
    max: Shape

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_json(cls, data: dict) -> InputShape:
        return cls(str(data["name"]), *(tuple(int(d) for d in data[kind]) for kind in KINDS))

    def __str__(self) -> str:
        return f"{self.name}: " + " / ".join(format_shape(s) for s in (self.min, self.opt, self.max))


@dataclass(frozen=True)
class DimDefault:
    """Default range of one input dimension; ``opt``/``max`` None when the model gives none."""

    min: int
    opt: int | None
    max: int | None
    label: str                 # "fixed", "batch", "seq" or the dim_param
    limit: int | None = None   # largest value the graph accepts (max_seq_len)


def format_shape(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def parse_shapes(text: str | None, option: str) -> dict[str, Shape]:
    """``name:1x4096,other:2x8x16`` as ``{name: (1, 4096), other: (2, 8, 16)}``; the name is what
    precedes the last ``:`` (names may contain ``:``)."""
    shapes: dict[str, Shape] = {}
    for item in text.split(",") if text else ():
        name, sep, dims = item.strip().rpartition(":")
        if not sep or not name:
            raise HyenaDeployError(f"{option}: {item.strip()!r} is not NAME:DIMS (e.g. u:1x4096)")
        if not _DIMS.fullmatch(dims.strip()):
            raise HyenaDeployError(f"{option}: {item.strip()!r}: dims must be integers joined by 'x' (e.g. 1x4096)")
        shape = tuple(int(d) for d in dims.strip().split("x"))
        if min(shape) <= 0:
            raise HyenaDeployError(f"{option}: {item.strip()!r}: every dim must be positive")
        if name in shapes:
            raise HyenaDeployError(f"{option}: input {name!r} is given twice")
        shapes[name] = shape
    return shapes


def _max_seq_len(meta: dict[str, str]) -> int | None:
    text = meta.get("max_seq_len")
    if text is None:
        return None
    if not text.isdigit() or int(text) <= 0:
        raise HyenaDeployError(f"model metadata {metadata.MAX_SEQ_LEN} is {text!r}, not a positive integer")
    return int(text)


def dim_defaults(model: onnx.ModelProto) -> dict[str, tuple[DimDefault, ...] | None]:
    """Default range of every dimension of every graph input (None: the input's rank is unknown)."""
    meta = metadata.read(model)
    max_len = _max_seq_len(meta)
    initializers = {init.name for init in model.graph.initializer}
    defaults: dict[str, tuple[DimDefault, ...] | None] = {}
    for vi in model.graph.input:
        if vi.name in initializers:
            continue
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            defaults[vi.name] = None
            continue
        dims = []
        for axis, dim in enumerate(tt.shape.dim):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                dims.append(DimDefault(dim.dim_value, dim.dim_value, dim.dim_value, "fixed"))
            elif axis == 0 and (dim.dim_param == "batch" or meta.get("dynamic_batch") == "true"):
                dims.append(DimDefault(1, 1, DEFAULT_MAX_BATCH, "batch"))
            elif axis == 1 and max_len and (dim.dim_param == "seq" or meta.get("dynamic_seq_len") == "true"):
                # A stateful decode graph (export --stateful) spends its time on one token per call.
                opt = 1 if meta.get("stateful") == "true" else max_len
                dims.append(DimDefault(1, opt, max_len, "seq", limit=max_len))
            else:
                dims.append(DimDefault(1, None, None, dim.dim_param or "dynamic"))
        defaults[vi.name] = tuple(dims)
    return defaults


def default_profile(model: onnx.ModelProto) -> tuple[InputShape, ...]:
    """The profile used when no shapes are given; raises for dynamic dims without a default."""
    return resolve_profile(model)


def resolve_profile(model: onnx.ModelProto, min_shapes: str | None = None, opt_shapes: str | None = None,
                    max_shapes: str | None = None) -> tuple[InputShape, ...]:
    """User shapes (option strings) merged over :func:`dim_defaults`, validated, in input order."""
    defaults = dim_defaults(model)
    given = {kind: parse_shapes(text, f"--{kind}-shapes")
             for kind, text in zip(KINDS, (min_shapes, opt_shapes, max_shapes))}
    for kind, shapes in given.items():
        unknown = sorted(set(shapes) - set(defaults))
        if unknown:
            raise HyenaDeployError(f"--{kind}-shapes names unknown input(s) {', '.join(map(repr, unknown))}; "
                                   f"the model's inputs are {', '.join(map(repr, defaults)) or 'none'}")
    return tuple(_resolve_input(name, dims, {kind: given[kind].get(name) for kind in KINDS})
                 for name, dims in defaults.items())


def _resolve_input(name: str, dims: tuple[DimDefault, ...] | None, user: dict[str, Shape | None]) -> InputShape:
    ranks = {kind: len(shape) for kind, shape in user.items() if shape is not None}
    if dims is None:
        if not ranks:
            raise HyenaDeployError(f"input {name!r} has no shape in the model: pass its shapes with "
                                   f"--min-shapes/--opt-shapes/--max-shapes {name}:DxD...")
        dims = tuple(DimDefault(1, None, None, "dynamic") for _ in range(next(iter(ranks.values()))))
    for kind, rank in ranks.items():
        if rank != len(dims):
            raise HyenaDeployError(f"--{kind}-shapes gives {name!r} {rank} dims; the model input has {len(dims)}")
    ranges = [_resolve_dim(name, axis, d, {k: s[axis] if s else None for k, s in user.items()}, dims)
              for axis, d in enumerate(dims)]
    return InputShape(name, *(tuple(r[i] for r in ranges) for i in range(3)))


def _resolve_dim(name: str, axis: int, d: DimDefault, user: dict[str, int | None],
                 dims: tuple[DimDefault, ...]) -> tuple[int, int, int]:
    where = f"input {name!r} axis {axis} ({d.label})"
    if d.label == "fixed":
        for kind, value in user.items():
            if value is not None and value != d.min:
                raise HyenaDeployError(f"{where} is fixed at {d.min} in the model; --{kind}-shapes gives {value}")
    if d.max is None and user["opt"] is None and user["max"] is None:
        example = format_shape(tuple(x.max or 1 for x in dims))
        raise HyenaDeployError(f"{where} is dynamic and has no default range: pass --max-shapes {name}:{example} "
                               "with its largest size (and --min-shapes/--opt-shapes as needed)")
    low = user["min"] if user["min"] is not None else d.min
    high = user["max"] if user["max"] is not None else max(x for x in (d.max, user["opt"], low) if x is not None)
    if user["opt"] is not None:
        opt = user["opt"]
    else:
        opt = min(max(d.opt, low), high) if d.opt is not None else high
    if not low <= opt <= high:
        raise HyenaDeployError(f"{where}: min {low} <= opt {opt} <= max {high} does not hold")
    if d.limit is not None and high > d.limit:
        raise HyenaDeployError(f"{where}: max {high} exceeds the model's max_seq_len {d.limit}; "
                               "re-export with a larger --max-seq-len")
    return low, opt, high
