"""A benchmark of a deployed service keeps the server's side: the monitor's scrapes of its
window (``server_metrics.jsonl``) and their aggregates in the summary.

The window is read back from the monitor's stream once the run ends, waiting a few
seconds for the scrapes that cover its last moments; a service the monitor does not
scrape (monitoring off, no monitor running) simply gets no server side.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

from nats.js import JetStreamContext

from aifactory.loadgen.results import BenchResult
from aifactory.monitor.benchmark import overall, run_windows, spans_in_file, with_server_side
from aifactory.monitor.window import SERVER_METRICS_FILE, read_window, rows_of, write_rows
from aifactory.shared import subjects
from aifactory.shared.settings import MonitorSettings

log = logging.getLogger(__name__)


async def add_server_side(
    js: JetStreamContext,
    service_id: str,
    result: BenchResult,
    out: Path,
    monitor: MonitorSettings,
) -> BenchResult:
    spans = await asyncio.to_thread(spans_in_file, result.records_path)
    window = overall(run_windows(result.summary, spans))
    if window is None:
        return result
    start, end = window
    # The last scrape before the load may be one normal interval old; the first after it
    # comes within a benchmark interval (the monitor scrapes fast while a run is on).
    pad = timedelta(seconds=2 * monitor.interval + 1)
    messages = await read_window(
        js,
        subjects.MONITOR_SAMPLES,
        service_id,
        start - pad,
        end,
        settle_s=2 * monitor.benchmark_interval + monitor.timeout,
    )
    if not messages:
        log.info("no monitor samples of %s for this benchmark", service_id)
        return result
    rows = rows_of(messages)
    out.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(write_rows, out / SERVER_METRICS_FILE, rows)
    result.summary = with_server_side(result.summary, spans, rows)
    return result
