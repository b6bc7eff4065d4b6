"""A benchmark's server side: each run's window, and its aggregates in the summary.

A run's window is its first request sent to its last response received, on the wall clock
(``RunSummary.started_at`` plus the records' offsets). The monitor's scrapes of that window
become ``server_metrics.jsonl`` beside the records, and their aggregates the run's
``server`` figures next to the client's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from aifactory.loadgen.metrics.records import RequestRecord
from aifactory.monitor.figures import aggregates, timeline
from aifactory.monitor.window import Row
from aifactory.shared.results import BenchSummary

Window = tuple[float, float]  # seconds since the epoch


def run_windows(summary: BenchSummary, records: Sequence[RequestRecord]) -> dict[int, Window]:
    """Run index → (first send, last response); runs without a start time or records are
    left out."""
    out: dict[int, Window] = {}
    for run in summary.runs:
        if run.started_at is None:
            continue
        mine = [r for r in records if r.run_index == run.run_index]
        if not mine:
            continue
        origin = run.started_at.timestamp()
        out[run.run_index] = (
            origin + min(r.t0_s for r in mine),
            origin + max(r.end_s for r in mine),
        )
    return out


def overall(windows: dict[int, Window]) -> tuple[datetime, datetime] | None:
    if not windows:
        return None
    start = min(w[0] for w in windows.values())
    end = max(w[1] for w in windows.values())
    return datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)


def with_server_side(
    summary: BenchSummary, records: Sequence[RequestRecord], rows: Sequence[Row]
) -> BenchSummary:
    """``summary`` with each run's ``server`` aggregates from ``rows``."""
    windows = run_windows(summary, records)
    if not rows or not windows:
        return summary
    tl = timeline(rows)
    ordered = sorted(windows.values())
    runs = []
    for run in summary.runs:
        window = windows.get(run.run_index)
        if window is None:
            runs.append(run)
            continue
        k = ordered.index(window)
        quiet_before = ordered[k - 1][1] if k > 0 else float("-inf")
        quiet_after = ordered[k + 1][0] if k + 1 < len(ordered) else float("inf")
        done = [r for r in records if r.run_index == run.run_index and r.ok]
        prompts = [r.prompt_tokens for r in done if r.prompt_tokens is not None]
        outputs = [r.output_tokens for r in done if r.output_tokens is not None]
        server = aggregates(
            tl,
            *window,
            client_prompt_tokens=sum(prompts) if prompts else None,
            client_output_tokens=sum(outputs) if outputs else None,
            quiet_before=quiet_before,
            quiet_after=quiet_after,
        )
        runs.append(run.model_copy(update={"server": server}))
    return summary.model_copy(update={"runs": runs})
