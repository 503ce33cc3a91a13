"""StripedHyena and Evo 1 checkpoints, run by the ``stripedhyena`` package (PyPI 0.2.2) itself.

Directory layouts:

- original repo: one ``*.yml``/``*.yaml`` config (``configs/7b-sh-32k-v1.yml`` style: has
  ``hyena_layer_idxs``, no ``model_type``) + one weights file (``*.pt``/``*.bin``/``*.safetensors``)
  with ``StripedHyena.state_dict()`` keys;
- Hugging Face port: ``config.json`` with ``model_type: "stripedhyena"`` (``StripedHyenaConfig``;
  its defaults fill absent fields) + ``pytorch_model.bin``/``model.safetensors`` or shards listed
  in ``*.index.json``, keys under ``backbone.``. Stored flashfftconv buffers (``fftconv``,
  ``twiddle_factors``) are ignored and ``rotary_emb.inv_freq`` may be absent, as in the port.

The package's modules are used unmodified, built on CPU in fp32 with its non-fused paths
(``use_flash_rmsnorm``/``use_flashfft``/``use_flash_depthwise`` off; its RMSNorm adds eps outside
the square root, the FIR bias is added after the conv, ``column_split_hyena`` as configured), and
the stateless parallel forward. Per instance, and only there:

- ``ParallelHyenaFilter.compute_filter`` takes ``log`` of complex poles, which does not export; it
  is replaced by the same filter in real arithmetic, ``h_t = Σ_n |p_n|^t (Re R_n cos θ_n t −
  Im R_n sin θ_n t)`` with ``θ_n = arg p_n``;
- attention blocks need flash_attn's ``MHA``: while the model is built, ``stripedhyena.model.MHA``
  (and ``swap_mha_rope``) resolve to :class:`FlashMHAStandIn`, plain torch with the same weights.
  Its ``inv_freq`` is computed from ``rotary_emb_base`` in fp32, as flash_attn does for the
  package's bf16 attention blocks, so a stored ``inv_freq`` is not used.
"""

from __future__ import annotations

import types
from pathlib import Path

import torch
from torch import nn

from hyena_deploy.checkpoints import find_config, load_into, load_state_dict, sha256_files, weight_files
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.loaded import LoadedModel
from hyena_deploy.models.striped import RotaryMHA, byte_tokenize
from hyena_deploy.patching import patched
from hyena_deploy.registry import register

MODEL_TYPE = "stripedhyena"
HF_PREFIX = "backbone."
# StripedHyenaConfig (HF port, configuration_hyena.py) defaults for fields config.json may omit.
HF_DEFAULTS = {
    "vocab_size": 32000, "hidden_size": 4096, "num_filters": 4096, "inner_mlp_size": 14336, "attn_layer_idxs": [],
    "hyena_layer_idxs": [], "num_layers": 32, "tie_embeddings": False, "short_filter_length": 3,
    "num_attention_heads": 32, "proj_groups": 4, "hyena_filter_groups": 1, "column_split_hyena": True,
    "column_split": False, "model_parallel_size": 1, "short_filter_bias": True, "mha_out_proj_bias": False,
    "qkv_proj_bias": False, "final_norm": True, "max_seqlen": 32768, "eps": 1e-5, "state_size": 2,
    "rotary_emb_base": 500000, "smeared_gqa": False, "use_flash_rmsnorm": True,
}
REQUIRED = ("vocab_size", "hidden_size", "num_filters", "num_layers", "num_attention_heads", "attn_layer_idxs",
            "hyena_layer_idxs", "short_filter_length", "state_size", "eps")
# CPU, fp32, no fused kernels; the stateless forward only.
RUNTIME = {"use_flash_attn": False, "use_flash_rmsnorm": False, "use_flash_depthwise": False, "use_flashfft": False,
           "inference_mode": False, "compile": False, "params_dtype": torch.float32,
           "hyena_block_dtype": torch.float32, "mlp_dtype": torch.float32, "attn_block_dtype": torch.float32}
IGNORED_KEY_PARTS = ("fftconv", "twiddle_factors")
_EXAMPLE_LENGTH = 64


def is_stripedhyena_config(config: dict) -> bool:
    """The HF ``model_type``, or untyped with Hyena layer indices; never with StripedHyena 2 (Evo 2) layer kinds."""
    if any(f"{kind}_layer_idxs" in config for kind in ("hcl", "hcm", "hcs")):
        return False
    if "model_type" in config:
        return config["model_type"] == MODEL_TYPE
    return "hyena_layer_idxs" in config


class FlashMHAStandIn(RotaryMHA):
    """Takes flash_attn ``MHA``'s constructor arguments, as the package's ``AttentionBlock`` passes them."""

    def __init__(self, *, embed_dim: int, num_heads: int, num_heads_kv: int, rotary_emb_dim: int,
                 qkv_proj_bias: bool, rotary_emb_base: float, out_proj_bias: bool, causal: bool,
                 **flash_only: object) -> None:  # layer_idx, use_flash_attn: kernel choices only
        if not causal or rotary_emb_dim != embed_dim // num_heads:
            raise HyenaDeployError("attention: only causal attention with rotary over the whole head is supported")
        super().__init__(embed_dim, num_heads, num_heads_kv, qkv_proj_bias, out_proj_bias, rotary_emb_base)

    def forward(self, x: torch.Tensor, inference_params: object = None) -> torch.Tensor:
        if inference_params is not None:
            raise HyenaDeployError("attention: only the stateless forward is supported (no KV cache)")
        return super().forward(x)


def _scale_rope(mha: FlashMHAStandIn, kwargs_new_rope: dict) -> None:
    """Stand-in for ``swap_mha_rope``: linearly interpolated positions ``t / scaling_factor``."""
    mha.rotary_emb.scaling = float(kwargs_new_rope["scaling_factor"])


def _real_compute_filter(self, L: int, device: torch.device) -> tuple:
    """``compute_filter`` without complex tensors: ``Re Σ_n R_n p_n^t`` as (1, systems, L) fp32.

    ``log p = log|p| + j arg p`` is formed in float64 (in fp32, ``|p|²`` rounds near 1 and the
    error grows with ``t``), then everything follows the package's complex64 arithmetic in fp32.
    """
    t = torch.arange(L, device=device, dtype=torch.float32)
    re_p, im_p = self.poles.double().unbind(-1)  # (systems, state, 1)
    log_magnitude = (0.5 * torch.log(re_p * re_p + im_p * im_p)).float()
    angle = torch.atan2(im_p, re_p).float() * t
    re_r, im_r = self.residues.float().unbind(-1)
    h = (torch.exp(log_magnitude * t) * (re_r * torch.cos(angle) - im_r * torch.sin(angle))).sum(1)[None]
    return h, torch.float32, self.poles, self.residues


def use_real_modal_filter(hyena_filter: nn.Module) -> None:
    """Give one ``ParallelHyenaFilter`` the real-arithmetic ``compute_filter``.

    ``t`` (the time vector only the stateful prefill reads) is left unset: this model runs the
    parallel path only.
    """
    hyena_filter.compute_filter = types.MethodType(_real_compute_filter, hyena_filter)
    hyena_filter.t = None


def package_config(config: dict) -> dict:
    """The dict handed to the package: ``config`` with the CPU fp32 runtime settings forced."""
    missing = [key for key in REQUIRED if key not in config]
    if missing:
        raise HyenaDeployError(f"StripedHyena config lacks {', '.join(missing)}")
    if config.get("smeared_gqa"):
        raise HyenaDeployError("StripedHyena config: smeared_gqa is not supported")
    return {"model_parallel_size": 1, **config, **RUNTIME}


def build_model(config: dict) -> nn.Module:
    """The package's ``StripedHyena`` for a config (see :func:`package_config`), made exportable, in eval mode."""
    try:
        from stripedhyena import model as sh_model
        from stripedhyena.utils import dotdict
    except ImportError as exc:
        raise HyenaDeployError(f"StripedHyena checkpoints are run by the stripedhyena package ({exc}): "
                               "pip install 'hyena-deploy[stripedhyena]'") from None
    try:
        with patched(sh_model, MHA=FlashMHAStandIn, swap_mha_rope=_scale_rope):
            model = sh_model.StripedHyena(dotdict(package_config(config)))
    except (NotImplementedError, AssertionError, KeyError, TypeError, ValueError) as exc:
        raise HyenaDeployError(f"the stripedhyena package cannot build this config: {type(exc).__name__}: {exc}"
                               ) from None
    for block in model.blocks:
        if isinstance(block, sh_model.ParallelGatedConvBlock):
            use_real_modal_filter(block.filter)
    return model.eval()


class StripedHyenaLogits(nn.Module):
    """``input_ids`` (B, L) -> logits (B, L, vocab) through the package's stateless forward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids)[0]


def checkpoint_state(files: list[Path], model: nn.Module) -> dict[str, torch.Tensor]:
    """Merged weights under the package's names: ``backbone.`` stripped, flashfftconv buffers dropped,
    ``inv_freq`` taken from the model (see module docstring)."""
    state: dict[str, torch.Tensor] = {}
    for path in files:
        state.update(load_state_dict(path))
    if state and all(key.startswith(HF_PREFIX) for key in state):
        state = {key[len(HF_PREFIX):]: value for key, value in state.items()}
    state = {key: value for key, value in state.items() if not any(part in key for part in IGNORED_KEY_PARTS)}
    for key, value in model.state_dict().items():
        if key.endswith("rotary_emb.inv_freq"):
            state[key] = value
    return state


def notes_for(config: dict) -> list[str]:
    """What differs from the package's default GPU run."""
    notes = ["modal long filter evaluated in real arithmetic (no complex log); fp32 throughout "
             "(the package runs MLPs and attention in bf16 by default)"]
    if config.get("use_flash_rmsnorm"):
        notes.append("config asks for flash_attn's fused RMSNorm (eps inside the sqrt); the package's own "
                     "RMSNorm (eps added to the RMS) is used")
    if config.get("attn_layer_idxs"):
        notes.append("attention: plain-torch stand-in for flash_attn MHA (same weights, causal, rotary)")
    return notes


class StripedHyenaFamily:
    """StripedHyena-Hessian/Nous-7B, Evo 1 and other ``stripedhyena`` package checkpoints."""

    name = "stripedhyena"

    def matches(self, directory: Path) -> bool:
        try:
            return find_config(directory, is_stripedhyena_config) is not None
        except HyenaDeployError:
            return False

    def load(self, directory: Path) -> LoadedModel:
        found = find_config(directory, is_stripedhyena_config)
        if found is None:
            raise HyenaDeployError(f"{directory}: no StripedHyena config (config.json or *.yml)")
        config_path, config = found
        if config_path.suffix == ".json":
            config = {**HF_DEFAULTS, **config}
        files = weight_files(directory)
        model = build_model(config)
        load_into(model, checkpoint_state(files, model), files[0] if len(files) == 1 else directory)
        max_len = config.get("max_seqlen")
        byte_level = config.get("tokenizer_type") == "CharLevelTokenizer"
        return LoadedModel(
            module=StripedHyenaLogits(model).eval(),
            example_inputs=(torch.zeros(1, min(max_len or _EXAMPLE_LENGTH, _EXAMPLE_LENGTH), dtype=torch.long),),
            name=directory.name, source_sha256=sha256_files(config_path, *files), max_seq_len=max_len,
            vocab_size=config["vocab_size"], output_names=["logits"], tokenizer=byte_tokenize if byte_level else None,
            notes=notes_for(config))


register(StripedHyenaFamily())
