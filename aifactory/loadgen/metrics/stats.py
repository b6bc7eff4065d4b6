"""Exact descriptive statistics over all values (no sketches, no averaged percentiles).

Percentile method: linear interpolation between closest ranks, the definition numpy uses by
default (``method="linear"``, Hyndman & Fan type 7) and ``statistics.quantiles(...,
method="inclusive")``: for sorted values ``x[0..n-1]`` and fraction ``q``, ``h = (n-1)q``,
result ``x[floor h] + (h - floor h)(x[floor h + 1] - x[floor h])``. Standard deviation is the
population one (ddof=0, numpy's default). Merging across workers is exact because the merge
is done on the records themselves, and statistics are computed once over their union.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from aifactory.shared.results import PERCENTILES, Distribution


def percentile_sorted(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of already sorted, non-empty ``values`` (type 7)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    h = (len(values) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (h - lo) * (values[hi] - values[lo])


def percentile(values: Iterable[float], q: float) -> float:
    return percentile_sorted(sorted(values), q)


def describe(values: Iterable[float]) -> Distribution:
    """Mean, population std, min, max and :data:`PERCENTILES` of ``values``."""
    data = sorted(values)
    n = len(data)
    if n == 0:
        return Distribution()
    mean = math.fsum(data) / n
    var = math.fsum((x - mean) ** 2 for x in data) / n
    pct = {name: percentile_sorted(data, q) for name, q in PERCENTILES.items()}
    return Distribution(count=n, mean=mean, std=math.sqrt(var), min=data[0], max=data[-1], **pct)
