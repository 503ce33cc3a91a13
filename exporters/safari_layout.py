"""safari's Hydra config and state-dict layout, shared by the safari and HyenaDNA families (registers nothing).

See ``exporters/safari.py`` for the directory layouts this parses.
"""

from __future__ import annotations

import re

import torch

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.models.backbone import Backbone, Embeddings, MixerBlock
from hyena_deploy.models.hyena import HyenaOperator, Sin

HYENA_CODES = ("src", "standalone")
# Operator options the loader only accepts at their default (the published configs all use them).
_FIXED_OPTIONS = {"num_heads": 1, "inner_factor": 1, "num_blocks": 1, "outer_mixing": False,
                  "post_order_ffn": False, "activation": "id", "filter_cls": "hyena-filter",
                  "linear_mixer": False, "bidirectional": False}
EXAMPLE_LENGTH = 64


def model_dict(raw: dict) -> dict:
    """The Hydra model dict inside a config.json (unwrapping ``model`` / ``model_config``)."""
    for key in ("model", "model_config"):
        if isinstance(raw.get(key), dict):
            return raw[key]
    return raw


def is_hyena_lm(cfg: dict) -> bool:
    """A Hydra LM dict whose mixer layer is Hyena."""
    layer = cfg.get("layer")
    return isinstance(layer, dict) and layer.get("_name_") == "hyena" and "n_layer" in cfg


def is_hyenadna_hydra(cfg: dict) -> bool:
    """hyena-dna's Hydra LM dict: checkpointing flags (hyena-dna only) or the 12-token DNA vocabulary."""
    return is_hyena_lm(cfg) and ("checkpoint_mixer" in cfg or "checkpoint_mlp" in cfg
                                 or cfg.get("vocab_size") == 12)


def hyena_code(raw: dict, default: str | None) -> str | None:
    """The ``hyena_code`` of a config.json, validated."""
    code = raw.get("hyena_code", model_dict(raw).get("hyena_code", default))
    if code is not None and code not in HYENA_CODES:
        raise HyenaDeployError(f"config.json: hyena_code must be one of {HYENA_CODES}, got {code!r}")
    return code


def config_int(cfg: dict, key: str, default: int | None = None, minimum: int = 1) -> int:
    """``cfg[key]`` (or ``default`` when absent or null), checked to be an integer >= ``minimum``."""
    value = cfg.get(key)
    value = default if value is None else value
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise HyenaDeployError(f"config.json: {key} must be an integer >= {minimum}, got {value!r}")
    return value


def build_operator(layer: dict, d_model: int, code: str, shift: float, train_freq: bool = True) -> HyenaOperator:
    """A Hyena operator as the ``code`` version builds it from a Hydra ``layer`` dict.

    ``shift`` is the window shift when the dict has none. The standalone code hard-codes a 3-tap
    short filter and ignores ``normalized`` and ``bias``; ``src/`` honours them.
    """
    for key, expected in _FIXED_OPTIONS.items():
        if key in layer and layer[key] != expected:
            raise HyenaDeployError(f"config.json: layer {key}={layer[key]!r} is not supported (only {expected!r})")
    if layer.get("d_model", d_model) != d_model:
        raise HyenaDeployError(f"config.json: layer d_model {layer['d_model']} != model d_model {d_model}")
    emb_dim = config_int(layer, "emb_dim", 3, minimum=3)
    if emb_dim % 2 == 0:
        raise HyenaDeployError(f"config.json: layer emb_dim must be odd, got {emb_dim}")
    src = code == "src"
    return HyenaOperator(
        d_model, config_int(layer, "l_max"), config_int(layer, "order", 2, minimum=2),
        config_int(layer, "filter_order", 64), emb_dim, config_int(layer, "num_inner_mlps", 2, minimum=0),
        float(layer.get("w", 1.0)), float(layer.get("shift", shift)),
        config_int(layer, "short_filter_order", 3) if src else 3,
        channel_layout="vo" if src else "od", modulate=bool(layer.get("modulate", True)),
        normalized=src and bool(layer.get("normalized", False)), use_bias=not src or bool(layer.get("bias", True)),
        z_trainable=layer.get("lr_pos_emb", 1e-5) != 0.0, train_freq=train_freq)


def fill_shared_freq(state: dict[str, torch.Tensor], operator: HyenaOperator, prefix: str,
                     notes: list[str]) -> None:
    """Give every name of the operator's one shared Sin ``freq`` the stored value (or ``w`` if none)."""
    mlp = operator.filter_fn.implicit_filter
    sin = next(module for module in mlp if isinstance(module, Sin))
    if not isinstance(sin.freq, torch.nn.Parameter):
        return  # train_freq=False: a fixed value, not part of the state dict
    sin_names = [f"{prefix}filter_fn.implicit_filter.{i}.freq" for i, module in enumerate(mlp) if module is sin]
    present = [name for name in sin_names if name in state]
    if not present:
        value = sin.freq.detach().clone()
        notes.append(f"{prefix}filter_fn: Sin freq not stored, using its initial value w={value[0, 0].item():g}")
    else:
        value = state[present[0]]
        for name in present[1:]:
            if not torch.equal(state[name], value):
                raise HyenaDeployError(f"{name} differs from {present[0]}: the Sin frequency is one shared tensor")
    state.update({name: value for name in sin_names})


def remap_legacy(state: dict[str, torch.Tensor], n_layer: int) -> dict[str, torch.Tensor]:
    """``ConvLMHeadModel.load_state_dict``'s renames, and its post-norm -> prenorm LayerNorm reordering."""
    renames = ((r"^s4seq\.encoder\.", "backbone."), (r"^embedding\.", "backbone.embeddings.word_embeddings."),
               (r"^backbone\.norm\.", "backbone.ln_0."),
               (r"^backbone\.layers\.(\d+)\.mixer\.output_linear\.", r"backbone.layers.\1.mixer.out_proj."))
    out = {}
    for key, value in state.items():
        for pattern, repl in renames:
            key = re.sub(pattern, repl, key)
        out[key] = value
    if "backbone.ln_0.weight" not in out:
        return out
    old = dict(out)
    moves = {f"backbone.layers.{n_layer - 1}.norm2": "backbone.ln_f", "backbone.ln_0": "backbone.layers.0.norm1"}
    for i in range(n_layer):
        moves[f"backbone.layers.{i}.norm1"] = f"backbone.layers.{i}.norm2"
        if i > 0:
            moves[f"backbone.layers.{i - 1}.norm2"] = f"backbone.layers.{i}.norm1"
    for source in moves:
        for part in ("weight", "bias"):
            if f"{source}.{part}" not in old:
                raise HyenaDeployError(f"legacy checkpoint: {source}.{part} missing")
            out.pop(f"{source}.{part}")
    for source, target in moves.items():
        for part in ("weight", "bias"):
            out[f"{target}.{part}"] = old[f"{source}.{part}"]
    return out


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Drop ``prefix`` from every key when all keys have it (Lightning ``model.``, HF ``hyena.``)."""
    if state and all(key.startswith(prefix) for key in state):
        return {key[len(prefix):]: value for key, value in state.items()}
    return state


def untie_check(state: dict[str, torch.Tensor], head: str, embeddings: str) -> None:
    """Drop a stored copy of a tied head after checking that it equals the embeddings."""
    if head in state:
        if embeddings in state and not torch.equal(state[head], state[embeddings]):
            raise HyenaDeployError(f"{head} differs from {embeddings}, but the model ties them")
        state.setdefault(embeddings, state[head])
        del state[head]


def padded_vocab(cfg: dict) -> int:
    """``vocab_size`` rounded up to ``pad_vocab_size_multiple``, as the embeddings are allocated."""
    vocab = config_int(cfg, "vocab_size")
    multiple = config_int(cfg, "pad_vocab_size_multiple", 1)
    return -(-vocab // multiple) * multiple


def build_backbone(cfg: dict, mixers: list[HyenaOperator], block_eps: float, final_eps: float) -> Backbone:
    """Embeddings + prenorm blocks around ``mixers`` + ``ln_f`` for a Hydra LM dict."""
    d_model = config_int(cfg, "d_model")
    d_inner = config_int(cfg, "d_inner", 4 * d_model)
    embeddings = Embeddings(padded_vocab(cfg), d_model, config_int(cfg, "max_position_embeddings", 0, minimum=0))
    blocks = [MixerBlock(mixer, d_model, d_inner, block_eps) for mixer in mixers]
    return Backbone(embeddings, blocks, d_model, final_eps)


def example_ids(vocab: int, l_max: int) -> torch.Tensor:
    """(1, min(l_max, 64)) random token ids."""
    return torch.randint(0, vocab, (1, min(l_max, EXAMPLE_LENGTH)), generator=torch.Generator().manual_seed(0))
