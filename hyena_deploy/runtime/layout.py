"""Reading a stateful export directory's ``hyena_deploy.json`` (contract C1), with the standard library only.

The directory holds ``decode.onnx`` (input ids plus one input per state; logits plus one output per
state; exact for any chunk length given the incoming states, a fresh start from all-zero states) and
the layout that names every state, its per-sequence shape and dtype.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hyena_deploy.errors import HyenaDeployError

FORMAT = "hyena-deploy-stateful"
VERSION = 1
LAYOUT_FILE = "hyena_deploy.json"
KINDS = frozenset({"fir", "modal", "modal_complex", "key", "value", "history", "position"})
BATCH = "batch"  # the batch axis in a state's shape


@dataclass(frozen=True)
class StateEntry:
    """One state tensor: graph input and output names, shape (``"batch"`` on the batch axis) and dtype."""

    input: str
    output: str
    shape: tuple[int | str, ...]
    dtype: str
    layer: int | None  # None for model-wide states (the position)
    kind: str

    def per_sequence_shape(self) -> tuple[int, ...]:
        """The shape without the batch axis (what one sequence carries)."""
        return tuple(int(d) for d in self.shape if d != BATCH)


@dataclass(frozen=True)
class StatefulLayout:
    """What ``hyena_deploy.json`` says about a stateful export directory."""

    directory: Path
    family: str
    source: str
    decode: Path
    prefill: Path | None
    input_ids: str
    logits: str
    vocab_size: int
    max_context: int | None
    special_tokens: dict
    states: tuple[StateEntry, ...]


def is_stateful_dir(path: str | Path) -> bool:
    """True when ``path`` is a directory with a ``hyena_deploy.json``."""
    return (Path(path) / LAYOUT_FILE).is_file()


def read_layout(directory: str | Path) -> StatefulLayout:
    """The layout of a stateful export directory, with graph files checked to exist; one-line errors."""
    directory = Path(directory)
    path = directory / LAYOUT_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise HyenaDeployError(f"{directory}: no {LAYOUT_FILE} (write it with `hyena-deploy export ... --stateful`)"
                               ) from None
    except (OSError, ValueError) as exc:
        raise HyenaDeployError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
        raise HyenaDeployError(f"{path}: not a {FORMAT} layout (version {VERSION})")
    try:
        graphs = data["graphs"]
        states = tuple(_state(entry) for entry in data["states"])
        layout = StatefulLayout(
            directory=directory, family=str(data["family"]), source=str(data["source"]),
            decode=directory / graphs["decode"], prefill=directory / graphs["prefill"] if graphs.get("prefill") else None,
            input_ids=str(data["input_ids"]), logits=str(data["logits"]), vocab_size=int(data["vocab_size"]),
            max_context=int(data["max_context"]) if data.get("max_context") is not None else None,
            special_tokens=dict(data.get("special_tokens") or {}), states=states)
    except (KeyError, TypeError, ValueError) as exc:
        raise HyenaDeployError(f"{path}: malformed layout ({type(exc).__name__}: {exc})") from None
    for graph in (layout.decode, layout.prefill):
        if graph is not None and not graph.is_file():
            raise HyenaDeployError(f"{path}: graph {graph.name} is missing")
    return layout


def _state(entry: dict) -> StateEntry:
    shape = tuple(d if d == BATCH else int(d) for d in entry["shape"])
    if shape.count(BATCH) != 1:
        raise ValueError(f"state {entry['input']}: shape {list(shape)} needs exactly one 'batch' axis")
    if entry["kind"] not in KINDS:
        raise ValueError(f"state {entry['input']}: unknown kind {entry['kind']!r} (one of {', '.join(sorted(KINDS))})")
    return StateEntry(input=str(entry["input"]), output=str(entry["output"]), shape=shape, dtype=str(entry["dtype"]),
                      layer=None if entry.get("layer") is None else int(entry["layer"]), kind=str(entry["kind"]))
