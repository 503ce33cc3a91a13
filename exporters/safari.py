"""safari (HazyResearch/safari) checkpoints: the Hyena LM (``ConvLMHeadModel``) or one ``HyenaOperator``.

Directory layout:

- ``config.json``: the safari Hydra ``model`` dict, either an LM (``d_model, n_layer, d_inner,
  vocab_size, pad_vocab_size_multiple, layer: {_name_: hyena, l_max, order, filter_order, emb_dim,
  w, modulate, ...}``) or a bare operator (``{_name_: hyena, d_model, l_max, order, ...}``). It may
  be nested under ``model`` (a Hydra dump) or ``model_config`` (``configs/evals/*.yaml``).
  ``"hyena_code": "src" | "standalone"`` names the code that produced the weights; it decides the
  filter channel layout for order >= 3 (``src/``: ``(v o)``, standalone: ``(o d)``). Default:
  ``src`` for LMs (``ConvLMHeadModel`` builds the ``src/`` operator); required for a bare operator
  of order >= 3.
- weights: ``model.safetensors``, ``pytorch_model.bin``, ``weights.ckpt``, ``model.pt`` or a single
  ``*.ckpt`` (Lightning ``state_dict``, ``model.`` prefix stripped). Legacy names are remapped as
  ``ConvLMHeadModel.load_state_dict`` does (``s4seq.encoder.``, ``embedding.``,
  ``output_linear``, the old post-norm LayerNorm order). ``lm_head.weight`` is tied to the
  embeddings and may be absent. The shared Sin ``freq`` may be stored under one of its names or not
  at all (then its initial value ``w`` is used, with a note).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hyena_deploy.exporters.safari_layout import (EXAMPLE_LENGTH, build_backbone, build_operator, config_int, example_ids,
                                     fill_shared_freq, hyena_code, is_hyena_lm, is_hyenadna_hydra, model_dict,
                                     remap_legacy, strip_prefix, untie_check)
from hyena_deploy.checkpoints import load_into, load_state_dict, read_config, sha256_files, single_weights_file
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.loaded import LoadedModel
from hyena_deploy.models.backbone import CausalLM
from hyena_deploy.registry import register


class SafariFamily:
    """safari Hyena LM or bare operator checkpoints (see the module docstring for the layout)."""

    name = "safari"

    def matches(self, directory: Path) -> bool:
        try:
            raw = read_config(directory)
        except HyenaDeployError:
            return False
        cfg = model_dict(raw)
        if "model_type" in raw:
            return False
        return (is_hyena_lm(cfg) and not is_hyenadna_hydra(cfg)) or cfg.get("_name_") == "hyena"

    def load(self, directory: Path) -> LoadedModel:
        raw = read_config(directory)
        cfg = model_dict(raw)
        weights = single_weights_file(directory, (".ckpt",))
        state = strip_prefix(load_state_dict(weights), "model.")
        notes: list[str] = []
        if is_hyena_lm(cfg):
            module, example, vocab, l_max, outputs = self._lm(cfg, hyena_code(raw, "src"), state, weights, notes)
        else:
            module, example, vocab, l_max, outputs = self._operator(cfg, hyena_code(raw, None), state, weights, notes)
        return LoadedModel(module=module.eval(), example_inputs=(example,), name=f"safari:{directory.name}",
                           source_sha256=sha256_files(directory / "config.json", weights), max_seq_len=l_max,
                           vocab_size=vocab, output_names=outputs, notes=notes)

    def _lm(self, cfg: dict, code: str, state: dict, weights: Path, notes: list[str]) -> tuple[Any, ...]:
        if cfg.get("attn_layer_idx"):
            raise HyenaDeployError("config.json: attention layers (attn_layer_idx) are not supported")
        n_layer = config_int(cfg, "n_layer")
        d_model = config_int(cfg, "d_model")
        mixers = [build_operator(cfg["layer"], d_model, code, 0.0) for _ in range(n_layer)]
        eps = float(cfg.get("layer_norm_epsilon", 1e-5))
        model = CausalLM(build_backbone(cfg, mixers, eps, eps), tie_embeddings=True)
        state = remap_legacy(state, n_layer)
        untie_check(state, "lm_head.weight", "backbone.embeddings.word_embeddings.weight")
        for i, mixer in enumerate(mixers):
            fill_shared_freq(state, mixer, f"backbone.layers.{i}.mixer.", notes)
        load_into(model, state, weights)
        vocab = config_int(cfg, "vocab_size")
        return model, example_ids(vocab, mixers[0].l_max), vocab, mixers[0].l_max, ["logits"]

    def _operator(self, cfg: dict, code: str | None, state: dict, weights: Path, notes: list[str]) -> tuple[Any, ...]:
        order = config_int(cfg, "order", 2, minimum=2)
        if code is None:
            if order > 2:
                raise HyenaDeployError("config.json: an order >= 3 operator needs \"hyena_code\": \"src\" or "
                                       "\"standalone\" (the two codes order the filter channels differently)")
            code = "standalone"
        operator = build_operator(cfg, config_int(cfg, "d_model"), code, 0.0)
        fill_shared_freq(state, operator, "", notes)
        load_into(operator, state, weights)
        example = torch.randn(1, min(operator.l_max, EXAMPLE_LENGTH), operator.d_model,
                              generator=torch.Generator().manual_seed(0))
        return operator, example, None, operator.l_max, ["y"]


register(SafariFamily())
