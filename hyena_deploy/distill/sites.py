"""Distil the long filters of a model known only by its traced graph (``file.py:factory``).

Such a model has no filter modules to replace and no checkpoint to write beside, so its filters are
the FFT convolutions the probe measures in the graph traced at the maximum length, and the fits are
written on their own::

    distilled_sites.json          {"format": "hyena-deploy-distilled-sites", "version": 1, "source": ...,
                                   "source_sha256": ..., "max_seq_len": L, "sites": [{"signal", "output",
                                   "module", "channels", "modes", "orders", "errors"}], "fit": {...}}
    distilled_sites.safetensors   "site<i>.pole_re|pole_im|residue_re|residue_im" (C, N), "site<i>.direct" (C,)

keyed by each site's boundary and by the source's digest. ``export SOURCE --stateful --distilled DIR``
gives those sites modal states. The end-to-end check (fail-closed, like ``distill`` on checkpoints)
runs the traced graph with every site's filter replaced by its fit in ONNX Runtime against PyTorch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from safetensors.numpy import load, save

from hyena_deploy.distill.fit import ModalFit, fit_filters, hankel_singular_values, stack_fits
from hyena_deploy.distill.run import check_cases, errors_by_case
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.files import write_atomic
from hyena_deploy.lengths import make_length_dynamic
from hyena_deploy.loaded import LoadedModel
from hyena_deploy.rewrite.probe import Boundary
from hyena_deploy.rewrite.replace import MeasuredSite, measure_sites, rewrite_fftconvs
from hyena_deploy.runners.ort_runner import OrtRunner
from hyena_deploy.runners.torch_runner import TorchRunner
from hyena_deploy.spectral import support
from hyena_deploy.strategies.modal import ModalPlan
from hyena_deploy.trace import trace
from hyena_deploy.verify.comparator import compare
from hyena_deploy.verify.metrics import Tolerance

FORMAT, VERSION = "hyena-deploy-distilled-sites", 1
SITES_FILE, WEIGHTS_FILE = "distilled_sites.json", "distilled_sites.safetensors"
_PARTS = ("pole_re", "pole_im", "residue_re", "residue_im")
OPSET = 20


@dataclass(frozen=True)
class SiteFit:
    """One measured FFT convolution and the modal fit of each of its channels."""

    boundary: Boundary
    module: str
    samples: np.ndarray   # (C, S) float64: the measured filter cut to its support
    fits: list[ModalFit]

    def plan(self) -> ModalPlan:
        poles, residues, direct = stack_fits(self.fits)
        return ModalPlan(poles, residues, direct, self.samples.shape[-1], max(f.error for f in self.fits))


def is_sites_dir(directory: Path) -> bool:
    return (directory / SITES_FILE).is_file()


def max_length(loaded: LoadedModel) -> int:
    if loaded.max_seq_len is None:
        raise HyenaDeployError(f"{loaded.name} declares no maximum length (l_max / max_seq_len): the filters are "
                               "distilled over it")
    return loaded.max_seq_len


def measured_sites(loaded: LoadedModel, length: int) -> tuple[onnx.ModelProto, list[MeasuredSite]]:
    """The graph traced at ``length`` and its causal FFT convolutions, or a one-line error."""
    graph = trace(loaded, length, None, OPSET)
    sites, skipped = measure_sites(graph)
    if skipped:
        raise HyenaDeployError(f"cannot distil: {skipped[0]}")
    if not sites:
        raise HyenaDeployError("no FFT convolution in the traced graph: nothing to distil")
    two_sided = next((s for s in sites if s.filter.lead), None)
    if two_sided is not None:
        raise HyenaDeployError(f"cannot distil the two-sided FFT convolution at {two_sided.site.inverse_dft}: "
                               "a modal filter is causal")
    return graph, sites


def fit_sites(sites: list[MeasuredSite], tol: float, max_order: int, method: str, direct: bool, refine: bool,
              advance: Callable[[str], None] | None = None) -> list[SiteFit]:
    fitted = []
    for site in sites:
        h = np.asarray(site.filter.h, np.float64)
        h = h[:, :max(2, support(h))]
        name = site.site.module or site.boundary.output
        fits = fit_filters(h, tol, max_order, method, direct, refine,
                           progress=None if advance is None else lambda: advance(name))
        fitted.append(SiteFit(site.boundary, name, h, fits))
    return fitted


def hankel(fit: SiteFit, max_order: int) -> np.ndarray:
    """Hankel singular values of the channel needing the highest order."""
    return hankel_singular_values(fit.samples[int(np.argmax([f.order for f in fit.fits]))], max_order)


def distilled_graph(graph: onnx.ModelProto, sites: list[MeasuredSite], plans: dict[Boundary, ModalPlan],
                    length: int) -> onnx.ModelProto:
    """``graph`` (traced at ``length``, its ``sites`` measured) with every site's filter replaced by its modal
    impulse, for any length <= it."""
    def substitute(site: MeasuredSite) -> np.ndarray:
        plan = plans.get(site.boundary)
        if plan is None:
            raise HyenaDeployError(f"the FFT convolution at {site.site.inverse_dft} is not in the distillation "
                                   "(distilled from another model?)")
        return plan.impulse(length)

    rewritten, _, skipped = rewrite_fftconvs(graph, lambda h: "monarch", substitute=substitute, measured=(sites, []))
    if skipped:
        raise HyenaDeployError(f"cannot build the distilled graph: {skipped[0]}")
    make_length_dynamic(rewritten, length)
    return rewritten


def check_logits(loaded: LoadedModel, graph: onnx.ModelProto, sites: list[MeasuredSite], fitted: list[SiteFit],
                 length: int, max_logits_err: float, seed: int) -> dict[str, float]:
    """Relative L2 of the distilled graph's outputs against PyTorch per case; raises past ``max_logits_err``."""
    candidate = OrtRunner(distilled_graph(graph, sites, {f.boundary: f.plan() for f in fitted}, length))
    cases = check_cases(loaded, seed)  # the cases of checkpoint distillation
    errors = errors_by_case(compare(TorchRunner(loaded), candidate, cases, Tolerance()), cases)
    worst = max(errors, key=errors.get)
    if not errors[worst] <= max_logits_err:
        site = max(fitted, key=lambda f: max(x.error for x in f.fits))
        raise HyenaDeployError(
            f"distilled outputs differ from the original's by {errors[worst]:.2e} relative L2 ({worst}) > "
            f"--max-logits-err {max_logits_err:g}; worst site {site.module} (filter error up to "
            f"{max(x.error for x in site.fits):.1e} at order {max(x.order for x in site.fits)}); nothing written "
            "(lower --tol or raise --max-order)")
    return errors


def write_sites(out_dir: Path, loaded: LoadedModel, length: int, fitted: list[SiteFit], fit: dict) -> None:
    """The two files of the module docstring, each written atomically (the JSON last)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors, sites = {}, []
    for i, f in enumerate(fitted):
        plan = f.plan()
        for part, value in zip(_PARTS, (plan.poles.real, plan.poles.imag, plan.residues.real, plan.residues.imag)):
            tensors[f"site{i}.{part}"] = np.ascontiguousarray(value, np.float64)
        tensors[f"site{i}.direct"] = np.ascontiguousarray(plan.direct, np.float64)
        sites.append({"signal": f.boundary.signal, "output": f.boundary.output, "module": f.module,
                      "channels": int(plan.poles.shape[0]), "modes": plan.modes,
                      "orders": [int(x.order) for x in f.fits], "errors": [float(x.error) for x in f.fits]})
    write_atomic(out_dir / WEIGHTS_FILE, save(tensors))
    config = {"format": FORMAT, "version": VERSION, "source": loaded.name, "source_sha256": loaded.source_sha256,
              "max_seq_len": length, "sites": sites, "fit": fit}
    write_atomic(out_dir / SITES_FILE, (json.dumps(config, indent=2) + "\n").encode())


def read_sites(directory: Path, loaded: LoadedModel) -> tuple[int, dict[Boundary, ModalPlan]]:
    """(maximum length, plan per site boundary) of a sites distillation of ``loaded``, or a one-line error."""
    try:
        config = json.loads((directory / SITES_FILE).read_text())
        tensors = load((directory / WEIGHTS_FILE).read_bytes())
    except (OSError, ValueError) as exc:
        raise HyenaDeployError(f"{directory}: not a readable distillation ({exc})") from None
    if config.get("format") != FORMAT or config.get("version") != VERSION:
        raise HyenaDeployError(f"{directory / SITES_FILE}: not a {FORMAT} v{VERSION} file")
    if config.get("source_sha256") != loaded.source_sha256:
        raise HyenaDeployError(f"{directory} was distilled from {config.get('source')!r}, not from these weights "
                               f"({loaded.name}): their digests differ")
    plans = {}
    for i, site in enumerate(config["sites"]):
        try:
            re_p, im_p, re_r, im_r = (tensors[f"site{i}.{part}"] for part in _PARTS)
            direct = tensors[f"site{i}.direct"]
        except KeyError as exc:
            raise HyenaDeployError(f"{directory / WEIGHTS_FILE}: missing {exc.args[0]}") from None
        poles = re_p + 1j * im_p
        if poles.size and not np.all(np.abs(poles) < 1):
            raise HyenaDeployError(f"{directory / WEIGHTS_FILE}: site {i} has a pole on or outside the unit circle")
        plans[Boundary(site["signal"], site["output"])] = ModalPlan(
            poles, re_r + 1j * im_r, direct, int(config["max_seq_len"]), max(site["errors"], default=0.0))
    return int(config["max_seq_len"]), plans
