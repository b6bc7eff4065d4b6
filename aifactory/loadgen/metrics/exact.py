"""Exact statistics over values read from disk in chunks, in bounded memory.

Same definitions and the same numbers as :func:`aifactory.loadgen.metrics.stats.describe`
(type-7 percentiles, population std, exactly rounded sums via ``math.fsum``), without ever
holding the values as Python objects:

- up to :data:`IN_MEMORY` values: one float64 array, sorted in place;
- beyond: a selection in passes over the chunks: count, min, max and the exact sum; then a
  histogram over fixed-width bins and the sum of squared deviations (one pass); then, for
  the bins holding a wanted rank, the values themselves, all bins in one pass (a bin still
  too full is re-binned over its own extent, unless all its values are equal). Memory: the
  bins and the few gathered values. Each pass re-reads the column from disk, so their
  number, not the arithmetic, sets the time: 3 for most distributions.

Exact sums (:func:`exact_sum`) are integer arithmetic on the floats' mantissas, in numpy:
the same correctly rounded result as ``math.fsum``, without a Python float per value.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import numpy.typing as npt

from aifactory.shared.results import PERCENTILES, Distribution

Chunks = Callable[[], Iterator[npt.NDArray[np.float64]]]
#: Values sorted in one array (128 MB of float64); more go through the passes.
IN_MEMORY = 16_000_000
BINS = 1 << 16
#: A bin with at most this many values is gathered and sorted.
GATHER = 1 << 20
#: Values turned into Python floats at a time, for ``math.fsum``.
SLICE = 1 << 16


def exact_sum(arrays: Iterable[npt.NDArray[np.float64]]) -> float:
    """The correctly rounded sum of every value: the same float as ``math.fsum``, in numpy.

    Each value is ``mantissa * 2**(exponent - 53)`` exactly (``frexp``), so the mantissas of
    equal exponents add up exactly (split in two 27-bit halves, summed per exponent by
    ``bincount``), and the few per-exponent totals meet in one Python integer, divided once:
    CPython's int division is correctly rounded. ~20x faster than ``fsum`` over floats.
    """
    totals: dict[int, int] = {}
    for whole_array in arrays:
        for i in range(0, whole_array.size, _BINCOUNT_SLICE):
            a = whole_array[i : i + _BINCOUNT_SLICE]
            if not np.isfinite(a).all():  # inf or nan: fsum says what that sum is
                return _fsum_fallback(whole_array[i:], arrays)
            mantissa, exponent = np.frexp(a)
            whole = mantissa * _TWO_53  # an integer below 2**53, exactly
            high = np.floor(whole * _TWO_M26)
            low = whole - high * _TWO_26  # both halves below 2**27: float sums stay exact
            first = int(exponent.min())
            offset = exponent - first
            highs = np.bincount(offset, weights=high)
            lows = np.bincount(offset, weights=low)
            for k in np.flatnonzero((highs != 0) | (lows != 0)).tolist():
                add = (int(highs[k]) << 26) + int(lows[k])
                totals[first + k] = totals.get(first + k, 0) + add
    if not totals:
        return 0.0
    base = min(totals)
    numerator = sum(t << (e - base) for e, t in totals.items())
    shift = base - 53
    return float(numerator << shift) if shift >= 0 else numerator / (1 << -shift)


_TWO_53 = float(1 << 53)
_TWO_26 = float(1 << 26)
_TWO_M26 = 1.0 / _TWO_26
#: Values summed per ``bincount``: below 2**26 of them, sums of 27-bit halves stay below
#: 2**53, where float64 adds integers exactly.
_BINCOUNT_SLICE = 1 << 22


def _fsum_fallback(
    first: npt.NDArray[np.float64], rest: Iterable[npt.NDArray[np.float64]]
) -> float:
    """A non-finite value: ``math.fsum`` of what is left says which (inf, -inf or nan; inf
    and -inf together raise ``ValueError``). The finite values summed so far cannot change
    that, so they are left out."""
    slices = (a[i : i + SLICE].tolist() for a in (first, *rest) for i in range(0, a.size, SLICE))
    return math.fsum(itertools.chain.from_iterable(slices))


def describe_chunks(chunks: Chunks, *, in_memory: int = IN_MEMORY) -> Distribution:
    """Exact :class:`Distribution` of the values ``chunks()`` yields (called once per pass)."""
    parts: list[npt.NDArray[np.float64]] = []
    held = 0
    for chunk in chunks():
        held += chunk.size
        if held > in_memory:
            parts.clear()
            return _by_selection(chunks)
        parts.append(chunk)
    if held == 0:
        return Distribution()
    data = np.concatenate(parts) if len(parts) > 1 else parts[0].copy()
    parts.clear()
    data.sort(kind="stable")
    n = data.size
    mean = exact_sum([data]) / n
    var = exact_sum(np.square(data[i : i + SLICE] - mean) for i in range(0, n, SLICE)) / n
    pct = {name: _percentile(n, q, lambda k: float(data[k])) for name, q in PERCENTILES.items()}
    return Distribution(
        count=n, mean=mean, std=math.sqrt(var), min=float(data[0]), max=float(data[-1]), **pct
    )


def _percentile(n: int, q: float, value_at: Callable[[int], float]) -> float:
    h = (n - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, n - 1)
    low = value_at(lo)
    return low + (h - lo) * (value_at(hi) - low)


def _ranks(n: int) -> set[int]:
    out = {0, n - 1}
    for q in PERCENTILES.values():
        lo = math.floor((n - 1) * q)
        out.update({lo, min(lo + 1, n - 1)})
    return out


def _by_selection(chunks: Chunks) -> Distribution:
    seen = {"n": 0, "lo": math.inf, "hi": -math.inf}

    def counted() -> Iterator[npt.NDArray[np.float64]]:
        for chunk in chunks():
            if chunk.size:
                seen["n"] += chunk.size
                seen["lo"] = min(seen["lo"], float(chunk.min()))
                seen["hi"] = max(seen["hi"], float(chunk.max()))
            yield chunk

    total = exact_sum(counted())  # pass 1: count, extent, sum
    n, lo, hi = int(seen["n"]), seen["lo"], seen["hi"]
    mean = total / n
    top = Search(lo, hi, 0, sorted(_ranks(n)))
    counts = np.zeros(BINS, dtype=np.int64)

    def deviations() -> Iterator[npt.NDArray[np.float64]]:
        for chunk in chunks():
            if lo < hi:
                counts[:] += np.bincount(_bin(chunk, lo, hi), minlength=BINS)
            yield np.square(chunk - mean)

    squares = exact_sum(deviations())  # pass 2: squared deviations and the first histogram
    found = _select(chunks, top, counts if lo < hi else None)
    pct = {name: _percentile(n, q, found.__getitem__) for name, q in PERCENTILES.items()}
    return Distribution(
        count=n, mean=mean, std=math.sqrt(squares / n), min=found[0], max=found[n - 1], **pct
    )


class Search:
    """Ranks wanted among the values of [start, stop]; ``base``: the rank of its first."""

    def __init__(self, start: float, stop: float, base: int, ranks: list[int]) -> None:
        self.start, self.stop, self.base, self.ranks = start, stop, base, ranks

    def inside(self, chunk: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return chunk[(chunk >= self.start) & (chunk <= self.stop)]


def _select(
    chunks: Chunks, top: Search, top_counts: npt.NDArray[np.int64] | None
) -> dict[int, float]:
    """The values at ``top.ranks`` (0-based, ascending) among everything in its range.

    Level by level: one pass counts every open search's bins (the first level's counts may
    be given), one pass gathers every bin small enough and the extent of every other.
    """
    found: dict[int, float] = {}
    searches = [top]
    given = top_counts
    while searches:
        open_: list[Search] = []
        for search in searches:
            if search.start == search.stop:  # every value in the range is this one
                found.update(dict.fromkeys(search.ranks, search.start))
            else:
                open_.append(search)
        if not open_:
            break
        if given is not None and open_ == [top]:
            counts = [given]
        else:
            counts = [np.zeros(BINS, dtype=np.int64) for _ in open_]
            for chunk in chunks():
                for c, search in zip(counts, open_, strict=True):
                    inside = search.inside(chunk)
                    c += np.bincount(_bin(inside, search.start, search.stop), minlength=BINS)
        given = None
        # (search, bin) → the ranks it holds and the rank of its first value
        wanted: dict[tuple[int, int], tuple[int, list[int]]] = {}
        for i, (c, search) in enumerate(zip(counts, open_, strict=True)):
            ends = np.cumsum(c)
            for r in search.ranks:
                b = int(np.searchsorted(ends, r - search.base, side="right"))
                first = search.base + (int(ends[b - 1]) if b else 0)
                wanted.setdefault((i, b), (first, []))[1].append(r)
        gathered: dict[tuple[int, int], list[npt.NDArray[np.float64]]] = {}
        extents: dict[tuple[int, int], list[float]] = {}
        for i, b in wanted:
            if counts[i][b] <= GATHER:
                gathered[(i, b)] = []
            else:
                extents[(i, b)] = [math.inf, -math.inf]
        for chunk in chunks():
            for i, search in enumerate(open_):
                inside = search.inside(chunk)
                bins = _bin(inside, search.start, search.stop)
                for (j, b), parts in gathered.items():
                    if j == i:
                        parts.append(inside[bins == b])
                for (j, b), extent in extents.items():
                    if j == i:
                        values = inside[bins == b]
                        if values.size:
                            extent[0] = min(extent[0], float(values.min()))
                            extent[1] = max(extent[1], float(values.max()))
        deeper: list[Search] = []
        for key, (first, ranks) in wanted.items():
            if key in gathered:
                values = np.concatenate(gathered.pop(key) or [np.empty(0)])
                values.sort()
                found.update({r: float(values[r - first]) for r in ranks})
            else:  # too many to hold: narrow the range to this bin's values
                low, high = extents[key]
                deeper.append(Search(low, high, first, ranks))
        searches = deeper
    return found


def _bin(values: npt.NDArray[np.float64], start: float, stop: float) -> npt.NDArray[np.intp]:
    """Bin index of each value of [start, stop] (the same arithmetic in every pass)."""
    scaled = (values - start) * (BINS / (stop - start))
    return np.minimum(scaled.astype(np.intp), BINS - 1)
