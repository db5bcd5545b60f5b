"""Statistics for before/after comparisons: bootstrap confidence intervals of a mean, paired differences.

Inputs are per-example scores (see `honed.evaluation.metrics`). Results are deterministic for a given seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import numpy as np

# Bound on indices drawn at once, so memory stays flat however large the evaluation set is.
_MAX_DRAWS_PER_CHUNK = 1_000_000


class Interval(msgspec.Struct, frozen=True):
    estimate: float
    low: float
    high: float


class Comparison(msgspec.Struct, frozen=True):
    before: Interval
    after: Interval
    difference: Interval  # after - before
    relative_gain: float | None  # after / before - 1; None when the before mean is 0
    significant: bool  # the difference's interval excludes 0
    confidence: float = 0.95


def _check_options(confidence: float, resamples: int) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")


def _resampled_means(columns: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Means of `resamples` bootstrap resamples of the rows of `columns` (n, k): shape (resamples, k).
    All columns share the same row indices, which is what makes a paired bootstrap paired."""
    rng = np.random.default_rng(seed)
    n = len(columns)
    per_chunk = max(1, _MAX_DRAWS_PER_CHUNK // n)
    means = []
    for start in range(0, resamples, per_chunk):
        indices = rng.integers(0, n, size=(min(per_chunk, resamples - start), n))
        means.append(columns[indices].mean(axis=1))
    return np.concatenate(means)


def _interval(estimate: float, resampled: np.ndarray, confidence: float) -> Interval:
    tail = (1 - confidence) / 2
    low, high = np.quantile(resampled, [tail, 1 - tail])
    return Interval(estimate=float(estimate), low=float(low), high=float(high))


def bootstrap_ci(values: Sequence[float], *, confidence: float = 0.95, resamples: int = 2000,
                 seed: int = 0) -> Interval:
    """The mean of `values` with its percentile-bootstrap confidence interval.

    A single value gives low == high == the value; with a handful of examples the interval is too narrow
    to trust. Raises ValueError on empty input, confidence outside (0, 1) or resamples < 1.
    """
    _check_options(confidence, resamples)
    if len(values) == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    column = np.asarray(values, dtype=float).reshape(-1, 1)
    resampled = _resampled_means(column, resamples, seed)[:, 0]
    return _interval(column.mean(), resampled, confidence)


def paired_difference(before: Sequence[float], after: Sequence[float], *, confidence: float = 0.95,
                      resamples: int = 2000, seed: int = 0) -> Comparison:
    """Before and after means with intervals, and the interval of their difference from a paired bootstrap:
    each resample draws example indices once and applies them to both lists, so before[i] and after[i] must
    be scores of the same example.

    Raises ValueError when the lists differ in length or are empty, or on bad confidence/resamples.
    """
    _check_options(confidence, resamples)
    if len(before) != len(after):
        raise ValueError(f"before has {len(before)} scores and after has {len(after)}; they must pair up")
    if len(before) == 0:
        raise ValueError("paired_difference needs at least one pair of scores")
    columns = np.column_stack([np.asarray(before, dtype=float), np.asarray(after, dtype=float)])
    resampled = _resampled_means(columns, resamples, seed)
    before_mean, after_mean = columns.mean(axis=0)
    difference = _interval(after_mean - before_mean, resampled[:, 1] - resampled[:, 0], confidence)
    return Comparison(
        before=_interval(before_mean, resampled[:, 0], confidence),
        after=_interval(after_mean, resampled[:, 1], confidence),
        difference=difference,
        relative_gain=None if before_mean == 0 else float(after_mean / before_mean - 1),
        significant=bool(difference.low > 0 or difference.high < 0),
        confidence=confidence,
    )


def describe(comparison: Comparison) -> str:
    """One line for a report, e.g. "0.42 -> 0.61 (+45%, 95% CI of the difference [+0.08, +0.30])", with
    ", not significant" inside the parentheses when the interval spans 0. The gain is left out when the
    before mean is 0."""
    level = f"{round(comparison.confidence * 100, 2):g}%"
    parts = [] if comparison.relative_gain is None else [f"{comparison.relative_gain:+.0%}"]
    parts.append(f"{level} CI of the difference [{comparison.difference.low:+.2f}, "
                 f"{comparison.difference.high:+.2f}]")
    if not comparison.significant:
        parts.append("not significant")
    return f"{comparison.before.estimate:.2f} -> {comparison.after.estimate:.2f} ({', '.join(parts)})"
