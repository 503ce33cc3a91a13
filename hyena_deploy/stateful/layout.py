"""The state table of a stateful directory (contract C1): names, shapes, kinds, written as ``hyena_deploy.json``."""

from __future__ import annotations

from dataclasses import dataclass

FORMAT, VERSION = "hyena-deploy-stateful", 1
LAYOUT_FILE, DECODE_FILE = "hyena_deploy.json", "decode.onnx"
INPUT_IDS, LOGITS = "input_ids", "logits"
POSITION_INPUT, POSITION_OUTPUT = "past_sequence_length", "present_sequence_length"


@dataclass(frozen=True)
class StateSpec:
    """One state: ``shape`` excludes the batch axis; ``layer`` is None for the model-wide position."""

    kind: str
    name: str
    layer: int | None
    shape: tuple[int, ...]
    dtype: str = "float32"

    @property
    def input(self) -> str:
        return POSITION_INPUT if self.layer is None else f"past_key_values.{self.layer}.{self.name}"

    @property
    def output(self) -> str:
        return POSITION_OUTPUT if self.layer is None else f"present.{self.layer}.{self.name}"

    def to_json(self) -> dict:
        return {"input": self.input, "output": self.output, "shape": ["batch", *self.shape], "dtype": self.dtype,
                "layer": self.layer, "kind": self.kind}


def position_spec() -> StateSpec:
    """Tokens consumed so far per row (B, 1) int64: zero is a fresh start."""
    return StateSpec("position", "position", None, (1,), "int64")


def layout_json(*, family: str, source: str, specs: list[StateSpec], vocab_size: int, max_context: int,
                special_tokens: dict, tokenizer: dict | None) -> dict:
    """The ``hyena_deploy.json`` document (written last, atomically)."""
    return {"format": FORMAT, "version": VERSION, "family": family, "source": source,
            "graphs": {"decode": DECODE_FILE, "prefill": None}, "input_ids": INPUT_IDS, "logits": LOGITS,
            "vocab_size": vocab_size, "max_context": max_context,
            "special_tokens": {"bos": None, "eos": None, "pad": None, **special_tokens},
            "tokenizer": tokenizer, "states": [spec.to_json() for spec in specs]}
