"""Check a parsed Triton config against the model it serves, before anything is written.

Triton checks the same at load time, on the server; here every input, output, state and control
of the config is matched against the graph (name, data type, dims, batch axis) and, for a stateful
directory, against its layout, so a wrong config is one clear error now instead of a refused load.
"""

from __future__ import annotations

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.runtime.layout import StatefulLayout
from hyena_deploy.serve import model_config
from hyena_deploy.serve.signature import Signature, TensorSpec


def check_config(config, signature: Signature, layout: StatefulLayout | None = None) -> None:
    """Raise HyenaDeployError at the first disagreement between ``config`` and the model."""
    batched = config.max_batch_size > 0
    states = list(config.sequence_batching.state) if config.HasField("sequence_batching") else []
    controls = list(config.sequence_batching.control_input) if states else []
    if layout is not None and not states:
        raise HyenaDeployError(f"config {config.name}: a stateful model needs sequence_batching with its states")
    covered_inputs = [t.name for t in config.input] + [s.input_name for s in states] + [c.name for c in controls]
    covered_outputs = [t.name for t in config.output] + [s.output_name for s in states]
    _same_names("input", covered_inputs, [t.name for t in signature.inputs])
    _same_names("output", covered_outputs, [t.name for t in signature.outputs])
    for entry in config.input:
        _check_tensor("input", entry.name, entry.data_type, list(entry.dims), signature.input(entry.name), batched)
    for entry in config.output:
        _check_tensor("output", entry.name, entry.data_type, list(entry.dims), signature.output(entry.name), batched)
    for state in states:
        _check_state(state, signature, batched)
    if layout is not None:
        _check_layout(states, layout)
    if signature.profile is not None and batched:
        _check_profile(signature, config.max_batch_size)


def _same_names(what: str, config_names: list[str], graph_names: list[str]) -> None:
    duplicates = sorted({n for n in config_names if config_names.count(n) > 1})
    if duplicates:
        raise HyenaDeployError(f"config lists graph {what} {duplicates[0]!r} twice")
    missing = [n for n in graph_names if n not in config_names]
    if missing:
        raise HyenaDeployError(f"graph {what} {missing[0]!r} is not in the config (as a tensor, state or control)")
    extra = [n for n in config_names if n not in graph_names]
    if extra:
        raise HyenaDeployError(f"config names {what} {extra[0]!r}, which the graph does not have")


def _check_tensor(what: str, name: str, data_type: int, dims: list[int], spec: TensorSpec | None,
                  batched: bool) -> None:
    if spec is None:
        raise HyenaDeployError(f"config {what} {name!r} is not a graph {what}")
    want = model_config.data_type(spec.type_name)
    if data_type != want:
        raise HyenaDeployError(f"{what} {name}: config says {model_config.data_type_name(data_type)}, the graph "
                               f"has {model_config.data_type_name(want)}")
    graph_dims = list(spec.dims)
    if batched:
        if not graph_dims or graph_dims[0] is not None:
            raise HyenaDeployError(f"{what} {name}: max_batch_size > 0 but the graph's axis 0 is "
                                   f"{graph_dims[0] if graph_dims else 'missing'}, not a dynamic batch")
        graph_dims = graph_dims[1:]
    expected = [-1 if d is None else d for d in graph_dims]
    if dims != expected:
        raise HyenaDeployError(f"{what} {name}: config dims {dims} differ from the graph's {expected}"
                               f"{' (batch axis excluded)' if batched else ''}")


def _check_state(state, signature: Signature, batched: bool) -> None:
    for what, name, spec in (("input", state.input_name, signature.input(state.input_name)),
                             ("output", state.output_name, signature.output(state.output_name))):
        _check_tensor(f"state {what}", name, state.data_type, list(state.dims), spec, batched)
    if len(state.initial_state) != 1 or not state.initial_state[0].HasField("zero_data"):
        raise HyenaDeployError(f"state {state.input_name}: needs one zero_data initial_state (the first request of "
                               "a sequence would otherwise read uninitialized memory)")
    initial = state.initial_state[0]
    if initial.data_type != state.data_type or list(initial.dims) != list(state.dims):
        raise HyenaDeployError(f"state {state.input_name}: initial_state {model_config.data_type_name(initial.data_type)}"
                               f" {list(initial.dims)} differs from the state's "
                               f"{model_config.data_type_name(state.data_type)} {list(state.dims)}")


def _check_layout(states, layout: StatefulLayout) -> None:
    by_input = {s.input_name: s for s in states}
    names = sorted(by_input)
    listed = sorted(s.input for s in layout.states)
    if names != listed:
        missing = sorted(set(listed) - set(names)) or sorted(set(names) - set(listed))
        raise HyenaDeployError(f"config states and hyena_deploy.json states differ (first: {missing[0]})")
    for entry in layout.states:
        state = by_input[entry.input]
        if state.output_name != entry.output:
            raise HyenaDeployError(f"state {entry.input}: config pairs it with {state.output_name}, the layout with "
                                   f"{entry.output}")
        if list(state.dims) != list(entry.per_sequence_shape()):
            raise HyenaDeployError(f"state {entry.input}: config dims {list(state.dims)} differ from the layout's "
                                   f"{list(entry.per_sequence_shape())}")
        want = model_config.data_type(model_config.NUMPY_TO_ONNX.get(entry.dtype, entry.dtype.upper()))
        if state.data_type != want:
            raise HyenaDeployError(f"state {entry.input}: config says {model_config.data_type_name(state.data_type)},"
                                   f" the layout {entry.dtype}")


def _check_profile(signature: Signature, max_batch: int) -> None:
    for spec in signature.inputs:
        if spec.name not in signature.profile:
            raise HyenaDeployError(f"engine profile has no shape for input {spec.name!r}")
        low, high = signature.profile[spec.name]
        if low[0] > 1 or high[0] < max_batch:
            raise HyenaDeployError(f"input {spec.name}: the engine takes batch {low[0]}..{high[0]}, but "
                                   f"max_batch_size {max_batch} needs 1..{max_batch}: rebuild with a wider profile "
                                   "or lower --max-batch")
