"""``hyena-deploy generate``: tokens from a stateful export directory (numpy + onnxruntime only)."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
from rich.markup import escape
from rich.progress import Progress

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.report import console, write_json
from hyena_deploy.runtime.generator import Generator

PROGRESS_FROM = 64  # show a progress bar from this many new tokens on
IDS_PREFIX = "ids:"


def parse_ids(text: str, where: str) -> np.ndarray:
    """``1,2,3`` as int64 ids, or a one-line error naming ``where``."""
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise HyenaDeployError(f"{where}: expected comma-separated token ids, got {text!r}") from None
    if not ids:
        raise HyenaDeployError(f"{where}: no token ids")
    return np.array(ids, dtype=np.int64)


def read_batch_file(path: Path, generator: Generator) -> list[np.ndarray]:
    """One prompt per non-empty line: text, or ``ids:1,2,3`` for token ids."""
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise HyenaDeployError(f"{path}: cannot read ({exc})") from None
    if not lines:
        raise HyenaDeployError(f"{path}: no prompts")
    return [parse_ids(line[len(IDS_PREFIX):], f"{path} line {n}") if line.startswith(IDS_PREFIX)
            else generator.encode(line) for n, line in enumerate(lines, 1)]


@click.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--prompt", "--sequence", "prompt", help="Prompt text (encoded with the model's tokenizer).")
@click.option("--prompt-ids", help="Prompt token ids, e.g. 1,2,3.")
@click.option("--batch-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Several prompts, one per line (text, or ids:1,2,3); lengths may differ.")
@click.option("--max-new-tokens", type=int, default=32, show_default=True)
@click.option("--temperature", type=float, default=0.0, show_default=True, help="0 is greedy (argmax).")
@click.option("--top-k", type=int, help="Sample among the K most likely tokens.")
@click.option("--top-p", type=float, help="Sample among the most likely tokens of total probability P.")
@click.option("--seed", type=int, help="Seed of the sampler.")
@click.option("--stop-ids", help="Token ids that end a sequence, e.g. 0,2.")
@click.option("--prefill-chunk", type=int, help="Prompt tokens per decode call while prefilling.")
@click.option("--threads", type=int, help="ONNX Runtime intra-op threads.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write sequences and timings as JSON.")
def generate(directory: Path, prompt: str | None, prompt_ids: str | None, batch_file: Path | None,
             max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None, seed: int | None,
             stop_ids: str | None, prefill_chunk: int | None, threads: int | None, json_path: Path | None) -> None:
    """Generate tokens after a prompt with the stateful export DIRECTORY (export --stateful)."""
    if sum(x is not None for x in (prompt, prompt_ids, batch_file)) != 1:
        raise HyenaDeployError("give exactly one of --prompt, --prompt-ids, --batch-file")
    generator = Generator(directory, threads)
    if batch_file is not None:
        prompts = read_batch_file(batch_file, generator)
    else:
        prompts = [generator.encode(prompt) if prompt is not None else parse_ids(prompt_ids, "--prompt-ids")]
    stops = parse_ids(stop_ids, "--stop-ids").tolist() if stop_ids else []
    sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, stop_tokens=stops)
    if max_new_tokens >= PROGRESS_FROM:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("generating", total=max_new_tokens)
            result = generator.generate_rows(prompts, max_new_tokens, prefill_chunk, **sampling,
                                             on_token=lambda i, _: progress.update(task, completed=i + 1))
    else:
        result = generator.generate_rows(prompts, max_new_tokens, prefill_chunk, **sampling)
    sequences = []
    for prompt_row, generated in zip(prompts, result.sequences):
        text = generator.decode(generated.tolist())
        sequences.append({"prompt_ids": prompt_row.tolist(), "generated_ids": generated.tolist(), "text": text})
        console.print(",".join(str(i) for i in generated.tolist()))
        if text is not None:
            console.print(escape(text))
    tokens_per_s = len(prompts) * 1e3 / result.decode_ms_per_token if result.decode_ms_per_token > 0 else None
    console.print(f"prefill {result.prefill_ms:.1f} ms; decode {result.decode_ms_per_token:.2f} ms/token "
                  f"({len(prompts)} row(s))")
    if json_path is not None:
        write_json(json_path, {"sequences": sequences, "prefill_ms": result.prefill_ms,
                               "decode_ms_per_token": result.decode_ms_per_token, "tokens_per_s": tokens_per_s})
