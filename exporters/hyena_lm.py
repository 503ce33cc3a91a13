"""hyena-deploy's own LM layout: ``config.json`` (model_type ``hyena_lm``) + ``model.safetensors``."""

from __future__ import annotations

from pathlib import Path

import torch

from hyena_deploy.checkpoints import load_into, load_state_dict, read_config, sha256_files, single_weights_file
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.loaded import LoadedModel
from hyena_deploy.models.lm import MODEL_TYPE, HyenaLM, HyenaLMConfig
from hyena_deploy.registry import register


class HyenaLMFamily:
    """The reference Hyena LM shipped with hyena-deploy (samples/hyena-tiny)."""

    name = "hyena_lm"

    def matches(self, directory: Path) -> bool:
        try:
            return read_config(directory).get("model_type") == MODEL_TYPE
        except HyenaDeployError:
            return False

    def load(self, directory: Path) -> LoadedModel:
        config = HyenaLMConfig.from_dict(read_config(directory))
        weights = single_weights_file(directory)
        model = HyenaLM(config).eval()
        load_into(model, load_state_dict(weights), weights)
        example = torch.zeros(1, min(config.l_max, 64), dtype=torch.long)
        return LoadedModel(module=model, example_inputs=(example,), name=directory.name,
                           source_sha256=sha256_files(directory / "config.json", weights),
                           max_seq_len=config.l_max, vocab_size=config.vocab_size, output_names=["logits"])


register(HyenaLMFamily())
