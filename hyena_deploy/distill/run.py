"""``hyena-deploy distill``: fit every implicit long filter of a model in modal form, check the logits, write.

Filters come from the model's own filter modules (:class:`~hyena_deploy.models.hyena.HyenaFilter`,
used by the hyena_lm, safari and HyenaDNA families), evaluated at their full length ``l_max``.
The distilled model (the same model with each filter module replaced by a
:class:`~hyena_deploy.models.modal_filter.ModalFilter`) must reproduce the original's outputs on
the example inputs and on fresh random ones within ``max_logits_err`` (relative L2); otherwise
nothing is written and the layer that costs most on its own is named.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hyena_deploy.distill.checkpoint import DistilledLayer, apply_layers
from hyena_deploy.distill.fit import ModalFit, fit_filters, hankel_singular_values, stack_fits
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.loaded import LoadedModel
from hyena_deploy.models.hyena import HyenaFilter, HyenaOperator
from hyena_deploy.runners.torch_runner import TorchRunner
from hyena_deploy.verify.cases import Case, random_cases
from hyena_deploy.verify.comparator import compare
from hyena_deploy.verify.metrics import OutputReport, Tolerance

CHECK_BATCH = 2
FLOAT_BYTES = 4


@dataclass(frozen=True)
class FitOptions:
    tol: float = 1e-3
    max_order: int = 64
    method: str = "hankel"
    refine: bool = False
    direct: bool = False


@dataclass
class LayerFit:
    """The fits of one filter module, with what the report needs."""

    module: str
    samples: np.ndarray            # (C, L) float64, the original filter
    fits: list[ModalFit]
    groups: list[list[int]]        # channel indices of each long convolution the filter feeds
    hankel: np.ndarray             # singular values of the channel needing the highest order

    def layer(self, skip: np.ndarray) -> DistilledLayer:
        poles, residues, direct = stack_fits(self.fits)
        return DistilledLayer(self.module, poles, residues, skip + direct, [f.order for f in self.fits],
                              [f.error for f in self.fits])


def implicit_filters(model: nn.Module) -> list[tuple[str, HyenaFilter, nn.Module | None]]:
    """(path, filter module, the operator using it) for every implicit long filter of ``model``."""
    owners = {id(m.filter_fn): m for m in model.modules() if isinstance(m, HyenaOperator)}
    return [(name, module, owners.get(id(module))) for name, module in model.named_modules()
            if isinstance(module, HyenaFilter)]


def filter_samples(module: HyenaFilter) -> np.ndarray:
    """The filter at its full length as (C, l_max) float64 (computed as the model computes it)."""
    length = module.pos_emb.z.shape[1]
    with torch.no_grad():
        return module.filter(length)[0].t().double().numpy()


def channel_groups(channels: int, operator: nn.Module | None) -> list[list[int]]:
    """Channels of each long convolution (``HyenaOperator.filters`` order), one group if unknown."""
    if not isinstance(operator, HyenaOperator) or operator.order <= 2:
        return [list(range(channels))]
    index = np.arange(channels)
    convs, width = operator.order - 1, operator.d_model
    table = index.reshape(convs, width) if operator.channel_layout == "od" else index.reshape(width, convs).T
    return [row.tolist() for row in table]


def fit_layers(model: nn.Module, options: FitOptions, advance: Callable[[str], None] | None = None
               ) -> list[LayerFit]:
    """Fit every implicit filter of ``model``; ``advance(module)`` after each channel."""
    found = implicit_filters(model)
    if not found:
        raise HyenaDeployError("no implicit long filters (HyenaFilter modules) in this model: nothing to distil "
                               "(StripedHyena and Evo 2 filters are modal already)")
    layers = []
    for name, module, operator in found:
        samples = filter_samples(module)
        fits = fit_filters(samples, options.tol, options.max_order, options.method, options.direct,
                           options.refine, progress=None if advance is None else lambda: advance(name))
        worst = int(np.argmax([f.order for f in fits]))
        layers.append(LayerFit(name, samples, fits, channel_groups(samples.shape[0], operator),
                               hankel_singular_values(samples[worst], options.max_order)))
    return layers


def check_cases(loaded: LoadedModel, seed: int) -> list[Case]:
    """The example inputs and fresh random ones at the longest checked length and an odd shorter one."""
    length = loaded.max_seq_len or loaded.example_inputs[0].shape[1]
    make = lambda b, n, rng: [x.numpy() for x in loaded.make_inputs(b, n, rng)]  # noqa: E731
    example = Case("example", [x.detach().cpu().numpy() for x in loaded.example_inputs])
    return [example, *random_cases(make, sorted({length, max(1, length // 2 + 1) | 1}), CHECK_BATCH,
                                   np.random.default_rng(seed))]


def logits_errors(loaded: LoadedModel, distilled: nn.Module, cases: list[Case]) -> dict[str, float]:
    """Relative L2 of the distilled model's outputs against the original's, per input case (worst output)."""
    return errors_by_case(compare(TorchRunner(loaded), TorchRunner(replace(loaded, module=distilled)), cases,
                                  Tolerance()), cases)


def errors_by_case(reports: list[OutputReport], cases: list[Case]) -> dict[str, float]:
    """The worst output's relative L2 per input case."""
    return {case.label: max(r.rel_l2 for r in reports if r.case == case.label) for case in cases}


def distilled_copy(module: nn.Module, layers: list[DistilledLayer]) -> nn.Module:
    return apply_layers(copy.deepcopy(module), layers).eval()


def state_bytes(layer: LayerFit, layer_modes: int) -> dict[str, int]:
    """Per-sequence streaming state of this filter: exact input history before, modal state after."""
    channels, length = layer.samples.shape
    return {"history": channels * (length - 1) * FLOAT_BYTES, "modal": channels * layer_modes * 2 * FLOAT_BYTES}


def worst_layer(loaded: LoadedModel, distilled: list[DistilledLayer], cases: list[Case]) -> tuple[str, float]:
    """The layer whose distillation alone costs the most logits error (on the longest random case)."""
    case = [cases[-1]]
    alone = {layer.module: max(logits_errors(loaded, distilled_copy(loaded.module, [layer]), case).values())
             for layer in distilled}
    name = max(alone, key=alone.get)
    return name, alone[name]


def skips(model: nn.Module, names: list[str]) -> dict[str, np.ndarray]:
    with torch.no_grad():
        return {name: model.get_submodule(name).skip().double().numpy() for name in names}


def check_options(options: FitOptions, max_logits_err: float) -> None:
    """One-line errors for option values that cannot work."""
    if not max_logits_err > 0:
        raise HyenaDeployError(f"--max-logits-err must be > 0, got {max_logits_err}")
    if not options.tol > 0:
        raise HyenaDeployError(f"--tol must be > 0, got {options.tol}")
    if options.max_order < 1:
        raise HyenaDeployError(f"--max-order must be >= 1, got {options.max_order}")


def distill(loaded: LoadedModel, options: FitOptions, max_logits_err: float, seed: int = 0,
            advance: Callable[[str], None] | None = None) -> tuple[list[LayerFit], list[DistilledLayer], dict]:
    """Fit, build and check; returns (fits, distilled layers, logits errors) or raises naming the worst layer."""
    check_options(options, max_logits_err)
    fits = fit_layers(loaded.module, options, advance)
    skip = skips(loaded.module, [f.module for f in fits])
    layers = [f.layer(skip[f.module]) for f in fits]
    cases = check_cases(loaded, seed)
    errors = logits_errors(loaded, distilled_copy(loaded.module, layers), cases)
    worst_case = max(errors, key=errors.get)
    if not errors[worst_case] <= max_logits_err:
        name, alone = worst_layer(loaded, layers, cases)
        fit = next(f for f in fits if f.module == name)
        raise HyenaDeployError(
            f"distilled outputs differ from the original's by {errors[worst_case]:.2e} relative L2 "
            f"({worst_case}) > --max-logits-err {max_logits_err:g}; worst layer {name} ({alone:.2e} alone, "
            f"filter error up to {max(f.error for f in fit.fits):.1e} at order {max(f.order for f in fit.fits)}); "
            "nothing written (lower --tol or raise --max-order)")
    return fits, layers, errors


def report(source: str, options: FitOptions, fits: list[LayerFit], errors: dict[str, float]) -> dict:
    """The JSON report: per layer and channel group the orders and errors, Hankel spectrum, state bytes."""
    layers = []
    for f in fits:
        orders, errs = np.array([x.order for x in f.fits]), np.array([x.error for x in f.fits])
        modes = max((x.poles.size for x in f.fits), default=0)
        layers.append({
            "module": f.module, "channels": int(f.samples.shape[0]), "length": int(f.samples.shape[1]),
            "groups": [{"channels": len(g), "order_min": int(orders[g].min()), "order_median": float(np.median(orders[g])),
                        "order_max": int(orders[g].max()), "filter_error_max": float(errs[g].max()),
                        "filter_error_median": float(np.median(errs[g])),
                        "channels_over_tol": int(np.sum(errs[g] > options.tol))} for g in f.groups],
            "hankel_singular_values": (f.hankel / f.hankel[0]).tolist() if f.hankel.size and f.hankel[0] > 0 else [],
            "state_bytes": state_bytes(f, modes),
        })
    before = sum(layer["state_bytes"]["history"] for layer in layers)
    after = sum(layer["state_bytes"]["modal"] for layer in layers)
    return {"source": source, "tol": options.tol, "max_order": options.max_order, "method": options.method,
            "refine": options.refine, "direct": options.direct, "logits_rel_l2": errors, "layers": layers,
            "state_bytes_per_sequence": {"before": before, "after": after}}


def hankel_plot(path: Path, fits: list[LayerFit]) -> None:
    """Normalised Hankel singular values per layer (the channel needing the highest order), chosen order marked."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hyena_deploy.files import write_atomic

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for f in fits:
        values = f.hankel / f.hankel[0] if f.hankel.size and f.hankel[0] > 0 else f.hankel
        line, = axes.semilogy(np.arange(1, values.size + 1), values, label=f.module)
        order = max(x.order for x in f.fits)
        if 0 < order <= values.size:
            axes.axvline(order, color=line.get_color(), linestyle=":", linewidth=1)
    axes.set_xlabel("index (dotted: chosen order)")
    axes.set_ylabel("Hankel singular value / largest")
    axes.set_title("Hankel spectrum of each layer's hardest channel")
    axes.legend(fontsize=7)
    axes.grid(True, which="both", alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    write_atomic(path, buffer.getvalue())
