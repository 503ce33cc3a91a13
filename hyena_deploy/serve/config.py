"""Build a Triton ``config.pbtxt`` for a full-sequence graph or a stateful decode graph.

Full-sequence graphs get ``dynamic_batching`` (requests of equal shape are stacked on axis 0).
Stateful decode graphs get ``sequence_batching`` with implicit state: one ``state`` entry per state
tensor, zero ``initial_state`` (a C1 graph starts a sequence exactly from all-zero states, so
Triton's reset at CONTROL_SEQUENCE_START is all the start flag the graph needs), and the state
tensors kept out of the request inputs and outputs. Graph inputs named like Triton's controls
(:data:`CONTROL_INPUTS`) are wired as ``control_input``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.runtime.layout import StatefulLayout
from hyena_deploy.serve import model_config
from hyena_deploy.serve.signature import Signature, TensorSpec

BACKENDS = ("onnxruntime", "tensorrt")
KINDS = ("cpu", "gpu")
STRATEGIES = ("oldest", "direct")
MODEL_FILES = {"onnxruntime": "model.onnx", "tensorrt": "model.plan"}
CONTROL_INPUTS = {"START": "CONTROL_SEQUENCE_START", "END": "CONTROL_SEQUENCE_END",
                  "READY": "CONTROL_SEQUENCE_READY", "CORRID": "CONTROL_SEQUENCE_CORRID"}
_FLAG_FIELDS = {"TYPE_INT32": "int32_false_true", "TYPE_FP32": "fp32_false_true", "TYPE_BOOL": "bool_false_true"}
_CORRID_TYPES = ("TYPE_UINT64", "TYPE_INT64", "TYPE_UINT32", "TYPE_INT32", "TYPE_STRING")


@dataclass(frozen=True)
class ServeOptions:
    """What the user chose for the repository entry."""

    name: str
    backend: str = "onnxruntime"
    max_batch: int = 8
    instances: int = 1
    kind: str = "cpu"
    strategy: str = "oldest"
    version: int = 1

    def check(self) -> None:
        if self.backend not in BACKENDS:
            raise HyenaDeployError(f"unknown backend {self.backend!r}: choose one of {', '.join(BACKENDS)}")
        if self.kind not in KINDS:
            raise HyenaDeployError(f"unknown instance kind {self.kind!r}: choose cpu or gpu")
        if self.strategy not in STRATEGIES:
            raise HyenaDeployError(f"unknown sequence strategy {self.strategy!r}: choose oldest or direct")
        if self.backend == "tensorrt" and self.kind == "cpu":
            raise HyenaDeployError("TensorRT engines run on GPUs: use --kind gpu with --backend tensorrt")
        if self.max_batch < 0:
            raise HyenaDeployError(f"--max-batch must be >= 0, got {self.max_batch}")
        if self.instances < 1:
            raise HyenaDeployError(f"--instances must be >= 1, got {self.instances}")
        if self.version < 1:
            raise HyenaDeployError(f"--version must be >= 1, got {self.version}")
        if not self.name or not all(c.isalnum() or c in "_.-" for c in self.name) or self.name.startswith("."):
            raise HyenaDeployError(f"model name {self.name!r}: use letters, digits, '_', '-' and '.' only")


def full_sequence_config(signature: Signature, options: ServeOptions):
    """A ModelConfig serving a full-sequence graph with dynamic batching (when max_batch > 0)."""
    config = _base(options)
    _check_batch_axis(signature.inputs + signature.outputs, options.max_batch)
    for spec in signature.inputs:
        _add_tensor(config.input.add(), spec, options.max_batch)
    for spec in signature.outputs:
        _add_tensor(config.output.add(), spec, options.max_batch)
    if options.max_batch > 0:
        config.dynamic_batching.SetInParent()
    return config


def stateful_config(signature: Signature, layout: StatefulLayout, options: ServeOptions):
    """A ModelConfig serving a stateful decode graph with the sequence batcher and implicit state."""
    if options.max_batch < 1:
        raise HyenaDeployError("stateful models are batched on axis 0 of every state: --max-batch must be >= 1")
    if not layout.states:
        raise HyenaDeployError(f"{layout.directory}: the layout lists no state, so there is nothing for "
                               "sequence_batching to carry")
    state_inputs = {s.input for s in layout.states}
    state_outputs = {s.output for s in layout.states}
    controls = [t for t in signature.inputs if t.name in CONTROL_INPUTS]
    requests = [t for t in signature.inputs if t.name not in state_inputs and t.name not in CONTROL_INPUTS]
    responses = [t for t in signature.outputs if t.name not in state_outputs]
    _check_batch_axis([*requests, *responses, *controls], options.max_batch)
    config = _base(options)
    for spec in requests:
        _add_tensor(config.input.add(), spec, options.max_batch)
    for spec in responses:
        _add_tensor(config.output.add(), spec, options.max_batch)
    batching = config.sequence_batching
    if options.strategy == "oldest":
        batching.oldest.max_candidate_sequences = options.max_batch
    else:
        batching.direct.SetInParent()
    for spec in controls:
        _add_control(batching.control_input.add(), spec)
    for state in layout.states:
        spec = signature.input(state.input)
        if spec is None:
            raise HyenaDeployError(f"{layout.decode.name} has no input {state.input!r}, which {layout.directory.name}"
                                   f"/hyena_deploy.json lists as a state")
        if state.shape[0] != "batch":
            raise HyenaDeployError(f"state {state.input}: Triton batches on axis 0, but its batch axis is at "
                                   f"{state.shape.index('batch')}")
        entry = batching.state.add()
        entry.input_name, entry.output_name = state.input, state.output
        entry.data_type = model_config.data_type(spec.type_name)
        entry.dims.extend(state.per_sequence_shape())
        initial = entry.initial_state.add()
        initial.data_type = entry.data_type
        initial.dims.extend(state.per_sequence_shape())
        initial.zero_data = True
        initial.name = "zeros"
    return config


def _base(options: ServeOptions):
    config = model_config.new_config()
    config.name = options.name
    config.backend = options.backend
    config.default_model_filename = MODEL_FILES[options.backend]
    config.max_batch_size = options.max_batch
    group = config.instance_group.add()
    group.count = options.instances
    group.kind = model_config.pb2().ModelInstanceGroup.Kind.Value(f"KIND_{options.kind.upper()}")
    return config


def _check_batch_axis(specs: list[TensorSpec], max_batch: int) -> None:
    if max_batch == 0:
        return
    for spec in specs:
        if not spec.dims or spec.dims[0] is not None:
            batch = spec.dims[0] if spec.dims else "no axes"
            raise HyenaDeployError(f"graph tensor {spec.name!r} has a fixed batch ({batch}): serve it with "
                                   "--max-batch 0, or export with a dynamic batch")


def _add_tensor(entry, spec: TensorSpec, max_batch: int) -> None:
    entry.name = spec.name
    entry.data_type = model_config.data_type(spec.type_name)
    dims = spec.dims[1:] if max_batch > 0 else spec.dims
    entry.dims.extend(-1 if d is None else d for d in dims)


def _add_control(entry, spec: TensorSpec) -> None:
    kind = CONTROL_INPUTS[spec.name]
    type_name = model_config.TRITON_TYPES.get(spec.type_name, spec.type_name)
    entry.name = spec.name
    control = entry.control.add()
    control.kind = model_config.pb2().ModelSequenceBatching.Control.Kind.Value(kind)
    if kind == "CONTROL_SEQUENCE_CORRID":
        if type_name not in _CORRID_TYPES:
            raise HyenaDeployError(f"control input CORRID is {spec.type_name}; Triton sends it as one of "
                                   f"{', '.join(_CORRID_TYPES)}")
        control.data_type = model_config.data_type(spec.type_name)
        return
    if type_name not in _FLAG_FIELDS:
        raise HyenaDeployError(f"control input {spec.name} is {spec.type_name}; Triton sends flags as int32, fp32 "
                               "or bool")
    getattr(control, _FLAG_FIELDS[type_name]).extend([0, 1])
