"""Live figures over a sliding window, for progress display and ``bench.metrics`` events.

These are indicative (computed from the records that arrived in the window); the final
statistics come from :mod:`summary` over all records. Kept cheap on purpose (no pooled ITL:
sorting ~10^4 gaps every window stalled an in-process worker's loop by milliseconds).
"""

from __future__ import annotations

from collections.abc import Sequence

from aifactory.loadgen.messages import WorkerProgress
from aifactory.loadgen.metrics.records import RequestRecord
from aifactory.loadgen.metrics.stats import percentile
from aifactory.shared.results import WindowStats


def window_stats(
    *,
    run_index: int,
    label: str,
    elapsed_s: float,
    window_s: float,
    progress: Sequence[WorkerProgress],
    errors_total: int,
    window: Sequence[RequestRecord],
) -> WindowStats:
    ok = [r for r in window if r.ok]
    ttft = [r.ttft_ms for r in ok if r.ttft_ms is not None]
    e2e = [r.e2e_ms for r in ok if r.e2e_ms is not None]
    tokens = sum(r.output_tokens or 0 for r in ok)
    span = window_s if window_s > 0 else 1.0
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
        window_completed=len(window),
        window_errors=len(window) - len(ok),
        request_rate=len(ok) / span,
        output_token_rate=tokens / span,
        ttft_p50_ms=percentile(ttft, 0.5) if ttft else None,
        ttft_p99_ms=percentile(ttft, 0.99) if ttft else None,
        e2el_p50_ms=percentile(e2e, 0.5) if e2e else None,
    )
