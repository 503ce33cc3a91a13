"""Keys of the metadata hyena-deploy writes into every ONNX model, and how to read them back."""

from __future__ import annotations

import json

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
