"""Parity metrics, the pass/fail rule and the tolerance policy.

The rule is Polygraphy's, made scale-aware: an element fails only when its absolute difference exceeds
``max(atol, atol_rms * rms(reference))`` AND its relative difference exceeds ``rtol``; an output also fails when
its relative L2 error exceeds ``max_rel_l2`` or it holds a NaN/Inf the reference does not. Scaling the absolute
bound by each output's RMS is what lets an honest fp32 export pass at any length and input scale (fp32 rounding
grows with the values it rounds: a 16k-token LM's logits carry single elements off by 2e-4 at a relative L2 of
6e-7), while a defect still moves the relative L2 far past its bound.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from hyena_deploy.errors import HyenaDeployError

PRECISIONS = ("fp32", "fp16", "bf16")
MAX_REL_L2 = {"fp32": 1e-5, "fp16": 1e-2, "bf16": 3e-2}  # parity bound against fp32 PyTorch
ELEMENTWISE_OFF = 1e30  # an atol no output difference reaches


@dataclass(frozen=True)
class Tolerance:
    """Per-output tolerances; ``overrides`` maps an output name to (atol, rtol)."""

    atol: float = 1e-4
    rtol: float = 1e-4
    max_rel_l2: float = 1e-5
    overrides: tuple[tuple[str, float | None, float | None], ...] = ()
    atol_rms: float = 1e-3

    def __post_init__(self) -> None:
        for name in ("atol", "rtol", "max_rel_l2", "atol_rms"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise HyenaDeployError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.atol == 0 and self.rtol == 0:
            raise HyenaDeployError("atol and rtol are both 0: no floating-point backend can meet that")

    def for_output(self, name: str) -> tuple[float, float]:
        atol, rtol = self.atol, self.rtol
        for key, a, r in self.overrides:
            if key == name:
                atol = a if a is not None else atol
                rtol = r if r is not None else rtol
        return atol, rtol

    def as_dict(self) -> dict:
        return asdict(self)


def default_tolerance(precision: str) -> Tolerance:
    """Parity tolerance against fp32 PyTorch for a graph computing in ``precision``.

    fp32: relative L2 <= 1e-5 and the scale-aware elementwise rule. fp16/bf16: relative L2 <= 1e-2 / 3e-2 and no
    elementwise check: a low-precision matmul's rounding error scales with the norm of its operands, not with each
    output, so outputs near zero fail any fixed (atol, rtol) pair even when the relative L2 is 100x under the bound.
    """
    if precision not in PRECISIONS:
        raise HyenaDeployError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    bound = MAX_REL_L2[precision]
    if precision == "fp32":
        return Tolerance(max_rel_l2=bound)
    return Tolerance(atol=ELEMENTWISE_OFF, rtol=bound, max_rel_l2=bound)


@dataclass(frozen=True)
class OutputReport:
    """Error statistics of one output at one input set."""

    output: str
    case: str
    max_abs: float
    max_rel: float
    p99_rel: float
    rel_l2: float
    cosine: float
    passed: bool

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (f"{self.output} at {self.case}: rel L2 {self.rel_l2:.2e}, max abs {self.max_abs:.2e}, "
                f"cosine {self.cosine:.6f}")


def compare_output(name: str, case: str, ref: np.ndarray, got: np.ndarray, tol: Tolerance) -> OutputReport:
    """Compare one output against its reference."""
    if ref.shape != got.shape:
        raise HyenaDeployError(f"output {name} ({case}): shape {got.shape} differs from the reference {ref.shape}")
    ref64, got64 = ref.astype(np.float64), got.astype(np.float64)
    diff = np.abs(got64 - ref64)
    rel = diff / np.maximum(np.abs(ref64), np.finfo(np.float64).tiny)
    atol, rtol = tol.for_output(name)
    finite = bool(np.isfinite(got64).all() or not np.isfinite(ref64).all())
    norm = np.linalg.norm(ref64)
    rel_l2 = float(np.linalg.norm(got64 - ref64) / norm) if norm > 0 else float(np.linalg.norm(got64))
    denom = norm * np.linalg.norm(got64)
    cosine = float(np.vdot(ref64, got64) / denom) if denom > 0 else float(norm == np.linalg.norm(got64))
    rms = norm / math.sqrt(ref64.size) if ref64.size else 0.0
    elementwise_ok = not np.any((diff > max(atol, tol.atol_rms * rms)) & (rel > rtol))
    passed = finite and elementwise_ok and rel_l2 <= tol.max_rel_l2
    return OutputReport(name, case, float(diff.max(initial=0.0)), float(rel.max(initial=0.0)),
                        float(np.percentile(rel, 99)) if rel.size else 0.0, rel_l2, cosine, passed)


def parse_overrides(values: tuple[str, ...], option: str) -> tuple[float, dict[str, float]]:
    """``--atol 1e-4 logits:1e-3`` style values: one global number and ``name:value`` overrides."""
    default: float | None = None
    per_output: dict[str, float] = {}
    for value in values:
        name, sep, number = value.rpartition(":")
        try:
            parsed = float(number)
        except ValueError:
            raise HyenaDeployError(f"{option} {value!r}: expected a number or name:number") from None
        if sep:
            per_output[name] = parsed
        else:
            default = parsed
    return default, per_output
