"""Exact statistics over values read from disk in chunks, in bounded memory.

Same definitions and the same numbers as :func:`aifactory.loadgen.metrics.stats.describe`
(type-7 percentiles, population std, exactly rounded sums via ``math.fsum``), without ever
holding the values as Python objects:

- up to :data:`IN_MEMORY` values: one float64 array, sorted in place;
- beyond: a selection in passes over the chunks: count, min, max and the exact sum; then a
  histogram over fixed-width bins and the sum of squared deviations; then, only for the
  bins holding a wanted rank, the values themselves (re-binned while a bin is still too
  full, unless all its values are equal). Memory: the bins and the few gathered values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt

from aifactory.shared.results import PERCENTILES, Distribution

Chunks = Callable[[], Iterator[npt.NDArray[np.float64]]]
#: Values sorted in one array (128 MB of float64); more go through the passes.
IN_MEMORY = 16_000_000
BINS = 1 << 16
#: A bin with at most this many values is gathered and sorted.
GATHER = 1 << 20


def describe_chunks(chunks: Chunks, *, in_memory: int = IN_MEMORY) -> Distribution:
    """Exact :class:`Distribution` of the values ``chunks()`` yields (called once per pass)."""
    parts: list[npt.NDArray[np.float64]] = []
    held = 0
    for chunk in chunks():
        held += chunk.size
        if held > in_memory:
            return _by_selection(chunks)
        parts.append(chunk)
    if held == 0:
        return Distribution()
    data = np.concatenate(parts) if len(parts) > 1 else parts[0].copy()
    data.sort(kind="stable")
    n = data.size
    mean = math.fsum(data.tolist()) / n
    var = math.fsum(np.square(data - mean).tolist()) / n
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

    def values() -> Iterator[float]:  # Python floats, for the exactly rounded sum
        for chunk in chunks():
            seen["n"] += chunk.size
            seen["lo"] = min(seen["lo"], float(chunk.min()))
            seen["hi"] = max(seen["hi"], float(chunk.max()))
            yield from chunk.tolist()

    total = math.fsum(values())
    n = int(seen["n"])
    mean = total / n
    squares = math.fsum(v for chunk in chunks() for v in np.square(chunk - mean).tolist())
    found = _select(chunks, _ranks(n), seen["lo"], seen["hi"])
    pct = {name: _percentile(n, q, found.__getitem__) for name, q in PERCENTILES.items()}
    return Distribution(
        count=n, mean=mean, std=math.sqrt(squares / n), min=found[0], max=found[n - 1], **pct
    )


def _select(chunks: Chunks, wanted: set[int], lo: float, hi: float) -> dict[int, float]:
    """The values at ``wanted`` ranks (0-based, ascending) among everything in [lo, hi]."""
    found: dict[int, float] = {}
    # Each search: a value range, the rank of its first value, the ranks wanted inside it.
    searches: list[tuple[float, float, int, list[int]]] = [(lo, hi, 0, sorted(wanted))]
    while searches:
        deeper: list[tuple[float, float, int, list[int]]] = []
        for start, stop, base, ranks in searches:
            if start == stop:  # every value in the range is this one
                found.update(dict.fromkeys(ranks, start))
                continue
            counts = np.zeros(BINS, dtype=np.int64)
            for chunk in chunks():
                inside = chunk[(chunk >= start) & (chunk <= stop)]
                counts += np.bincount(_bin(inside, start, stop), minlength=BINS)
            ends = np.cumsum(counts)
            by_bin: dict[int, list[int]] = {}
            for r in ranks:
                by_bin.setdefault(int(np.searchsorted(ends, r - base, side="right")), []).append(r)
            for b, in_bin in by_bin.items():
                first = base + (int(ends[b - 1]) if b else 0)
                if counts[b] <= GATHER:
                    values = _gather(chunks, start, stop, b)
                    values.sort()
                    found.update({r: float(values[r - first]) for r in in_bin})
                else:  # too many to hold: narrow the range to this bin's values
                    low, high = _bin_extent(chunks, start, stop, b)
                    deeper.append((low, high, first, in_bin))
        searches = deeper
    return found


def _bin(values: npt.NDArray[np.float64], start: float, stop: float) -> npt.NDArray[np.intp]:
    """Bin index of each value of [start, stop] (the same arithmetic in every pass)."""
    scaled = (values - start) * (BINS / (stop - start))
    return np.minimum(scaled.astype(np.intp), BINS - 1)


def _in_bin(
    chunk: npt.NDArray[np.float64], start: float, stop: float, b: int
) -> npt.NDArray[np.float64]:
    inside = chunk[(chunk >= start) & (chunk <= stop)]
    return inside[_bin(inside, start, stop) == b]


def _gather(chunks: Chunks, start: float, stop: float, b: int) -> npt.NDArray[np.float64]:
    return np.concatenate([_in_bin(c, start, stop, b) for c in chunks()] or [np.empty(0)])


def _bin_extent(chunks: Chunks, start: float, stop: float, b: int) -> tuple[float, float]:
    lo, hi = math.inf, -math.inf
    for chunk in chunks():
        values = _in_bin(chunk, start, stop, b)
        if values.size:
            lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
    return lo, hi
