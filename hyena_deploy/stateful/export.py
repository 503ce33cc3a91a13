"""``export --stateful``: trace a family's decode module (or derive one from the traced graph of a model
written elsewhere), verify it against PyTorch full recompute, write DIR.

The decode graph takes a chunk of token ids (B, T >= 1, both dynamic) and every state; with all-zero
states it is the prefill, so no separate prefill graph is written. Verification is fail-closed:
nothing is written unless step-by-step decoding after prompts of several lengths (1, 7, an odd one
near a third of the context, prefilled in the Generator's chunks; batch 3 and 1) matches PyTorch's
full forward on the same prefix, chunked prefill (chunks of 1, 7 and 100) matches one-shot prefill,
and greedy tokens match PyTorch's full-recompute greedy tokens.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from torch.utils._pytree import tree_leaves

from hyena_deploy import metadata, onnx_io, tool_version
from hyena_deploy.compat import TENSORRT_10, check_compatibility, verdict
from hyena_deploy.distill.sites import (SITES_FILE, WEIGHTS_FILE, distilled_graph, is_sites_dir, measured_sites,
                                       read_sites)
from hyena_deploy.errors import HyenaDeployError, first_line
from hyena_deploy.files import write_atomic
from hyena_deploy.graph import as_float64
from hyena_deploy.loaded import LoadedModel
from hyena_deploy.runners.ort_runner import OrtRunner
from hyena_deploy.runtime.generator import Generator
from hyena_deploy.runtime.sessions import hyena_metadata, open_session
from hyena_deploy.sources import load_source
from hyena_deploy.stateful.decoders import family_decoder
from hyena_deploy.stateful.genai import GENAI_FILE, genai_config
from hyena_deploy.stateful.layout import DECODE_FILE, INPUT_IDS, LAYOUT_FILE, LOGITS, layout_json
from hyena_deploy.stateful.tokenizers import describe_tokenizer
from hyena_deploy.stateful.traced import traced_stateful
from hyena_deploy.trace import IR_VERSION
from hyena_deploy.verify import OutputReport, Tolerance, compare_output
from hyena_deploy.verify.cases import fresh_rng
from hyena_deploy.verify.comparator import require_parity

Progress = Callable[[str], None]
Reference = Callable[[torch.Tensor], np.ndarray]  # token ids (B, L) -> full-sequence logits (B, L, V)
PREFILL_CHUNKS = (1, 7, 100)
DECODE_STEPS = 8
GREEDY_TOKENS = 16
STATEFUL_KEY = metadata.PREFIX + "stateful"  # read by hyena_deploy.tensorrt.shapes (decode-time profile)


@dataclass
class StatefulExport:
    """What ``export --stateful`` wrote and measured."""

    files: list[Path]
    layout: dict
    reports: list[OutputReport]
    greedy_checked: int
    notes: list[str] = field(default_factory=list)


def export_stateful(source: str | LoadedModel, directory: Path, *, max_context: int | None = None, opset: int = 20,
                    tolerance: Tolerance | None = None, verify: bool = True, distilled: Path | None = None,
                    progress: Progress = lambda _: None) -> StatefulExport:
    """Write ``directory`` (decode.onnx, then hyena_deploy.json) for ``source``; verified unless told not to.

    ``distilled``: a ``distill`` output of a model written elsewhere (its sites' modal fits); decoding is
    then verified against the traced graph with those filters, which ``distill`` checked against PyTorch.
    """
    tolerance = tolerance or Tolerance()
    loaded = source if isinstance(source, LoadedModel) else load_source(source)
    max_context = _resolve_max_context(loaded, max_context)
    if directory.exists() and not directory.is_dir():
        raise HyenaDeployError(f"{directory}: exists and is not a directory")
    if not directory.parent.is_dir():
        raise HyenaDeployError(f"{directory.parent}: output directory does not exist")
    notes: list[str] = []
    reference: Reference | None = None
    form = family_decoder(loaded.module, max_context)
    if distilled is not None and form is not None:
        raise HyenaDeployError("--distilled is for models written elsewhere; a distilled checkpoint is itself the "
                               "SOURCE (hyena-deploy export DISTILLED_DIR --stateful)")
    if form is None:  # no family step math: derive the decode graph from the traced full-sequence graph
        family = "traced"
        plans = None if distilled is None else _distilled_plans(distilled, loaded, max_context)
        traced = traced_stateful(loaded, max_context, opset, progress, plans)
        model, specs, width, notes = traced.model, traced.specs, traced.vocab_size, traced.notes
        if traced.reference is not None:
            reference = _onnx_reference(traced.reference)
    else:
        family, decoder = form
        progress("tracing the decode graph with torch.onnx (dynamo)")
        model = trace_decoder(decoder, loaded.vocab_size or 2, max_context, opset)
        specs, width = decoder.specs, _logits_width(decoder)
    metadata.write(model, {metadata.VERSION: tool_version(), metadata.MAX_SEQ_LEN: str(max_context),
                           metadata.DYNAMIC_SEQ: "true", metadata.DYNAMIC_BATCH: "true", metadata.PRECISION: "fp32",
                           STATEFUL_KEY: "true", metadata.SOURCE_SHA256: loaded.source_sha256,
                           metadata.SOURCE: loaded.name})
    onnx_io.check(model)
    problems = check_compatibility(model, TENSORRT_10)
    notes += [f"TensorRT 10: {p.reason}" for p in problems]
    if verdict(problems):
        notes.append("decode graph passes the tensorrt-10 rules (no complex tensor, no Loop/If/Scan)")
    vocab = width if loaded.vocab_size is None else max(width, loaded.vocab_size)
    layout = layout_json(family=family, source=loaded.name, specs=specs, vocab_size=vocab,
                         max_context=max_context, special_tokens={}, tokenizer=describe_tokenizer(loaded.tokenizer))
    reports: list[OutputReport] = []
    greedy = 0
    if verify:
        progress("verifying decode against full recompute")
        generator = Generator.from_session(layout, open_session(model.SerializeToString()))
        reports, greedy = verify_decoder(loaded, generator, tolerance, reference=reference)
        require_parity(reports, "stateful parity failed")
    directory.mkdir(exist_ok=True)
    files = onnx_io.save(model, directory / DECODE_FILE)
    for name in (SITES_FILE, WEIGHTS_FILE):  # the distillation travels with the directory: check re-derives
        if distilled is not None:
            write_atomic(directory / name, (distilled / name).read_bytes())
            files.append(directory / name)
        else:
            (directory / name).unlink(missing_ok=True)
    genai = genai_config(specs, layout["vocab_size"], max_context, layout["special_tokens"])
    if genai is not None:
        write_atomic(directory / GENAI_FILE, _json_bytes(genai))
        files.append(directory / GENAI_FILE)
    else:
        (directory / GENAI_FILE).unlink(missing_ok=True)  # left by an earlier export into the same directory
    write_atomic(directory / LAYOUT_FILE, _json_bytes(layout))
    return StatefulExport([*files, directory / LAYOUT_FILE], layout, reports, greedy, notes)


def _json_bytes(payload: dict) -> bytes:
    return (json.dumps(payload, indent=2) + "\n").encode()


def check_directory(source: str | LoadedModel, directory: Path, tolerance: Tolerance | None = None
                    ) -> tuple[list[OutputReport], int]:
    """Re-run the export's verification on a written directory (what ``check SOURCE DIR`` needs)."""
    loaded = source if isinstance(source, LoadedModel) else load_source(source)
    generator = Generator(directory)
    exported_from = hyena_metadata(generator.session).get("source_sha256")
    if exported_from != loaded.source_sha256:
        raise HyenaDeployError(f"{directory} was exported from {generator.layout.source!r}, not from these "
                               f"weights ({loaded.name}): their digests differ")
    reference = None
    if is_sites_dir(directory):
        plans = _distilled_plans(directory, loaded, generator.max_context)
        graph, sites = measured_sites(loaded, generator.max_context)
        reference = _onnx_reference(distilled_graph(graph, sites, plans, generator.max_context))
    return verify_decoder(loaded, generator, tolerance or Tolerance(), reference=reference)


def _distilled_plans(directory: Path, loaded: LoadedModel, max_context: int) -> dict:
    length, plans = read_sites(directory, loaded)
    if max_context > length:
        raise HyenaDeployError(f"--max-context {max_context} is past the {length} tokens the filters were distilled "
                               "over")
    return plans


def _onnx_reference(graph: onnx.ModelProto) -> Reference:
    """Full-sequence logits of ``graph`` computed in float64 (a long graph at a short length in float32 is
    off by ~1e-5 itself)."""
    runner = OrtRunner(as_float64(graph))
    return lambda ids: runner.run([ids.numpy()])[0]


def _resolve_max_context(loaded: LoadedModel, max_context: int | None) -> int:
    declared = loaded.max_seq_len
    if max_context is None:
        if declared is None:
            raise HyenaDeployError("the model declares no maximum length: give --max-context N")
        return declared
    if max_context < 2:
        raise HyenaDeployError(f"--max-context must be >= 2, got {max_context}")
    if declared is not None and max_context > declared:
        raise HyenaDeployError(f"--max-context {max_context} is past the model's maximum length {declared}")
    return max_context


def _logits_width(decoder: torch.nn.Module) -> int:
    with torch.no_grad():
        return int(decoder(torch.zeros(1, 1, dtype=torch.long), *_zero_states(decoder, 1))[0].shape[-1])


def _zero_states(decoder: torch.nn.Module, batch: int) -> list[torch.Tensor]:
    return [torch.zeros(batch, *spec.shape, dtype=getattr(torch, spec.dtype)) for spec in decoder.specs]


def trace_decoder(decoder: torch.nn.Module, vocab: int, max_context: int, opset: int) -> onnx.ModelProto:
    """The decode module as ONNX with dynamic batch and chunk length; exporter chatter shown only on failure."""
    batch, tokens = torch.export.Dim("batch", min=1, max=4096), torch.export.Dim("tokens", min=1, max=max_context)
    ids = torch.randint(0, vocab, (2, 5))
    states = _zero_states(decoder, 2)
    dynamic = ({0: batch, 1: tokens}, tuple({0: batch} for _ in states))  # forward(input_ids, *states)
    log = io.StringIO()
    torch_log = logging.getLogger("torch")
    level = torch_log.level
    try:
        torch_log.setLevel(logging.ERROR)
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                decoder, (ids, *states), dynamo=True, opset_version=opset, dynamic_shapes=dynamic,
                input_names=[INPUT_IDS, *(s.input for s in decoder.specs)],
                output_names=[LOGITS, *(s.output for s in decoder.specs)], optimize=True, verbose=False, report=False)
    except Exception as exc:  # the exporter raises many types; the user needs the first line
        raise HyenaDeployError(f"torch.onnx could not export the decode graph: {first_line(exc)}") from None
    finally:
        torch_log.setLevel(level)
    model = program.model_proto
    del model.graph.value_info[:]
    model.ir_version = IR_VERSION
    return model


def verify_decoder(loaded: LoadedModel, generator: Generator, tolerance: Tolerance,
                   greedy_tokens: int = GREEDY_TOKENS, reference: Reference | None = None
                   ) -> tuple[list[OutputReport], int]:
    """Decode vs full recompute (see the module docstring); returns the reports and greedy tokens checked.

    ``reference(ids)`` gives the full-sequence logits; PyTorch's forward when None.
    """
    reference = reference or (lambda ids: torch_logits(loaded, ids))
    rng = fresh_rng()
    limit = generator.max_context
    steps = min(DECODE_STEPS, limit - 1)
    prompts = sorted({1, min(7, limit - steps), max(1, min(limit - steps, (limit // 3) | 1))})
    reports = []
    for i, length in enumerate(prompts):
        batch = 3 if i % 2 == 0 else 1
        ids = loaded.make_inputs(batch, length + steps, rng)[0]
        want = reference(ids)
        ids = ids.numpy()
        logits, states = generator.prefill(ids[:, :length])
        pieces = [logits]
        for t in range(length, length + steps):
            logits, states = generator.step(ids[:, t:t + 1], states)
            pieces.append(logits)
        case = f"B={batch} prompt={length} +{steps} steps"
        reports.append(compare_output(LOGITS, case, want, np.concatenate(pieces, axis=1), tolerance))
    ids = loaded.make_inputs(2, min(limit, max(PREFILL_CHUNKS) + 31), rng)[0].numpy()
    whole, whole_states = generator.prefill(ids, chunk=ids.shape[1])
    for chunk in PREFILL_CHUNKS:
        logits, states = generator.prefill(ids, chunk)
        case = f"B=2 L={ids.shape[1]} chunk={chunk} vs one-shot"
        reports.append(compare_output(LOGITS, case, whole, logits, tolerance))
        reports.extend(compare_output(name, case, whole_states[name].astype(np.float64), value.astype(np.float64),
                                      tolerance) for name, value in states.items())
    return reports, _check_greedy(loaded, generator, rng, greedy_tokens, reference)


def torch_logits(loaded: LoadedModel, ids: torch.Tensor) -> np.ndarray:
    """PyTorch's full forward on ``ids`` (B, L): the logits (B, L, V), the model's first output."""
    with torch.inference_mode():
        out = loaded.module(ids)
    return next(t for t in tree_leaves(out) if isinstance(t, torch.Tensor)).float().numpy()


def _check_greedy(loaded: LoadedModel, generator: Generator, rng: np.random.Generator, tokens: int,
                  reference: Reference) -> int:
    """Greedy tokens of the decode graph vs the reference re-running the whole sequence per token; raises on a
    mismatch."""
    prompt_length = max(1, min(11, generator.max_context - tokens))
    tokens = min(tokens, generator.max_context - prompt_length)
    prompt = loaded.make_inputs(3, prompt_length, rng)[0]
    got = generator.generate(prompt.numpy(), tokens)
    sequence = prompt
    for index in range(tokens):
        want = torch.from_numpy(reference(sequence)[:, -1].argmax(-1))
        if not np.array_equal(want.numpy(), got[:, index]):
            raise HyenaDeployError(f"stateful greedy decoding differs from PyTorch full recompute at new token {index} "
                                   f"(prompt of {prompt_length}): {got[:, index].tolist()} vs {want.tolist()} "
                                   "(nothing written)")
        sequence = torch.cat([sequence, want[:, None].to(sequence.dtype)], dim=1)
    return tokens
