"""Verification: metrics and the tolerance policy (:mod:`.metrics`), cases (:mod:`.cases`), the one parity
driver (:mod:`.comparator`) and the per-layer bisect (:mod:`.bisect`).

Only the light, numpy-only names are re-exported here; import the driver and the bisect from their modules.
"""

from hyena_deploy.verify.metrics import OutputReport, Tolerance, compare_output, default_tolerance, parse_overrides

__all__ = ["OutputReport", "Tolerance", "compare_output", "default_tolerance", "parse_overrides"]
