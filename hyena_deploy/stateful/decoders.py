"""The decode module of each family: token ids (B, T) and states -> logits (B, T, V) and new states.

Models of no known family get theirs from the traced graph instead
(:mod:`hyena_deploy.stateful.traced`). A decode module has ``specs`` (its
:class:`~hyena_deploy.stateful.layout.StateSpec` list) and
``forward(input_ids, *states) -> (logits, *new_states)`` in that order. Each family's step math lives
next to its full-sequence model in :mod:`hyena_deploy.models`; this module only picks it.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.models.backbone import CausalLM, CausalLMStep
from hyena_deploy.models.evo2 import Evo2, Evo2Step
from hyena_deploy.models.hyena import HyenaOperator
from hyena_deploy.models.lm import HyenaLM, HyenaLMStep
from hyena_deploy.models.striped import StripedHyenaStep

Builder = Callable[[nn.Module, int], nn.Module]


def _causal_lm(model: CausalLM, max_context: int) -> nn.Module:
    mixers = [type(block.mixer).__name__ for block in model.backbone.layers
              if not isinstance(block.mixer, HyenaOperator)]
    if mixers:
        raise HyenaDeployError(f"no stateful form for mixer {mixers[0]} (Hyena operators only)")
    return CausalLMStep(model, max_context)


BUILDERS: dict[type, tuple[str, Builder]] = {
    HyenaLM: ("hyena_lm", HyenaLMStep),
    CausalLM: ("hyena_causal_lm", _causal_lm),
    Evo2: ("evo2", Evo2Step),
}


def _striped_hyena(model: nn.Module, max_context: int) -> nn.Module:
    return StripedHyenaStep(model.model, max_context)


def _is_striped_hyena(model: nn.Module) -> bool:
    """The StripedHyena family's wrapper of the ``stripedhyena`` package's model (not imported: a family module)."""
    inner = getattr(model, "model", None)
    return type(inner).__name__ == "StripedHyena" and type(inner).__module__.startswith("stripedhyena")


def family_decoder(model: nn.Module, max_context: int) -> tuple[str, nn.Module] | None:
    """(family name, decode module) for a model of a known family, None for any other model.

    A known family's model with no stateful form (a mixer without step math) is a one-line error.
    """
    for kind, (family, builder) in BUILDERS.items():
        if type(model) is kind:
            return family, builder(model, max_context).eval()
    if _is_striped_hyena(model):
        return "stripedhyena", _striped_hyena(model, max_context).eval()
    return None
