"""Triton's batchers without a server: drive the packaged model exactly as Triton would, then compare.

:class:`SequenceBatcher` follows the sequence batcher with implicit state: each sequence
(correlation id) keeps its own state between requests; a START request begins from the config's
``initial_state`` (zeros), whatever the sequence held; the output state of request i is the input
state of request i+1; END frees it. Requests of different sequences with equal shapes run as one
batch (states stacked on axis 0): ``oldest`` takes them oldest first, ``direct`` keeps each sequence
in its own batch slot and fills idle slots with zeros (READY false). The greedy client
(:func:`greedy_tokens`) sends a prompt with START and then one token per request, as a Triton
client generating text would.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hyena_deploy.errors import HyenaDeployError, first_line
from hyena_deploy.runtime.backend import Backend
from hyena_deploy.runtime.sessions import open_session
from hyena_deploy.serve import model_config

NUMPY_TYPES = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16, "TYPE_FP64": np.float64, "TYPE_INT64": np.int64,
               "TYPE_INT32": np.int32, "TYPE_INT16": np.int16, "TYPE_INT8": np.int8, "TYPE_UINT8": np.uint8,
               "TYPE_UINT32": np.uint32, "TYPE_UINT64": np.uint64, "TYPE_BOOL": np.bool_}


class DecodeModel:
    """A stateful decode graph behind the Backend interface (OrtModel's full-sequence length check does not
    apply: state inputs have no sequence axis)."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        self.session = open_session(path, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        try:
            return self.session.run(None, dict(zip(self.input_names, inputs)))
        except Exception as exc:  # ORT raises its own exception types
            raise HyenaDeployError(f"ONNX Runtime failed: {first_line(exc)}") from None


@dataclass
class Request:
    """One inference request of a sequence (batch 1, as Triton's sequence requests are)."""

    corrid: int
    inputs: dict[str, np.ndarray]
    start: bool = False
    end: bool = False


@dataclass
class SequenceBatcher:
    """The sequence batcher with implicit state on one model instance (``max_batch_size`` slots), for a parsed
    ModelConfig and a model run positionally."""

    config: object
    model: Backend
    states: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)  # corrid -> input name -> (1, ...)
    slots: dict[int, int] = field(default_factory=dict)                      # direct: corrid -> batch slot
    batch_sizes: list[int] = field(default_factory=list)                     # one per model execution

    def __post_init__(self) -> None:
        batching = self.config.sequence_batching
        self._type_name = model_config.data_type_name
        self._state_cfg = list(batching.state)
        kind_name = model_config.pb2().ModelSequenceBatching.Control.Kind.Name
        self._controls = {c.name: kind_name(c.control[0].kind) for c in batching.control_input}
        self._control_types = {c.name: c.control[0] for c in batching.control_input}
        self.direct = batching.WhichOneof("strategy_choice") in (None, "direct")
        self.max_batch = max(self.config.max_batch_size, 1)

    def execute(self, requests: list[Request]) -> dict[int, dict[str, np.ndarray]]:
        """One scheduling round (at most one request per sequence, oldest first): outputs per corrid."""
        if len({r.corrid for r in requests}) != len(requests):
            raise HyenaDeployError("a sequence's requests run one after another: one request per sequence per round")
        for request in requests:
            self._admit(request)
        groups: dict[tuple, list[Request]] = {}
        for request in requests:
            key = tuple(sorted((name, a.shape, a.dtype.str) for name, a in request.inputs.items()))
            groups.setdefault(key, []).append(request)
        results: dict[int, dict[str, np.ndarray]] = {}
        for group in groups.values():
            for batch in self._batches(group):
                results.update(self._run(batch))
        for request in requests:
            if request.end:
                self.states.pop(request.corrid, None)
                self.slots.pop(request.corrid, None)
        return results

    def _admit(self, request: Request) -> None:
        if request.start:
            self.states[request.corrid] = {s.input_name: self._zeros(s, 1) for s in self._state_cfg}
            if self.direct and request.corrid not in self.slots:
                free = sorted(set(range(self.max_batch)) - set(self.slots.values()))
                if not free:
                    raise HyenaDeployError(f"direct strategy: all {self.max_batch} batch slots hold sequences")
                self.slots[request.corrid] = free[0]
        elif request.corrid not in self.states:
            raise HyenaDeployError(f"sequence {request.corrid}: first request without START (Triton rejects it)")

    def _zeros(self, state, batch: int) -> np.ndarray:
        return np.zeros((batch, *state.dims), NUMPY_TYPES[self._type_name(state.data_type)])

    def _batches(self, group: list[Request]) -> list[list[Request | None]]:
        if not self.direct:
            return [group[i:i + self.max_batch] for i in range(0, len(group), self.max_batch)]
        by_slot: list[Request | None] = [None] * (max(self.slots[r.corrid] for r in group) + 1)
        for request in group:
            by_slot[self.slots[request.corrid]] = request
        return [by_slot]

    def _run(self, batch: list[Request | None]) -> dict[int, dict[str, np.ndarray]]:
        live = next(r for r in batch if r is not None)
        feeds: dict[str, np.ndarray] = {}
        for name, array in live.inputs.items():
            feeds[name] = np.concatenate([(r.inputs[name] if r else np.zeros_like(array)) for r in batch])
        for state in self._state_cfg:
            feeds[state.input_name] = np.concatenate(
                [(self.states[r.corrid][state.input_name] if r else self._zeros(state, 1)) for r in batch])
        for name, kind in self._controls.items():
            feeds[name] = self._control(name, kind, batch)
        missing = [n for n in self.model.input_names if n not in feeds]
        if missing:
            raise HyenaDeployError(f"the emulated request has no value for model input {missing[0]!r}")
        outputs = dict(zip(self.model.output_names, self.model.run([feeds[n] for n in self.model.input_names])))
        self.batch_sizes.append(len(batch))
        results = {}
        for row, request in enumerate(batch):
            if request is None:
                continue
            self.states[request.corrid] = {s.input_name: outputs[s.output_name][row:row + 1] for s in self._state_cfg}
            results[request.corrid] = {t.name: outputs[t.name][row:row + 1] for t in self.config.output}
        return results

    def _control(self, name: str, kind: str, batch: list[Request | None]) -> np.ndarray:
        control = self._control_types[name]
        if kind == "CONTROL_SEQUENCE_CORRID":
            values = [r.corrid if r else 0 for r in batch]
            return np.array(values, NUMPY_TYPES[self._type_name(control.data_type)]).reshape(-1, 1)
        flags = {"CONTROL_SEQUENCE_START": lambda r: r.start, "CONTROL_SEQUENCE_END": lambda r: r.end,
                 "CONTROL_SEQUENCE_READY": lambda r: True}[kind]
        for field_name, dtype in (("int32_false_true", np.int32), ("fp32_false_true", np.float32),
                                  ("bool_false_true", np.bool_)):
            pair = list(getattr(control, field_name))
            if pair:
                return np.array([pair[1] if r and flags(r) else pair[0] for r in batch], dtype).reshape(-1, 1)
        raise HyenaDeployError(f"control input {name} has no false/true values")


def greedy_tokens(batcher: SequenceBatcher, input_ids: str, logits: str, prompts: dict[int, np.ndarray],
                  max_new_tokens: int, end: bool = True) -> dict[int, np.ndarray]:
    """Greedy generation for several sequences at once, interleaved round by round.

    Each sequence (corrid -> 1-D prompt) sends its prompt with START, then its last token per
    request; the last request carries END when ``end``. Returns corrid -> (max_new_tokens,) int64.
    """
    tokens: dict[int, list[int]] = {corrid: [] for corrid in prompts}
    for step in range(max_new_tokens):
        last = end and step == max_new_tokens - 1
        requests = [Request(corrid, {input_ids: (prompt if step == 0 else np.array(tokens[corrid][-1:])
                                                 ).reshape(1, -1).astype(np.int64)}, start=step == 0, end=last)
                    for corrid, prompt in prompts.items()]
        for corrid, outputs in batcher.execute(requests).items():
            tokens[corrid].append(int(np.argmax(outputs[logits][0, -1])))
    return {corrid: np.array(values, np.int64) for corrid, values in tokens.items()}


@dataclass(frozen=True)
class EmulationReport:
    """What the emulation ran and whether its tokens equal the reference's."""

    sequences: int
    new_tokens: int
    executions: int
    largest_batch: int
    reference: str


Reference = Callable[[np.ndarray, int], np.ndarray]  # (1-D prompt, max_new_tokens) -> (max_new_tokens,) tokens


def check_sequence_batching(config, model: Backend, input_ids: str, logits: str, vocab_size: int,
                            reference: Reference, reference_name: str, max_context: int | None = None,
                            seed: int = 0) -> EmulationReport:
    """Three interleaved sequences (two with equal prompt lengths, so they share batches; with ``direct``
    as many at once as there are slots, the rest after them), then a START on a sequence still holding
    state: every token must equal ``reference``'s for the same prompt."""
    rng = np.random.default_rng(seed)
    context = 15 if max_context is None else max_context  # prompts of 5, 5 and 9 tokens + 6 new ones fit in 15
    if context < 2:
        raise HyenaDeployError(f"max_context {context}: the emulation needs room for a prompt and a new token")
    longest = min(9, context // 2)
    new_tokens = min(6, context - longest)
    lengths = {1: min(5, longest), 2: min(5, longest), 3: longest}
    prompts = {corrid: rng.integers(0, vocab_size, length) for corrid, length in lengths.items()}
    batcher = SequenceBatcher(config, model)
    at_once = batcher.max_batch if batcher.direct else len(prompts)
    got: dict[int, np.ndarray] = {}
    corrids = list(prompts)
    for first in range(0, len(corrids), at_once):
        wave = {c: prompts[c] for c in corrids[first:first + at_once]}
        got.update(greedy_tokens(batcher, input_ids, logits, wave, new_tokens))
    greedy_tokens(batcher, input_ids, logits, {4: rng.integers(0, vocab_size, min(4, longest))}, new_tokens,
                  end=False)
    restart = rng.integers(0, vocab_size, min(3, longest))
    got_restart = greedy_tokens(batcher, input_ids, logits, {4: restart}, new_tokens)[4]
    for label, prompt, tokens in [*((f"sequence {c}", prompts[c], got[c]) for c in prompts),
                                  ("a new START on a live sequence", restart, got_restart)]:
        want = np.asarray(reference(prompt, new_tokens)).reshape(-1)
        if not np.array_equal(tokens, want):
            raise HyenaDeployError(f"sequence-batcher emulation: {label} generated {tokens.tolist()}, "
                                   f"{reference_name} {want.tolist()}")
    return EmulationReport(len(prompts) + 1, new_tokens, len(batcher.batch_sizes), max(batcher.batch_sizes),
                           reference_name)


def check_dynamic_batching(model: Backend, feeds_one: list[dict[str, np.ndarray]], rtol: float = 1e-5) -> int:
    """Requests stacked on axis 0 (as the dynamic batcher does) give each request's own outputs; returns
    the number of requests batched."""
    alone = [model.run([feeds[n] for n in model.input_names]) for feeds in feeds_one]
    stacked = model.run([np.concatenate([f[n] for f in feeds_one]) for n in model.input_names])
    for index, outputs in enumerate(alone):
        for name, single, batch in zip(model.output_names, outputs, stacked):
            row = batch[index:index + 1]
            scale = max(float(np.abs(single).max()), 1e-30)
            if row.shape != single.shape or float(np.abs(row - single).max()) > rtol * scale:
                raise HyenaDeployError(f"dynamic batching changes output {name}: request {index} alone and in a "
                                       "batch differ (the graph mixes batch rows)")
    return len(feeds_one)
