"""Static check of an ONNX graph against what a runtime accepts (TensorRT 10, TensorRT 11, ONNX Runtime CPU/GPU).

Everything a runtime accepts or rejects is data: one :class:`Rules` per runtime, named by the target table
(:mod:`hyena_deploy.targets`); :func:`check_compatibility` only walks the graph (subgraphs included) and looks
things up. Facts come from
``/work/shared/docs/deploy-toolchain.md`` §1 (TensorRT parser) and §3 (ONNX Runtime).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import onnx
from onnx import TensorProto

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.plugins.schema import DOMAIN as PLUGIN_DOMAIN
from hyena_deploy.plugins.schema import OP_TYPE as PLUGIN_OP_TYPE

ERROR, WARNING = "error", "warning"

_NO_DFT_FIX = "re-export or `hyena-deploy rewrite` with --fftconv monarch (or direct/plugin)"
_GPU_FIX = "re-export or `hyena-deploy rewrite` with --fftconv monarch to run the FFT convolutions on the GPU"
_FLOAT_TYPES = frozenset({TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.UNDEFINED})
_STANDARD_DOMAINS = frozenset({"", "ai.onnx"})


@dataclass(frozen=True)
class Problem:
    """One reason a graph may not run on a target; ``node``/``op_type`` are empty for graph-level tensors."""

    node: str
    op_type: str
    reason: str
    fix: str
    severity: str = ERROR
    code: str = "unsupported-op"

    def __str__(self) -> str:
        where = f"node {self.node!r} ({self.op_type}): " if self.op_type else ""
        return f"{where}{self.reason}; fix: {self.fix}"


@dataclass(frozen=True)
class OpRule:
    """A problem raised by every node of one (domain, op type).

    ``input_types`` limits it to nodes whose first input has one of these element types
    (``UNDEFINED`` = not known statically). ``reason`` may use ``{op}``, ``{domain}``,
    ``{namespace}`` and ``{version}`` (the TensorRT plugin lookup keys of the node).
    """

    severity: str
    reason: str
    fix: str
    code: str = "unsupported-op"
    input_types: frozenset[int] | None = None


@dataclass(frozen=True)
class ConstInput:
    """Input ``index`` of an op must be an initializer or a Constant output."""

    index: int
    severity: str
    reason: str
    fix: str


@dataclass(frozen=True)
class Rules:
    """What one runtime accepts."""

    label: str
    ops: Mapping[tuple[str, str], tuple[OpRule, ...]]
    const_inputs: Mapping[str, tuple[ConstInput, ...]] = field(default_factory=dict)
    known_domains: frozenset[str] = _STANDARD_DOMAINS
    accepted_custom: frozenset[tuple[str, str]] = frozenset()
    custom_op: OpRule | None = None           # nodes of other domains; None = accepted
    complex_severity: str | None = ERROR
    double_severity: str | None = None
    max_rank: int | None = None


def _rule(severity: str, reason: str, fix: str, code: str = "unsupported-op",
          input_types: frozenset[int] | None = None) -> tuple[OpRule, ...]:
    return (OpRule(severity, reason, fix, code, input_types),)


_TRT_COMMON_OPS: dict[tuple[str, str], tuple[OpRule, ...]] = {
    ("", "STFT"): _rule(WARNING, "STFT is imported only since TensorRT 10.5, for real input with initializer "
                        "frame_step and window, and cannot invert a transform", _NO_DFT_FIX),
    ("", "MelWeightMatrix"): _rule(ERROR, "TensorRT has no MelWeightMatrix importer",
                                   "precompute it as an initializer"),
    **{("", op): _rule(WARNING, f"TensorRT imports {op} with restrictions (a poor fit for FFT rewrites)",
                       "use a strategy without control flow: --fftconv monarch (or direct/plugin)")
       for op in ("Loop", "If", "Scan")},
    **{("com.microsoft", op): _rule(ERROR, f"contrib op com.microsoft::{op} needs a third-party TensorRT plugin "
                                    "(e.g. tensorrt-dft-plugins)", _NO_DFT_FIX)
       for op in ("Rfft", "Irfft")},
    (PLUGIN_DOMAIN, PLUGIN_OP_TYPE): _rule(
        WARNING, "the hyena-deploy FFTConv node (strategy plugin) builds only with its TensorRT plugin library "
        "loaded (plugin '{op}', plugin_namespace {namespace}, plugin_version '{version}')",
        "pass --plugin-lib PATH to the hyena_deploy FFTConv plugin library to `hyena-deploy build`, "
        "or re-export with --fftconv monarch", code="plugin-required"),
}
_TRT_CONST_INPUTS = {
    "Conv": (ConstInput(1, WARNING, "Conv weight {name!r} is not an initializer or Constant; TensorRT 10+ accepts "
                        "dynamic Conv weights (7.x-8.4 did not)", "fold it into an initializer (e.g. onnxsim); "
                        "--fftconv direct emits constant kernels"),
             ConstInput(2, ERROR, "TensorRT needs the Conv bias {name!r} as an initializer",
                        "fold the bias into an initializer (e.g. onnxsim), or re-export with --fftconv monarch")),
    "STFT": (ConstInput(1, ERROR, "TensorRT needs the STFT frame_step {name!r} as an initializer", _NO_DFT_FIX),
             ConstInput(2, ERROR, "TensorRT needs the STFT window {name!r} as an initializer", _NO_DFT_FIX)),
    "CumSum": (ConstInput(1, ERROR, "TensorRT needs the CumSum axis {name!r} as a build-time constant",
                          "fold the axis into an initializer (e.g. onnxsim)"),),
}
_TRT_CUSTOM = OpRule(
    WARNING, "TensorRT has no importer for {domain}::{op} and ignores its domain: it looks up a plugin by op type "
    "'{op}' (plugin_namespace {namespace}, plugin_version '{version}'); the build fails unless a loaded library "
    "registers it", "pass --plugin-lib PATH to `hyena-deploy build`, or replace the op", code="plugin-required")

_TRT_BASE = dict(const_inputs=MappingProxyType(_TRT_CONST_INPUTS), custom_op=_TRT_CUSTOM,
                 complex_severity=ERROR, double_severity=WARNING, max_rank=8)

TENSORRT_10 = Rules(
        label="TensorRT 10.x (and 11.0-11.1)",
        ops=MappingProxyType({
            **_TRT_COMMON_OPS,
            ("", "DFT"): _rule(ERROR, "TensorRT has no DFT importer before 11.2", _NO_DFT_FIX),
        }),
        **_TRT_BASE)
TENSORRT_11 = Rules(
        label="TensorRT 11.2+",
        ops=MappingProxyType({
            **_TRT_COMMON_OPS,
            ("", "DFT"): _rule(WARNING, "DFT maps to TensorRT's cuFFT FFTPlugin, which needs power-of-two signal "
                               "lengths for fp16/bf16 input", "keep the FFT in fp32, use power-of-two FFT sizes, or "
                               "re-export with --fftconv monarch", input_types=_FLOAT_TYPES),
        }),
        **_TRT_BASE)


def _ort_dft(warning: str) -> tuple[OpRule, ...]:
    """ONNX Runtime's DFT: one kernel (CPU, float/double): ``warning`` for those, an error for fp16/bf16."""
    return (OpRule(WARNING, warning, _GPU_FIX,
                   input_types=frozenset({TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.UNDEFINED})),
            OpRule(ERROR, "ONNX Runtime's DFT kernel (CPU only) takes float/double only", _NO_DFT_FIX,
                   input_types=frozenset({TensorProto.FLOAT16, TensorProto.BFLOAT16})))


ONNXRUNTIME = Rules(
        label="ONNX Runtime (CPU)",
        ops=MappingProxyType({
            ("", "DFT"): _ort_dft("ONNX Runtime runs DFT on the CPU only (no CUDA kernel) and loses ~1e-4 relative "
                                  "accuracy at non-power-of-two sizes"),
            **{("com.microsoft", op): _rule(ERROR, f"com.microsoft::{op} has no CPU kernel in ONNX Runtime "
                                            "(CUDA execution provider only)", "re-export with --fftconv monarch or dft")
               for op in ("Rfft", "Irfft")},
        }),
        known_domains=_STANDARD_DOMAINS | {"ai.onnx.ml", "com.microsoft"},
        accepted_custom=frozenset({(PLUGIN_DOMAIN, PLUGIN_OP_TYPE)}),  # hyena-deploy registers this custom op
        custom_op=OpRule(ERROR, "ONNX Runtime has no kernel for {domain}::{op} unless a custom-op library "
                         "registers one", "register a custom-op library, or re-export with --fftconv monarch",
                         code="custom-op"),
        complex_severity=WARNING)
# The CUDA execution provider has no DFT kernel (ONNX Runtime places DFT on the CPU, with copies around it),
# but it runs com.microsoft Rfft/Irfft; everything else is as on the CPU.
ONNXRUNTIME_GPU = replace(
    ONNXRUNTIME, label="ONNX Runtime (CUDA)",
    ops=MappingProxyType({
        ("", "DFT"): _ort_dft("ONNX Runtime's CUDA provider has no DFT kernel: DFT runs on the CPU, with device "
                              "copies around every FFT"),
    }))


def check_compatibility(model: onnx.ModelProto, spec: Rules) -> list[Problem]:
    """Every problem ``model`` has on the runtime ``spec`` describes, in graph order."""
    model = _inferred(model)
    tensors = _tensor_table(model.graph)
    constants = _constant_names(model.graph)
    problems: list[Problem] = []
    for node in _nodes(model.graph):
        problems += _node_problems(node, spec, tensors)
        problems += _const_input_problems(node, spec, constants)
    problems += _tensor_problems(model.graph, spec, tensors)
    return problems


def require_compatible(model: onnx.ModelProto, spec: Rules, what: str) -> list[Problem]:
    """Raise ``what: <first error, with its fix>`` when ``spec`` rejects ``model``; else the warnings."""
    problems = check_compatibility(model, spec)
    errors = [p for p in problems if p.severity == ERROR]
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise HyenaDeployError(f"{what}: {errors[0]}{more}")
    return [p for p in problems if p.severity != ERROR]


def verdict(problems: list[Problem]) -> bool:
    """True when no problem is an error (warnings alone leave the graph compatible)."""
    return not any(p.severity == ERROR for p in problems)


def _inferred(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with inferred value_info, or the model itself when inference fails.

    Shape inference only adds ranks and element types; it raises on graphs above 2 GB, on
    malformed graphs and on some custom-op setups, and the check must still run then.
    """
    try:
        return onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - any inference failure just means fewer known ranks
        return model


def _domain(node: onnx.NodeProto) -> str:
    return "" if node.domain in _STANDARD_DOMAINS else node.domain


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and every subgraph (If/Loop/Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                yield from _graphs(sub)


def _nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    for g in _graphs(graph):
        yield from g.node


def _tensor_table(graph: onnx.GraphProto) -> dict[str, tuple[int, int | None]]:
    """Element type and rank (None when unknown) of every typed tensor, subgraphs included."""
    table: dict[str, tuple[int, int | None]] = {}
    for g in _graphs(graph):
        for vi in [*g.input, *g.output, *g.value_info]:
            if vi.type.HasField("tensor_type"):
                tt = vi.type.tensor_type
                table[vi.name] = (tt.elem_type, len(tt.shape.dim) if tt.HasField("shape") else None)
        for init in g.initializer:
            table[init.name] = (init.data_type, len(init.dims))
        for node in g.node:
            if node.op_type == "Constant" and _domain(node) == "":
                for attr in node.attribute:
                    if attr.name == "value" and attr.HasField("t"):
                        table[node.output[0]] = (attr.t.data_type, len(attr.t.dims))
    return table


def _constant_names(graph: onnx.GraphProto) -> set[str]:
    names: set[str] = set()
    for g in _graphs(graph):
        names.update(init.name for init in g.initializer)
        names.update(n.output[0] for n in g.node if n.op_type == "Constant" and _domain(n) == "" and n.output)
    return names


def _attr_text(node: onnx.NodeProto, name: str) -> str | None:
    for attr in node.attribute:
        if attr.name == name:
            value = onnx.helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def _node_problems(node: onnx.NodeProto, spec: Rules, tensors: dict[str, tuple[int, int | None]]) -> list[Problem]:
    key = (_domain(node), node.op_type)
    rules = spec.ops.get(key)
    if rules is None:
        if key[0] in spec.known_domains or key in spec.accepted_custom or spec.custom_op is None:
            return []
        rules = (spec.custom_op,)
    first_type = tensors.get(node.input[0], (TensorProto.UNDEFINED, None))[0] if node.input else TensorProto.UNDEFINED
    namespace = _attr_text(node, "plugin_namespace")
    fields = dict(op=node.op_type, domain=node.domain or "ai.onnx",
                  namespace=f"'{namespace}'" if namespace is not None else "'', none set",
                  version=_attr_text(node, "plugin_version") or "1")
    return [Problem(node.name, node.op_type, rule.reason.format(**fields), rule.fix, rule.severity, rule.code)
            for rule in rules if rule.input_types is None or first_type in rule.input_types]


def _const_input_problems(node: onnx.NodeProto, spec: Rules, constants: set[str]) -> list[Problem]:
    rules = spec.const_inputs.get(node.op_type, ()) if _domain(node) == "" else ()
    return [Problem(node.name, node.op_type, rule.reason.format(name=node.input[rule.index]), rule.fix,
                    rule.severity, "constant-input")
            for rule in rules
            if len(node.input) > rule.index and node.input[rule.index] and node.input[rule.index] not in constants]


def _tensor_problems(graph: onnx.GraphProto, spec: Rules,
                     tensors: dict[str, tuple[int, int | None]]) -> list[Problem]:
    made_by = {out: node for g in _graphs(graph) for node in g.node for out in node.output}
    problems = []
    for name, (elem_type, rank) in tensors.items():
        node = made_by.get(name)
        where = (node.name, node.op_type) if node is not None else ("", "")
        type_name = TensorProto.DataType.Name(elem_type) if elem_type in TensorProto.DataType.values() else "?"
        if elem_type in (TensorProto.COMPLEX64, TensorProto.COMPLEX128) and spec.complex_severity:
            problems.append(Problem(*where, f"tensor {name!r} is {type_name}; {spec.label} has no complex types",
                                    "re-export or `hyena-deploy rewrite` with --fftconv monarch (real [..., 2] "
                                    "arithmetic)", spec.complex_severity, "complex"))
        if elem_type == TensorProto.DOUBLE and spec.double_severity:
            problems.append(Problem(*where, f"tensor {name!r} is DOUBLE; {spec.label} casts it to FLOAT",
                                    "export in float32", spec.double_severity, "double"))
        if spec.max_rank is not None and rank is not None and rank > spec.max_rank:
            problems.append(Problem(*where, f"tensor {name!r} has rank {rank}; {spec.label} allows at most "
                                    f"{spec.max_rank} dims", "reshape to at most 8 dims before export; the "
                                    "monarch, direct and plugin strategies stay within rank 5", ERROR, "rank"))
    return problems
