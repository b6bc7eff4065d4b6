"""A benchmark's server side: each run's window, and its aggregates in the summary.

A run's window is its first request sent to its last response received, on the wall clock
(``RunSummary.started_at`` plus the records' offsets). The monitor's scrapes of that window
become ``server_metrics.jsonl`` beside the records, and their aggregates the run's
``server`` figures next to the client's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aifactory.loadgen.metrics.records import RequestRecord
from aifactory.loadgen.store import iter_batches
from aifactory.monitor.figures import aggregates, timeline
from aifactory.monitor.window import Row
from aifactory.shared.results import BenchSummary

Window = tuple[float, float]  # seconds since the epoch


@dataclass
class RunSpan:
    """What the server side needs of one run's records: its extent (seconds from the run's
    start) and the client's token sums over every request that completed (warmup
    included, as the server's counters include it)."""

    first_send: float
    last_end: float
    prompt_tokens: int = 0
    output_tokens: int = 0
    counted_prompts: bool = False
    counted_outputs: bool = False

    def widen(self, first_send: float, last_end: float) -> None:
        self.first_send = min(self.first_send, first_send)
        self.last_end = max(self.last_end, last_end)


def spans_of(records: Iterable[RequestRecord]) -> dict[int, RunSpan]:
    """Run index → span, from records in memory (small runs, tests)."""
    out: dict[int, RunSpan] = {}
    for r in records:
        span = out.setdefault(r.run_index, RunSpan(r.t0_s, r.end_s))
        span.widen(r.t0_s, r.end_s)
        if r.ok and r.prompt_tokens is not None:
            span.prompt_tokens += r.prompt_tokens
            span.counted_prompts = True
        if r.ok and r.output_tokens is not None:
            span.output_tokens += r.output_tokens
            span.counted_outputs = True
    return out


_SPAN_COLUMNS = ("run_index", "t0_s", "end_s", "error", "prompt_tokens", "output_tokens")


def spans_in_file(path: Path) -> dict[int, RunSpan]:
    """Run index → span, streamed from ``records.parquet`` one row group at a time (memory
    bounded by a row group, however long the benchmark)."""
    out: dict[int, RunSpan] = {}
    for batch in iter_batches(path, _SPAN_COLUMNS):
        runs = np.asarray(batch.column("run_index").to_numpy(zero_copy_only=False))
        t0 = np.asarray(batch.column("t0_s").to_numpy(zero_copy_only=False), dtype=np.float64)
        end = np.asarray(batch.column("end_s").to_numpy(zero_copy_only=False), dtype=np.float64)
        ok = np.asarray(batch.column("error").is_null().to_numpy(zero_copy_only=False), dtype=bool)
        for run in np.unique(runs):
            mine = runs == run
            span = out.setdefault(int(run), RunSpan(float(t0[mine].min()), float(end[mine].max())))
            span.widen(float(t0[mine].min()), float(end[mine].max()))
            done = pa.array(mine & ok)
            for name in ("prompt_tokens", "output_tokens"):
                values = batch.column(name).filter(done).drop_null()
                if len(values):
                    total = int(pc.sum(values).as_py() or 0)
                    if name == "prompt_tokens":
                        span.prompt_tokens += total
                        span.counted_prompts = True
                    else:
                        span.output_tokens += total
                        span.counted_outputs = True
    return out


def run_windows(summary: BenchSummary, spans: Mapping[int, RunSpan]) -> dict[int, Window]:
    """Run index → (first send, last response); runs without a start time or records are
    left out."""
    out: dict[int, Window] = {}
    for run in summary.runs:
        span = spans.get(run.run_index)
        if run.started_at is None or span is None:
            continue
        origin = run.started_at.timestamp()
        out[run.run_index] = (origin + span.first_send, origin + span.last_end)
    return out


def overall(windows: dict[int, Window]) -> tuple[datetime, datetime] | None:
    if not windows:
        return None
    start = min(w[0] for w in windows.values())
    end = max(w[1] for w in windows.values())
    return datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)


def with_server_side(
    summary: BenchSummary, spans: Mapping[int, RunSpan], rows: Sequence[Row]
) -> BenchSummary:
    """``summary`` with each run's ``server`` aggregates from ``rows``."""
    windows = run_windows(summary, spans)
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
        span = spans[run.run_index]
        server = aggregates(
            tl,
            *window,
            client_prompt_tokens=span.prompt_tokens if span.counted_prompts else None,
            client_output_tokens=span.output_tokens if span.counted_outputs else None,
            quiet_before=quiet_before,
            quiet_after=quiet_after,
        )
        runs.append(run.model_copy(update={"server": server}))
    return summary.model_copy(update={"runs": runs})
