"""Live figures over a window, for the progress display and ``bench.metrics`` events.

Bounded whatever the rate: counters and two mergeable DDSketches (1 % relative accuracy)
per window, never the window's records. The final statistics are exact, computed from every
record on disk (:mod:`columns`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ddsketch import DDSketch

from aifactory.loadgen.messages import WorkerProgress
from aifactory.loadgen.metrics.records import RequestRecord
from aifactory.shared.results import WindowStats

#: The relative error of the window percentiles (stated in ``WindowStats``' docs).
RELATIVE_ACCURACY = 0.01


class Window:
    """What one window keeps: counts, tokens, and sketches of TTFT and end-to-end latency."""

    __slots__ = ("completed", "e2e", "errors", "tokens", "ttft")

    def __init__(self) -> None:
        self.completed = 0
        self.errors = 0
        self.tokens = 0
        self.ttft = DDSketch(relative_accuracy=RELATIVE_ACCURACY)
        self.e2e = DDSketch(relative_accuracy=RELATIVE_ACCURACY)

    def add(self, records: Sequence[RequestRecord]) -> None:
        self.completed += len(records)
        for r in records:
            if r.error is not None:
                self.errors += 1
                continue
            self.tokens += r.output_tokens or 0
            if r.ttft_ms is not None:
                self.ttft.add(r.ttft_ms)
            if r.e2e_ms is not None:
                self.e2e.add(r.e2e_ms)


def _quantile(sketch: DDSketch, q: float) -> float | None:
    return sketch.get_quantile_value(q) if sketch.count else None


def window_stats(
    *,
    run_index: int,
    label: str,
    elapsed_s: float,
    window_s: float,
    progress: Sequence[WorkerProgress],
    errors_total: int,
    window: Window,
) -> WindowStats:
    span = window_s if window_s > 0 else 1.0
    ok = window.completed - window.errors
    return WindowStats(
        run_index=run_index,
        label=label,
        elapsed_s=elapsed_s,
        window_s=window_s,
        sent=sum(p.sent for p in progress),
        completed=sum(p.completed for p in progress),
        errors=errors_total,
        in_flight=sum(p.in_flight for p in progress),
        cap_hits=sum(p.cap_hits for p in progress),
        window_completed=window.completed,
        window_errors=window.errors,
        request_rate=ok / span,
        output_token_rate=window.tokens / span,
        ttft_p50_ms=_quantile(window.ttft, 0.5),
        ttft_p99_ms=_quantile(window.ttft, 0.99),
        e2el_p50_ms=_quantile(window.e2e, 0.5),
    )
