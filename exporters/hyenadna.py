"""HyenaDNA checkpoints: the Hub ``-hf`` port and the original Lightning ``weights.ckpt`` repos.

Directory layouts:

- **HF** (``LongSafari/hyenadna-*-hf``): ``config.json`` with ``model_type: hyenadna`` and
  ``model.safetensors`` or ``pytorch_model.bin``; keys ``hyena.backbone.*`` (or ``backbone.*``
  for a saved ``HyenaDNAModel``) plus ``lm_head.weight`` / ``score.weight``. Semantics of
  ``modeling_hyena.py``: window shift 0.05, always modulated, D skip always on, ``(o d)`` layout,
  order 2 only, block LayerNorms at eps 1e-5 and ``ln_f`` at ``layer_norm_epsilon``. The head is
  ``architectures[0]`` (``HyenaDNAForCausalLM``, ``HyenaDNAModel``,
  ``HyenaDNAForSequenceClassification``), else the one whose weights are present.
- **Lightning** (``LongSafari/hyenadna-*-seqlen``): the Hydra ``model`` dict as ``config.json``
  (``d_model, n_layer, d_inner, vocab_size: 12, layer: {...}, checkpoint_mixer, ...``) and
  ``weights.ckpt`` (``model.backbone.*``, ``.mixer.layer.`` / ``.mlp.layer.`` when trained with
  ``checkpoint_mixer`` / ``checkpoint_mlp``; ``model.lm_head.weight`` tied to the embeddings).
  Loaded as the official loader ``huggingface.py`` does (``standalone_hyenadna.py``: shift 0.05,
  ``(o d)``) and returning hidden states; ``"hyena_code": "src"`` switches to the training code
  (``src/``: shift 0.0, ``(v o)``), ``layer.shift`` overrides the shift, and
  ``architectures: ["HyenaDNAForCausalLM"]`` adds the tied LM head.

Sequence classification pools the token before the first pad (``argmax(ids == pad) - 1``), so
an output depends on where padding starts, not only on earlier positions: the pipeline's
right-padding for dynamic lengths does not apply and it must be exported at a static length.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from hyena_deploy.exporters.safari_layout import (build_backbone, build_operator, config_int, fill_shared_freq, hyena_code,
                                     is_hyena_lm, is_hyenadna_hydra, model_dict, strip_prefix, untie_check)
from hyena_deploy.checkpoints import load_into, load_state_dict, read_config, sha256_files, single_weights_file
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.loaded import LoadedModel
from hyena_deploy.models.backbone import CausalLM, EmbeddingModel, SequenceClassifier
from hyena_deploy.models.hyena import HyenaOperator
from hyena_deploy.registry import register

SPECIAL_TOKENS = {"[CLS]": 0, "[SEP]": 1, "[BOS]": 2, "[MASK]": 3, "[PAD]": 4, "[RESERVED]": 5, "[UNK]": 6}
NUCLEOTIDES = {ch: i + 7 for i, ch in enumerate("ACGTN")}
VOCAB_SIZE = len(SPECIAL_TOKENS) + len(NUCLEOTIDES)
HEADS = {"HyenaDNAForCausalLM": "lm_head.weight", "HyenaDNAForSequenceClassification": "score.weight",
         "HyenaDNAModel": None}
HF_SHIFT, SRC_SHIFT = 0.05, 0.0
_EXAMPLE_LENGTH = 64


def tokenize(sequences: list[str], max_len: int | None = None) -> tuple[torch.Tensor]:
    """``CharacterTokenizer`` ids: ``[CLS] seq [SEP]`` per string, left-padded with ``[PAD]`` (its default).

    Lowercase (soft-masked) bases are upper-cased first, as hyena-dna's data loaders do; any other
    character is ``[UNK]``.
    """
    rows = [[SPECIAL_TOKENS["[CLS]"], *(NUCLEOTIDES.get(ch, SPECIAL_TOKENS["[UNK]"]) for ch in seq.upper()),
             SPECIAL_TOKENS["[SEP]"]] for seq in sequences]
    width = max((len(row) for row in rows), default=0)
    if max_len is not None and width > max_len:
        raise HyenaDeployError(f"a sequence needs {width} tokens with [CLS]/[SEP], the model takes at most {max_len}")
    ids = [[SPECIAL_TOKENS["[PAD]"]] * (width - len(row)) + row for row in rows]
    return (torch.tensor(ids, dtype=torch.long).reshape(len(rows), width),)


def random_dna(batch: int, length: int, rng: np.random.Generator) -> tuple[torch.Tensor]:
    """(batch, length) token ids of random bases A, C, G, T, N."""
    return (torch.from_numpy(rng.integers(NUCLEOTIDES["A"], NUCLEOTIDES["N"] + 1, size=(batch, length))),)


def _is_hf(raw: dict) -> bool:
    return raw.get("model_type") == "hyenadna"


def _head(raw: dict, state: dict[str, torch.Tensor], default: str) -> str:
    architectures = raw.get("architectures") or []
    if architectures:
        if architectures[0] not in HEADS:
            raise HyenaDeployError(f"config.json: architecture {architectures[0]!r} is not one of {sorted(HEADS)}")
        return architectures[0]
    return next((name for name, key in HEADS.items() if key and key in state), default)


def hf_operator(raw: dict) -> HyenaOperator:
    """``modeling_hyena.HyenaOperator`` for an ``-hf`` config: shift 0.05, always modulated, ``(o d)``."""
    for key, supported in (("hyena_order", 2), ("short_filter_order", 3)):
        if raw.get(key, supported) != supported:
            raise HyenaDeployError(f"config.json: {key}={raw[key]!r} is not supported by modeling_hyena.py "
                                   f"(only {supported})")
    layer = {"l_max": raw.get("max_seq_len", 1024), "filter_order": raw.get("filter_order", 64),
             "emb_dim": raw.get("emb_dim", 3), "num_inner_mlps": raw.get("num_inner_mlps", 2),
             "w": raw.get("activation_freq", 1)}
    return build_operator(layer, config_int(raw, "d_model", 256), "standalone", HF_SHIFT,
                          train_freq=bool(raw.get("train_freq", True)))


class HyenaDNAFamily:
    """HyenaDNA ``-hf`` and Lightning checkpoints (see the module docstring for the layouts)."""

    name = "hyenadna"

    def matches(self, directory: Path) -> bool:
        try:
            raw = read_config(directory)
        except HyenaDeployError:
            return False
        return _is_hf(raw) or (not raw.get("model_type") and is_hyenadna_hydra(model_dict(raw)))

    def load(self, directory: Path) -> LoadedModel:
        raw = read_config(directory)
        notes: list[str] = []
        weights = single_weights_file(directory, (".ckpt",))
        loader = self._hf if _is_hf(raw) else self._lightning
        module, head, l_max = loader(raw, load_state_dict(weights), weights, notes)
        if head == "HyenaDNAForSequenceClassification":
            notes.append("sequence classification pools the token before the first pad: not causal per position, "
                         "export it at a static length (--seq-len)")
        example = random_dna(1, min(l_max, _EXAMPLE_LENGTH), np.random.default_rng(0))
        output = {"HyenaDNAForCausalLM": "logits", "HyenaDNAModel": "hidden_states"}.get(head, "logits")
        return LoadedModel(module=module.eval(), example_inputs=example, name=f"hyenadna:{head}:{directory.name}",
                           source_sha256=sha256_files(directory / "config.json", weights), max_seq_len=l_max,
                           vocab_size=VOCAB_SIZE, output_names=[output], input_maker=random_dna,
                           tokenizer=lambda seqs: tokenize(seqs, l_max), notes=notes)

    def _hf(self, raw: dict, state: dict, weights: Path, notes: list[str]) -> tuple[torch.nn.Module, str, int]:
        state = {re.sub(r"^hyena\.", "", key): value for key, value in state.items()}
        mixers = [hf_operator(raw) for _ in range(config_int(raw, "n_layer", 12))]
        cfg = {"d_model": raw.get("d_model", 256), "d_inner": raw.get("d_inner"),
               "vocab_size": raw.get("vocab_size", 12), "pad_vocab_size_multiple": raw.get("pad_vocab_size_multiple", 8)}
        backbone = build_backbone(cfg, mixers, 1e-5, float(raw.get("layer_norm_epsilon", 1e-5)))
        head = _head(raw, state, "HyenaDNAModel")
        if head == "HyenaDNAForCausalLM":
            tied = bool(raw.get("tie_word_embeddings", True))  # transformers' default; released configs say false
            if tied:
                untie_check(state, "lm_head.weight", "backbone.embeddings.word_embeddings.weight")
            module = CausalLM(backbone, tie_embeddings=tied)
        elif head == "HyenaDNAForSequenceClassification":
            labels = state["score.weight"].shape[0] if "score.weight" in state else 2  # absent: load_into reports it
            module = SequenceClassifier(backbone, labels, raw.get("pad_token_id"))
        else:
            module = EmbeddingModel(backbone)
        for i, mixer in enumerate(mixers):
            fill_shared_freq(state, mixer, f"backbone.layers.{i}.mixer.", notes)
        load_into(module, state, weights)
        return module, head, mixers[0].l_max

    def _lightning(self, raw: dict, state: dict, weights: Path, notes: list[str]) -> tuple[torch.nn.Module, str, int]:
        cfg = model_dict(raw)
        if not is_hyena_lm(cfg):
            raise HyenaDeployError("config.json: expected the hyena-dna Hydra model dict with a hyena layer")
        code = hyena_code(raw, "standalone")
        state = strip_prefix(state, "model.")
        state = {re.sub(r"\.(mixer|mlp)\.layer\.", r".\1.", key): value for key, value in state.items()}
        shift = HF_SHIFT if code == "standalone" else SRC_SHIFT
        mixers = [build_operator(cfg["layer"], config_int(cfg, "d_model"), code, shift)
                  for _ in range(config_int(cfg, "n_layer"))]
        eps = float(cfg.get("layer_norm_epsilon", 1e-5))
        backbone = build_backbone(cfg, mixers, eps, eps)
        head = _head(raw, {}, "HyenaDNAModel")
        if head == "HyenaDNAForSequenceClassification":
            raise HyenaDeployError("config.json: a Lightning weights.ckpt has no sequence-classification head")
        untie_check(state, "lm_head.weight", "backbone.embeddings.word_embeddings.weight")
        module = CausalLM(backbone, tie_embeddings=True) if head == "HyenaDNAForCausalLM" else EmbeddingModel(backbone)
        for i, mixer in enumerate(mixers):
            fill_shared_freq(state, mixer, f"backbone.layers.{i}.mixer.", notes)
        load_into(module, state, weights)
        return module, head, mixers[0].l_max


register(HyenaDNAFamily())
