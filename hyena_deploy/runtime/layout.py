"""Reading a stateful export directory's ``hyena_deploy.json`` (contract C1), with the standard library only.

The directory holds ``decode.onnx`` (input ids plus one input per state; logits plus one output per
state; exact for any chunk length given the incoming states, a fresh start from all-zero states) and
the layout that names every state, its per-sequence shape and dtype, the special token ids and the
tokenizer (UTF-8 bytes, or a per-character table).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hyena_deploy.errors import HyenaDeployError

FORMAT = "hyena-deploy-stateful"
VERSION = 1
LAYOUT_FILE = "hyena_deploy.json"
KINDS = frozenset({"fir", "modal", "modal_complex", "key", "value", "history", "position"})
BATCH = "batch"  # the batch axis in a state's shape
BYTES, CHARACTERS = "bytes", "characters"  # the tokenizer types


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
class Tokenizer:
    """UTF-8 bytes as ids (``kind`` ``"bytes"``), or ``prefix`` ids then one id per character of ``table``
    (``"characters"``; characters not in it get ``unknown``, or are refused where it is None)."""

    kind: str
    prefix: tuple[int, ...] = ()
    table: Mapping[str, int] = field(default_factory=dict)
    unknown: int | None = None


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
    special_tokens: dict[str, int | None]
    tokenizer: Tokenizer | None
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
    layout = parse_layout(data, directory, str(path))
    for graph in (layout.decode, layout.prefill):
        if graph is not None and not graph.is_file():
            raise HyenaDeployError(f"{path}: graph {graph.name} is missing")
    return layout


def parse_layout(data: object, directory: Path, where: str) -> StatefulLayout:
    """The layout document ``data`` (graph paths under ``directory``), checked; errors name ``where``."""
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
        raise HyenaDeployError(f"{where}: not a {FORMAT} layout (version {VERSION})")
    try:
        graphs = data["graphs"]
        vocab_size = _count(data["vocab_size"], "vocab_size")
        max_context, prefill = data.get("max_context"), graphs.get("prefill")
        return StatefulLayout(
            directory=directory, family=str(data["family"]), source=str(data["source"]),
            decode=directory / graphs["decode"], prefill=directory / prefill if prefill else None,
            input_ids=str(data["input_ids"]), logits=str(data["logits"]), vocab_size=vocab_size,
            max_context=None if max_context is None else _count(max_context, "max_context"),
            special_tokens=_special_tokens(data.get("special_tokens") or {}, vocab_size),
            tokenizer=_tokenizer(data.get("tokenizer"), vocab_size),
            states=tuple(_state(entry) for entry in data["states"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise HyenaDeployError(f"{where}: malformed layout ({type(exc).__name__}: {exc})") from None


def _state(entry: dict) -> StateEntry:
    shape = tuple(d if d == BATCH else int(d) for d in entry["shape"])
    if shape.count(BATCH) != 1:
        raise ValueError(f"state {entry['input']}: shape {list(shape)} needs exactly one 'batch' axis")
    if entry["kind"] not in KINDS:
        raise ValueError(f"state {entry['input']}: unknown kind {entry['kind']!r} (one of {', '.join(sorted(KINDS))})")
    return StateEntry(input=str(entry["input"]), output=str(entry["output"]), shape=shape, dtype=str(entry["dtype"]),
                      layer=None if entry.get("layer") is None else int(entry["layer"]), kind=str(entry["kind"]))


def _count(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return value


def _token(value: object, vocab_size: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < vocab_size:
        raise ValueError(f"{what} must be a token id in 0..{vocab_size - 1}, got {value!r}")
    return value


def _special_tokens(data: object, vocab_size: int) -> dict[str, int | None]:
    if not isinstance(data, dict):
        raise TypeError(f"special_tokens must be an object, got {type(data).__name__}")
    return {str(name): None if token is None else _token(token, vocab_size, f"special token {name}")
            for name, token in data.items()}


def _tokenizer(data: object, vocab_size: int) -> Tokenizer | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise TypeError(f"tokenizer must be an object or null, got {type(data).__name__}")
    if data.get("type") == BYTES:
        return Tokenizer(BYTES)
    if data.get("type") != CHARACTERS:
        raise ValueError(f"tokenizer type {data.get('type')!r} is not {BYTES!r} or {CHARACTERS!r}")
    table = data["table"]
    if not isinstance(table, dict) or not all(isinstance(ch, str) and len(ch) == 1 for ch in table):
        raise ValueError("tokenizer table must map single characters to token ids")
    unknown = data.get("unknown")
    return Tokenizer(CHARACTERS, prefix=tuple(_token(t, vocab_size, "tokenizer prefix id") for t in data["prefix"]),
                     table={ch: _token(t, vocab_size, f"tokenizer id of {ch!r}") for ch, t in table.items()},
                     unknown=None if unknown is None else _token(unknown, vocab_size, "tokenizer unknown id"))
