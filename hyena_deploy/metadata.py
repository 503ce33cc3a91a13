"""Keys of the metadata hyena-deploy writes into every ONNX model, and one typed reader of them.

Importing this module loads neither onnx nor torch: the runtime reads the same keys from an ONNX Runtime
session's custom metadata map (:meth:`GraphInfo.from_props`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

PREFIX = "hyena_deploy."
VERSION = PREFIX + "version"              # tool version that wrote the file
STRATEGY = PREFIX + "fftconv"             # requested strategy (auto, monarch, dft, direct, plugin)
SITES = PREFIX + "sites"                  # JSON list: per long conv {output, strategy, channels, taps}
MAX_SEQ_LEN = PREFIX + "max_seq_len"      # longest sequence the graph accepts
DYNAMIC_SEQ = PREFIX + "dynamic_seq_len"  # "true" when axis 1 of the inputs is dynamic
DYNAMIC_BATCH = PREFIX + "dynamic_batch"  # "true" when axis 0 is dynamic
PRECISION = PREFIX + "precision"          # fp32, fp16 or bf16
SOURCE_SHA256 = PREFIX + "source_sha256"  # digest of the source files (config, weights, factory)
SOURCE = PREFIX + "source"                # SOURCE as given on the command line
TARGET = PREFIX + "target"                # the target the graph was exported for (hyena_deploy.targets)
SKIPPED = PREFIX + "skipped_sites"        # JSON list: per FFT convolution left as traced {node_name, module, reason}


@dataclass(frozen=True)
class GraphInfo:
    """What hyena-deploy recorded about a graph; fields are None (or empty) where nothing was recorded."""

    version: str | None = None
    strategy: str | None = None
    sites: list[dict] = field(default_factory=list)
    max_seq_len: int | None = None
    dynamic_seq_len: bool | None = None
    dynamic_batch: bool = True
    precision: str = "fp32"
    source: str | None = None
    source_sha256: str | None = None
    target: str | None = None
    skipped: list[dict] = field(default_factory=list)

    @classmethod
    def from_props(cls, props: dict[str, str]) -> GraphInfo:
        """From a metadata map with prefixed keys (an ONNX model's or an ONNX Runtime session's)."""
        raw = {key[len(PREFIX):]: value for key, value in props.items() if key.startswith(PREFIX)}
        flag = {"true": True, "false": False}
        return cls(version=raw.get("version"), strategy=raw.get("fftconv"),
                   sites=json.loads(raw["sites"]) if "sites" in raw else [],
                   max_seq_len=int(raw["max_seq_len"]) if "max_seq_len" in raw else None,
                   dynamic_seq_len=flag.get(raw.get("dynamic_seq_len", "")),
                   dynamic_batch=flag.get(raw.get("dynamic_batch", "true"), True),
                   precision=raw.get("precision", "fp32"), source=raw.get("source"),
                   source_sha256=raw.get("source_sha256"), target=raw.get("target"),
                   skipped=json.loads(raw["skipped_sites"]) if "skipped_sites" in raw else [])

    def props(self) -> dict[str, str]:
        """The prefixed metadata map that :meth:`from_props` reads back (fields left None are not written)."""
        values = {VERSION: self.version, STRATEGY: self.strategy, SITES: json.dumps(self.sites, sort_keys=True),
                  MAX_SEQ_LEN: None if self.max_seq_len is None else str(self.max_seq_len),
                  DYNAMIC_SEQ: None if self.dynamic_seq_len is None else str(self.dynamic_seq_len).lower(),
                  DYNAMIC_BATCH: str(self.dynamic_batch).lower(), PRECISION: self.precision, SOURCE: self.source,
                  SOURCE_SHA256: self.source_sha256, TARGET: self.target,
                  SKIPPED: json.dumps(self.skipped, sort_keys=True)}
        return {key: value for key, value in values.items() if value is not None}

    @classmethod
    def of(cls, model: onnx.ModelProto) -> GraphInfo:
        """From an ONNX model's ``metadata_props``."""
        return cls.from_props({p.key: p.value for p in model.metadata_props})


def read(model: onnx.ModelProto) -> dict[str, str]:
    """All hyena-deploy metadata of a model (keys without the prefix)."""
    return {p.key[len(PREFIX):]: p.value for p in model.metadata_props if p.key.startswith(PREFIX)}


def write(model: onnx.ModelProto, values: dict[str, object]) -> None:
    """Set metadata in place; values that are not strings are stored as JSON."""
    existing = {p.key: p for p in model.metadata_props}
    for key, value in sorted(values.items()):
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        if key in existing:
            existing[key].value = text
        else:
            prop = model.metadata_props.add()
            prop.key, prop.value = key, text
