"""Accuracy of each strategy vs PyTorch fp32 (relative L2, worst over lengths and batches).

Usage: python benchmarks/accuracy.py  (prints a Markdown table; a few minutes on 2 cores)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hyena_deploy.jobs.export import export_model
from hyena_deploy.verify import Tolerance

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"hyena-tiny (dynamic, max 2048)": ("hyena-tiny", 2048),
          "elsewhere order 3 (dynamic, max 4096)": (f"{ROOT}/tests/models_elsewhere.py:order3", 4096)}
STRATEGIES = ("monarch", "dft", "direct", "plugin")


def main() -> None:
    loose = Tolerance(atol=1.0, rtol=1.0, max_rel_l2=1.0)  # measure, do not judge
    print("| model | " + " | ".join(STRATEGIES) + " |")
    print("|---|" + "---|" * len(STRATEGIES))
    with tempfile.TemporaryDirectory() as tmp:
        for label, (source, max_len) in MODELS.items():
            cells = []
            for strategy in STRATEGIES:
                result = export_model(source, Path(tmp) / f"{strategy}.onnx", fftconv=strategy,
                                      max_seq_len=max_len, tolerance=loose)
                worst = max(r.rel_l2 for r in result.reports)
                cells.append(f"{worst:.1e}")
            print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
