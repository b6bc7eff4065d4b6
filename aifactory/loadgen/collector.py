"""The parent's side of a run: gathers worker batches, emits live windows and callbacks.

Batches arrive from any number of workers (in-process, over pipes, over NATS) and go
straight to the stage's records file (:mod:`store`): memory stays bounded by a row group,
however long the run, and the final statistics are exact over the union, read back from
disk. Callbacks may be plain functions or coroutines; coroutines run as tasks, awaited
before the run returns, so a slow consumer (e.g. a NATS publish) never stalls the load.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aifactory.loadgen.messages import WorkerProgress
from aifactory.loadgen.metrics.records import RequestRecord
from aifactory.loadgen.metrics.window import Window, window_stats
from aifactory.loadgen.progress import LiveProgress
from aifactory.loadgen.scheduler.plan import RunPlan
from aifactory.loadgen.store import RecordWriter, concatenate
from aifactory.shared.results import WindowStats

WindowCallback = Callable[[WindowStats], Awaitable[None] | None]
RecordsCallback = Callable[[list[RequestRecord]], Awaitable[None] | None]


#: At most this many seconds of records live only in memory: a process killed mid-run
#: (``kill -9`` of the client service) leaves everything older on disk, in fsynced segments.
FLUSH_S = 5.0


class Collector:
    """Writes each stage's records to ``records_dir/stage-<k>.parquet`` as they arrive."""

    def __init__(
        self,
        *,
        window_s: float,
        on_window: WindowCallback | None,
        on_records: RecordsCallback | None,
        display: LiveProgress,
        records_dir: Path,
    ) -> None:
        self._window_s = window_s
        self._on_window = on_window
        self._on_records = on_records
        self._display = display
        self._callbacks: set[asyncio.Task[None]] = set()
        self.records_dir = records_dir
        self.stage_files: list[Path] = []
        self._writer: RecordWriter | None = None
        self._window = Window()
        self._progress: dict[int, WorkerProgress] = {}
        self._errors = 0
        self._plan: RunPlan | None = None
        self._stage_t0 = time.perf_counter()
        self._flushed_at = time.monotonic()

    def begin_stage(self, plan: RunPlan) -> None:
        self.end_stage()
        self._plan = plan
        path = self.records_dir / f"stage-{plan.run_index}.parquet"
        self._writer = RecordWriter(path)
        self.stage_files.append(path)
        self._window = Window()
        self._progress = {}
        self._errors = 0
        self._stage_t0 = time.perf_counter()

    def end_stage(self) -> Path | None:
        """Close the current stage's file (its statistics are read from it); its path."""
        writer, self._writer = self._writer, None
        if writer is None:
            return None
        writer.close()
        return writer.path

    def add(self, records: list[RequestRecord], progress: WorkerProgress) -> None:
        """One worker batch (called from the sink or the pipe reader)."""
        self._progress[progress.worker_id] = progress
        if not records:
            return
        if self._writer is None:
            raise RuntimeError("records arrived outside a stage")
        self._writer.add(records)
        self._window.add(records)
        self._errors += sum(1 for r in records if r.error is not None)
        if self._on_records is not None:
            self._call(self._on_records(records))

    def flush(self) -> None:
        """Put every record received so far on disk (before the source drops its copy)."""
        self._flushed_at = time.monotonic()
        if self._writer is not None:
            self._writer.flush()

    def finish(self, out: Path) -> Path:
        """Every stage's records in one file, ``out`` (the stage files are removed)."""
        self.end_stage()
        concatenate(self.stage_files, out)
        for part in self.stage_files:
            if part != out:
                part.unlink(missing_ok=True)
        return out

    def _call(self, result: Awaitable[None] | None) -> None:
        if inspect.isawaitable(result):

            async def _await() -> None:
                await result

            task = asyncio.ensure_future(_await())
            self._callbacks.add(task)
            task.add_done_callback(self._callbacks.discard)

    def emit_window(self) -> WindowStats | None:
        """Close the current window: build its stats, call ``on_window``, refresh the display."""
        if self._plan is None:
            return None
        window, self._window = self._window, Window()
        stats = window_stats(
            run_index=self._plan.run_index,
            label=self._plan.label,
            elapsed_s=time.perf_counter() - self._stage_t0,
            window_s=self._window_s,
            progress=list(self._progress.values()),
            errors_total=self._errors,
            window=window,
        )
        self._display.update(stats)
        if self._on_window is not None:
            self._call(self._on_window(stats))
        return stats

    async def tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self._window_s)
            self.emit_window()
            if time.monotonic() - self._flushed_at >= FLUSH_S:
                self.flush()

    async def drain_callbacks(self) -> None:
        """Wait for callback coroutines still running; their failures are raised here."""
        if self._callbacks:
            await asyncio.gather(*self._callbacks)


class CollectorSink:
    """The in-process :class:`RecordSink`: hands batches straight to the collector."""

    def __init__(self, collector: Collector) -> None:
        self._collector = collector

    async def emit(self, records: list[RequestRecord], progress: WorkerProgress) -> None:
        self._collector.add(records, progress)
