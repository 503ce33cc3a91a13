"""Modal fitting: exact recovery of synthetic modal filters, stability, order search, direct term."""

from __future__ import annotations

import numpy as np
import pytest

from hyena_deploy.distill.fit import METHODS, fit_filter, fit_filters, modal_impulse, solve_residues, stack_fits
from hyena_deploy.errors import HyenaDeployError


def synthetic(order: int, length: int, rng: np.random.Generator, radii: tuple[float, float]) -> np.ndarray:
    """An exactly modal real filter of real state dimension ``order`` (pairs, plus one real pole if odd)."""
    pairs, real = order // 2, order % 2
    poles = np.concatenate([rng.uniform(*radii, pairs) * np.exp(1j * rng.uniform(0.01, np.pi - 0.01, pairs)),
                            rng.uniform(*radii, real) * rng.choice([-1.0, 1.0], real)])
    residues = rng.standard_normal(poles.size) + 1j * rng.standard_normal(poles.size) * (poles.imag != 0)
    return modal_impulse(poles[None], residues[None], length)[0]


# three draws per case for the fast methods (Prony at order 32 used to miss 1e-8 on rare draws), one for AAA
@pytest.mark.parametrize("method, seed", [(m, s) for m in METHODS for s in range(1 if m == "aaa" else 3)])
@pytest.mark.parametrize("order, length, radii", [(2, 2048, (0.9, 0.999)), (3, 2049, (0.5, 0.99)),
                                                  (8, 4096, (0.95, 0.9995)), (17, 2048, (0.9, 0.998)),
                                                  (32, 8192, (0.97, 0.9995))])
def test_exactly_modal_filters_are_recovered(method: str, order: int, length: int, radii: tuple, seed: int) -> None:
    h = synthetic(order, length, np.random.default_rng([seed, order, length]), radii)
    fit = fit_filter(h, tol=1e-9, max_order=64, method=method)
    assert np.linalg.norm(fit.impulse(length) - h) / np.linalg.norm(h) <= 1e-8
    assert np.all(np.abs(fit.poles) < 1) and fit.fp32_safe
    assert np.all(fit.poles.imag >= 0)
    if method == "hankel":
        assert fit.order <= order


def test_long_filter_64k() -> None:
    h = synthetic(16, 65536, np.random.default_rng(16), (0.999, 0.99995))
    fit = fit_filter(h, tol=1e-9, max_order=32)
    assert fit.order == 16 and np.linalg.norm(fit.impulse(h.size) - h) / np.linalg.norm(h) <= 1e-8


def test_long_smooth_filter_compresses() -> None:
    # HyenaDNA-like: a smooth function of t in [0, 1] under a decay window with a floor; its slow poles sit
    # within ~1/L of 1, which only the decimated Hankel candidates resolve (stride 1 alone: 1.7e-2 at order 16)
    t = np.linspace(0, 1, 16384)
    h = (np.exp(-8 * t) + 0.05) * (np.sin(2 * np.pi * t + 0.3) + 0.5 * t ** 2 - 0.2)
    fit = fit_filter(h, tol=1e-3, max_order=16)
    assert fit.error <= 1e-3 and fit.order <= 12 and np.all(np.abs(fit.poles) < 1)


def test_cancelling_modes_are_not_fp32_safe() -> None:
    # two modes 1e-7 apart with opposite residues: exact in float64, rounded away in float32
    t, poles = np.arange(2048), np.array([0.99, 0.9900001], np.complex128)
    fit = solve_residues(1e4 * (poles[0].real ** t - poles[1].real ** t), poles)
    assert fit.error < 1e-6 and not fit.fp32_safe
    assert solve_residues(poles[0].real ** t, poles[:1]).fp32_safe


@pytest.mark.parametrize("method", METHODS)
def test_growing_filter_still_gets_stable_poles(method: str) -> None:
    t = np.arange(512)
    h = 1.002 ** t * np.cos(0.3 * t) + 0.9 ** t
    fit = fit_filter(h, tol=1e-12, max_order=8, method=method)
    assert np.all(np.abs(fit.poles) < 1)
    assert np.isfinite(fit.error)


def test_smallest_order_meeting_the_tolerance_and_honest_failure() -> None:
    rng = np.random.default_rng()
    h = synthetic(6, 1024, rng, (0.9, 0.99))
    assert fit_filter(h, tol=1e-9, max_order=64).order == 6
    noise = rng.standard_normal(1024)
    fit = fit_filter(noise, tol=1e-3, max_order=8)
    assert fit.order <= 8 and fit.error > 1e-3
    assert abs(np.linalg.norm(fit.impulse(1024) - noise) / np.linalg.norm(noise) - fit.error) < 1e-9


def test_direct_term_is_fitted_when_asked() -> None:
    h = synthetic(4, 1024, np.random.default_rng(), (0.8, 0.99))
    h[0] += 3.0
    assert fit_filter(h, tol=1e-9, max_order=4).error > 1e-3
    fit = fit_filter(h, tol=1e-9, max_order=4, direct=True)
    assert fit.order == 4 and abs(fit.direct) > 0 and fit.error <= 1e-9


def test_refine_improves_a_poor_fit() -> None:
    t = np.arange(600)
    h = np.exp(-t / 80.0) * (1 + 0.2 * np.sin(t / 7.0)) + 0.05 * np.exp(-((t - 300) / 40.0) ** 2)
    plain = fit_filter(h, tol=1e-12, max_order=6, method="prony")
    refined = fit_filter(h, tol=1e-12, max_order=6, method="prony", refine=True)
    assert refined.error <= plain.error and np.all(np.abs(refined.poles) < 1)


def test_channels_stack_with_zero_padding() -> None:
    rng = np.random.default_rng()
    h = np.stack([synthetic(2, 512, rng, (0.5, 0.9)), synthetic(6, 512, rng, (0.5, 0.9))])
    fits = fit_filters(h, tol=1e-9, max_order=16)
    poles, residues, direct = stack_fits(fits)
    assert poles.shape == (2, 3) and residues.shape == (2, 3) and direct.shape == (2,)
    rebuilt = modal_impulse(poles, residues, 512)
    assert np.linalg.norm(rebuilt - h) / np.linalg.norm(h) <= 1e-9


def test_bad_arguments_are_one_line_errors() -> None:
    with pytest.raises(HyenaDeployError, match="method"):
        fit_filter(np.ones(8), 1e-3, 4, method="magic")
    with pytest.raises(HyenaDeployError, match="max-order"):
        fit_filter(np.ones(8), 1e-3, 0)
