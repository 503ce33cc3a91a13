"""The family's tokenizer as data for ``hyena_deploy.json``, found by probing it (the runtime has no torch).

Two shapes are recognised: UTF-8 bytes as ids (``{"type": "bytes"}``), and a per-character table
with fixed prefix ids (``{"type": "characters", "prefix": [...], "table": {...}, "unknown": id}``,
HyenaDNA's ``[CLS]``; the suffix is dropped since generation continues the sequence).
"""

from __future__ import annotations

import string
from collections.abc import Callable

PROBE = string.ascii_letters + string.digits + string.punctuation + " "


def describe_tokenizer(tokenizer: Callable | None) -> dict | None:
    """A JSON description of ``tokenizer`` (texts -> (ids,)), or None when it is neither shape."""
    if tokenizer is None:
        return None
    encode = lambda text: [int(i) for i in tokenizer([text])[0][0].tolist()]  # noqa: E731
    if all(encode(ch) == [ord(ch)] for ch in PROBE) and encode("é") == list("é".encode()):
        return {"type": "bytes"}
    frame = encode("")
    ids = {ch: encode(ch) for ch in PROBE}
    if not all(len(row) == len(frame) + 1 for row in ids.values()):
        return None
    cut = len(frame) - len(_common_suffix(frame, ids))
    if any(row[:cut] != frame[:cut] for row in ids.values()):
        return None
    table = {ch: row[cut] for ch, row in ids.items()}
    counts: dict[int, int] = {}
    for token in table.values():
        counts[token] = counts.get(token, 0) + 1
    unknown = max(counts, key=counts.get) if max(counts.values()) > 1 else None
    return {"type": "characters", "prefix": frame[:cut], "unknown": unknown,
            "table": {ch: token for ch, token in table.items() if token != unknown}}


def _common_suffix(frame: list[int], ids: dict[str, list[int]]) -> list[int]:
    """The ids every encoding ends with (HyenaDNA's ``[SEP]``)."""
    for size in range(len(frame), -1, -1):
        tail = frame[len(frame) - size:] if size else []
        if all(row[len(row) - size:] == tail if size else True for row in ids.values()):
            return tail
    return []
