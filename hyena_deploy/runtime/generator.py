"""Token generation from a stateful export directory, with nothing but numpy and onnxruntime imported.

The directory (``hyena-deploy export SOURCE -o DIR --stateful``) holds ``decode.onnx`` and the state
table ``hyena_deploy.json``. One ``decode.onnx`` call takes a chunk of token ids (B, T) and every
state and returns the logits of the chunk and the states after it; all-zero states are a fresh
start. States have a fixed size per row, so prompts of unequal length are prefilled one by one and
their states stacked: no padding, every row exact. Logits that are NaN or +Inf stop generation with
a one-line error naming the token (argmax would read NaN as id 0).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.runtime.layout import BATCH, BYTES, StatefulLayout, parse_layout, read_layout
from hyena_deploy.runtime.sessions import open_session

DEFAULT_PREFILL_CHUNK = 128  # bounds the in-chunk work of modal layers, O(T^2) per channel
States = dict[str, np.ndarray]
TokenCallback = Callable[[int, np.ndarray], None]


@dataclass
class Generation:
    """Generated ids per row (each at most ``max_new_tokens``, cut after a stop token) and timings."""

    sequences: list[np.ndarray]
    prefill_ms: float
    decode_ms_per_token: float
    decoded_tokens: int


class Generator:
    """Greedy or sampled generation with a stateful ``decode.onnx`` (contract C2)."""

    def __init__(self, directory: Path | str, threads: int | None = None) -> None:
        directory = Path(directory)
        if not directory.is_dir():
            raise HyenaDeployError(f"{directory}: not a directory (export one with: hyena-deploy export SOURCE -o DIR "
                                   "--stateful)")
        layout = read_layout(directory)
        self._setup(layout, open_session(layout.decode, threads))

    @classmethod
    def from_session(cls, layout: StatefulLayout | dict, session: ort.InferenceSession) -> Generator:
        """A generator on an open session and a layout, typed here when given as the ``hyena_deploy.json`` dict
        (the exporter verifies its graph this way before writing either)."""
        generator = cls.__new__(cls)
        typed = layout if isinstance(layout, StatefulLayout) else parse_layout(layout, Path(), "stateful layout")
        generator._setup(typed, session)
        return generator

    def _setup(self, layout: StatefulLayout, session: ort.InferenceSession) -> None:
        if layout.max_context is None:
            raise HyenaDeployError(f"{layout.directory}: the layout gives no max_context (generation needs it)")
        self.layout, self.session = layout, session
        self.states = layout.states
        self.max_context, self.vocab_size = layout.max_context, layout.vocab_size
        names = {i.name for i in session.get_inputs()}
        wanted = {layout.input_ids, *(s.input for s in self.states)}
        if names != wanted:
            raise HyenaDeployError(f"decode graph inputs {sorted(names)} do not match the layout {sorted(wanted)}")
        self._outputs = [layout.logits, *(s.output for s in self.states)]

    def encode(self, text: str) -> np.ndarray:
        """Token ids of ``text`` with the directory's tokenizer (UTF-8 bytes, or a character table)."""
        tokenizer = self.layout.tokenizer
        if tokenizer is None:
            raise HyenaDeployError("this model has no tokenizer in its hyena_deploy.json: give --prompt-ids")
        if tokenizer.kind == BYTES:
            return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)
        table, unknown = tokenizer.table, tokenizer.unknown
        bad = sorted({ch for ch in text if ch not in table} if unknown is None else ())
        if bad:
            raise HyenaDeployError(f"characters {''.join(bad)!r} are not in the tokenizer's vocabulary")
        return np.array([*tokenizer.prefix, *(table.get(ch, unknown) for ch in text)], dtype=np.int64)

    def decode(self, ids: Sequence[int]) -> str | None:
        """Text of generated ids (None without a tokenizer); ids with no character are left out."""
        tokenizer = self.layout.tokenizer
        if tokenizer is None:
            return None
        if tokenizer.kind == BYTES:
            return bytes(int(i) for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")
        chars: dict[int, str] = {}
        for ch, token in sorted(tokenizer.table.items(), key=lambda item: item[0].islower()):
            chars.setdefault(token, ch)  # upper case first: HyenaDNA reads "a" as "A"
        return "".join(chars.get(int(i), "") for i in ids)

    def initial_states(self, batch: int) -> States:
        """All-zero states for ``batch`` rows: a fresh start."""
        return {s.input: np.zeros([batch if d == BATCH else d for d in s.shape], dtype=s.dtype) for s in self.states}

    def step(self, ids: np.ndarray, states: States) -> tuple[np.ndarray, States]:
        """One decode call: ids (B, T) after ``states`` -> logits (B, T, V) and the states after the chunk.

        The caller keeps the tokens consumed within ``max_context`` (:meth:`generate_rows` checks it):
        past it, fixed-size buffers drop their oldest entries.
        """
        feed = {self.layout.input_ids: np.ascontiguousarray(ids, dtype=np.int64), **states}
        logits, *new = self.session.run(self._outputs, feed)
        return logits, {s.input: value for s, value in zip(self.states, new)}

    def prefill(self, prompt_ids: np.ndarray, chunk: int | None = None, states: States | None = None
                ) -> tuple[np.ndarray, States]:
        """Feed ``prompt_ids`` (B, L) in chunks of ``chunk`` tokens (default 128): logits (B, L, V).

        Any chunk size gives the same result; modal layers pay O(chunk²) per channel inside a chunk.
        """
        prompt_ids = np.asarray(prompt_ids, dtype=np.int64)
        if prompt_ids.ndim != 2 or prompt_ids.shape[1] < 1:
            raise HyenaDeployError(f"prompt ids must be (batch, length >= 1), got shape {prompt_ids.shape}")
        if chunk is not None and chunk < 1:
            raise HyenaDeployError(f"prefill chunk must be >= 1, got {chunk}")
        states = self.initial_states(prompt_ids.shape[0]) if states is None else states
        size = chunk or DEFAULT_PREFILL_CHUNK
        pieces = []
        for start in range(0, prompt_ids.shape[1], size):
            logits, states = self.step(prompt_ids[:, start:start + size], states)
            pieces.append(logits)
        return np.concatenate(pieces, axis=1), states

    def generate(self, prompt_ids: np.ndarray, max_new_tokens: int, chunk: int | None = None, **sampling
                 ) -> np.ndarray:
        """(B, max_new_tokens) int64 after prompts of equal length (B, L); greedy unless ``sampling`` says.

        ``sampling`` is passed to :meth:`generate_rows`; rows that met a stop token are filled with it.
        """
        prompt_ids = np.asarray(prompt_ids, dtype=np.int64)
        if prompt_ids.ndim != 2:
            raise HyenaDeployError(f"prompt ids must be (batch, length), got shape {prompt_ids.shape}")
        result = self.generate_rows(list(prompt_ids), max_new_tokens, chunk, **sampling)
        out = np.empty((len(result.sequences), max_new_tokens), dtype=np.int64)
        for row, seq in zip(out, result.sequences):
            row[:len(seq)] = seq
            row[len(seq):] = seq[-1]
        return out

    def generate_rows(self, prompts: Sequence[np.ndarray], max_new_tokens: int, chunk: int | None = None, *,
                      temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
                      seed: int | None = None, stop_tokens: Sequence[int] = (),
                      on_token: TokenCallback | None = None) -> Generation:
        """Generate after prompts of any lengths: each is prefilled alone, then all rows decode together.

        ``temperature`` 0 is greedy (argmax); otherwise tokens are drawn from ``softmax(logits / T)``
        restricted to the ``top_k`` most likely and the smallest set of probability ``top_p``.
        ``on_token(i, tokens)`` is called with each new column of tokens as it comes. A row ends
        after a stop token; generation ends when every row has.
        """
        prompts = [self._check_prompt(np.asarray(p, dtype=np.int64).reshape(-1), max_new_tokens) for p in prompts]
        if not prompts:
            raise HyenaDeployError("no prompts given")
        if max_new_tokens < 1:
            raise HyenaDeployError(f"max new tokens must be >= 1, got {max_new_tokens}")
        pick = sampler(temperature, top_k, top_p, seed)
        started = time.perf_counter()
        last, rows = [], []
        for prompt in prompts:
            logits, states = self.prefill(prompt[None], chunk)
            last.append(logits[:, -1])
            rows.append(states)
        states = {name: np.concatenate([r[name] for r in rows]) for name in rows[0]}
        logits = np.concatenate(last)
        prefill_ms = 1e3 * (time.perf_counter() - started)
        stops = np.asarray(list(stop_tokens), dtype=np.int64)
        done = np.zeros(len(prompts), dtype=bool)
        columns: list[np.ndarray] = []
        started = time.perf_counter()
        for index in range(max_new_tokens):
            tokens = pick(_checked(logits, index))
            columns.append(tokens)
            if on_token is not None:
                on_token(index, tokens)
            done |= np.isin(tokens, stops)
            if done.all() or index == max_new_tokens - 1:
                break
            step_logits, states = self.step(tokens[:, None], states)
            logits = step_logits[:, -1]
        decode_ms = 1e3 * (time.perf_counter() - started) / max(len(columns) - 1, 1)
        table = np.stack(columns, axis=1)
        return Generation([_cut_at_stop(row, stops) for row in table], prefill_ms, decode_ms, len(columns))

    def _check_prompt(self, prompt: np.ndarray, max_new_tokens: int) -> np.ndarray:
        if prompt.size == 0:
            raise HyenaDeployError("a prompt is empty: give at least one token")
        outside = prompt[(prompt < 0) | (prompt >= self.vocab_size)]
        if outside.size:
            raise HyenaDeployError(f"prompt token {int(outside[0])} is outside the vocabulary 0..{self.vocab_size - 1}")
        if prompt.size + max_new_tokens > self.max_context:
            raise HyenaDeployError(f"prompt of {prompt.size} tokens + {max_new_tokens} new ones is past the max "
                                   "context "
                                   f"{self.max_context} (export with a larger --max-context)")
        return prompt


def _checked(logits: np.ndarray, index: int) -> np.ndarray:
    """``logits`` (B, V) for new token ``index``, or a one-line error where a row has NaN or +Inf."""
    bad = np.flatnonzero(~(logits.max(-1) < np.inf))  # max is NaN where any logit is
    if bad.size:
        where = "the prefill's last position" if index == 0 else f"decode step {index}"
        raise HyenaDeployError(f"generated token {index + 1}: the logits of row {int(bad[0])} are NaN or +Inf (from "
                               f"{where}); no token is picked from them")
    return logits


def _cut_at_stop(row: np.ndarray, stops: np.ndarray) -> np.ndarray:
    hits = np.flatnonzero(np.isin(row, stops))
    return row[:hits[0] + 1] if hits.size else row


def sampler(temperature: float, top_k: int | None, top_p: float | None, seed: int | None
            ) -> Callable[[np.ndarray], np.ndarray]:
    """A function from logits (B, V) to token ids (B,): argmax at temperature 0, else a seeded draw."""
    if not temperature >= 0:
        raise HyenaDeployError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise HyenaDeployError(f"top-k must be >= 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise HyenaDeployError(f"top-p must be in (0, 1], got {top_p}")
    if temperature == 0:
        return lambda logits: logits.argmax(-1).astype(np.int64)
    rng = np.random.default_rng(seed)

    def draw(logits: np.ndarray) -> np.ndarray:
        scaled = logits.astype(np.float64) / temperature
        if top_k is not None and top_k < scaled.shape[-1]:
            kth = np.partition(scaled, -top_k, axis=-1)[:, -top_k, None]
            scaled = np.where(scaled < kth, -np.inf, scaled)
        probs = np.exp(scaled - scaled.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        if top_p is not None and top_p < 1:
            order = np.argsort(-probs, axis=-1)
            sorted_probs = np.take_along_axis(probs, order, -1)
            keep_sorted = np.cumsum(sorted_probs, -1) - sorted_probs < top_p  # the smallest set reaching top_p
            keep = np.zeros_like(keep_sorted)
            np.put_along_axis(keep, order, keep_sorted, -1)
            probs = np.where(keep, probs, 0.0)
            probs /= probs.sum(-1, keepdims=True)
        return np.array([rng.choice(p.size, p=p) for p in probs], dtype=np.int64)

    return draw
