"""What the benchmark scripts share for summarising timings (imported by name: each script runs from this folder)."""

from __future__ import annotations


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank q-quantile of `values` (q in [0, 1]); NaN when there are none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")
