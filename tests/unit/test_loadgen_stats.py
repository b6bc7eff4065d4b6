"""Exact statistics: the percentile method is numpy's default (type 7), std is population."""

from __future__ import annotations

import random
import statistics

import pytest

from aifactory.loadgen.metrics.stats import describe, percentile
from aifactory.shared.results import PERCENTILES


def test_percentiles_match_statistics_inclusive_method() -> None:
    rng = random.Random(7)
    data = [rng.lognormvariate(3, 0.7) for _ in range(1001)]
    cuts = statistics.quantiles(data, n=1000, method="inclusive")  # type 7, like numpy
    d = describe(data)
    for name, q in PERCENTILES.items():
        expected = cuts[round(q * 1000) - 1]
        assert getattr(d, name) == pytest.approx(expected, rel=1e-12), name
    assert d.count == 1001
    assert d.mean == pytest.approx(statistics.fmean(data))
    assert d.std == pytest.approx(statistics.pstdev(data))
    assert d.min == min(data)
    assert d.max == max(data)


def test_linear_interpolation_by_hand() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([10.0, 20.0], 0.999) == pytest.approx(19.99)
    assert percentile([5.0], 0.99) == 5.0
    assert percentile([3.0, 1.0, 2.0], 0.0) == 1.0


def test_empty_and_invalid() -> None:
    d = describe([])
    assert d.count == 0
    assert d.p50 is None
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)
    with pytest.raises(ValueError, match="quantile"):
        percentile([1.0], 1.5)


def test_merge_is_exact_over_union_not_average_of_parts() -> None:
    a = [1.0, 2.0, 3.0, 100.0]
    b = [40.0, 50.0]
    union = describe(a + b)
    pa, pb = describe(a).p50, describe(b).p50
    assert pa is not None and pb is not None
    assert union.p50 == 21.5
    assert union.p50 != (pa + pb) / 2
