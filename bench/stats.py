"""The arithmetic of the results: percentiles, rates and ratios (pure, unit-tested)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile (0–100) with linear interpolation between closest ranks.

    Raises ``ValueError`` on no samples: a latency figure without a measurement must not read as 0.
    """
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile must be within 0..100, got {pct}")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rate(count: int, seconds: float) -> float:
    """Items per second; a zero or negative duration is a measuring error, not an infinite rate."""
    if seconds <= 0:
        raise ValueError(f"cannot compute a rate over {seconds} s")
    return count / seconds


def ratio(value: float | None, baseline: float | None) -> float | None:
    """``value / baseline``, or None when either side was not measured (or the baseline is 0)."""
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline


def per_event_us(count: int, seconds: float) -> float:
    """Microseconds spent per item."""
    if count <= 0:
        raise ValueError("per-event cost of no events")
    return seconds / count * 1e6


def flatness(costs: Sequence[float]) -> float:
    """How much the per-event cost grew from the smallest to the largest size (1.0 = flat)."""
    if len(costs) < 2 or costs[0] <= 0:
        raise ValueError("flatness needs at least two positive costs")
    return costs[-1] / costs[0]


def histogram_quantile(buckets: Sequence[tuple[float, float]], pct: float) -> float:
    """The ``pct``-th percentile from cumulative histogram buckets ``(upper bound, count)``, as Prometheus'
    ``histogram_quantile`` estimates it: linear within the bucket the rank falls in (the lowest bucket
    starts at 0). Raises ``ValueError`` on an empty histogram; a rank beyond the last finite bound
    answers that bound (the true value is only known to be larger).
    """
    ordered = sorted(buckets)
    total = ordered[-1][1] if ordered else 0
    if total <= 0:
        raise ValueError("quantile of an empty histogram")
    rank = total * pct / 100
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound
