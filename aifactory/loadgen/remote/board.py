"""The coordinator's account of its workers: who is up, who is alive, what each has sent.

Why a separate, synchronous class: every message from the workers goes through here in
stream order (one ordered consumer per benchmark), so the exactly-once rules are simple and
testable without a bus: a (stage, worker, seq) batch counts once however often it arrives,
and a worker's ``WorkerDone`` is checked against what arrived before it (same count, every
batch 0..n-1 present). The first violation is kept as :attr:`Board.failure`: the run fails
with that reason rather than report statistics over an incomplete union of records.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from pydantic import ValidationError

from aifactory.loadgen.collector import Collector
from aifactory.loadgen.messages import WorkerReport
from aifactory.loadgen.remote.protocol import (
    WORKER_EVENT_ADAPTER,
    WorkerDone,
    WorkerFailed,
    WorkerHeartbeat,
    WorkerHello,
    WorkerRecords,
)
from aifactory.shared.bus.deadletter import describe_validation_error

log = logging.getLogger(__name__)


@dataclass
class StageBook:
    """What one stage expects (``participants``: worker → share) and what has arrived."""

    stage: int
    participants: dict[int, int]
    received: dict[int, int] = field(default_factory=dict)
    batches: dict[int, set[int]] = field(default_factory=dict)
    reports: dict[int, WorkerReport] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return len(self.reports) == len(self.participants)

    def missing(self) -> list[int]:
        return sorted(w for w in self.participants if w not in self.reports)


class Board:
    """Feeds records to the :class:`Collector` and keeps the workers' state and failures."""

    def __init__(self, benchmark_id: str, total: int, collector: Collector) -> None:
        self.benchmark_id = benchmark_id
        self.total = total
        self.collector = collector
        self.hellos: dict[int, WorkerHello] = {}
        self.last_seen: dict[int, float] = {}
        self.book: StageBook | None = None
        self.failure: str | None = None
        self.duplicates = 0
        self.last_stream_seq = 0
        self.changed = asyncio.Event()
        self._seen: set[tuple[int, int, int]] = set()

    # -- reading ----------------------------------------------------------------------------

    def where(self, worker: int) -> str:
        hello = self.hellos.get(worker)
        if hello is None:
            return f"worker {worker}"
        return f"worker {worker} (host {hello.host}, pid {hello.pid})"

    def describe(self, workers: list[int]) -> str:
        return ", ".join(self.where(w) for w in workers)

    def stale(self, timeout_s: float, now: float | None = None) -> list[tuple[int, float]]:
        """Workers silent for more than ``timeout_s`` (no heartbeat, no message)."""
        now = time.monotonic() if now is None else now
        return [(w, now - t) for w, t in sorted(self.last_seen.items()) if now - t > timeout_s]

    def missing_hellos(self) -> list[int]:
        return [w for w in range(self.total) if w not in self.hellos]

    # -- writing ----------------------------------------------------------------------------

    def fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
            log.error("benchmark %s: %s", self.benchmark_id, reason)
        self.changed.set()

    def begin_stage(self, stage: int, participants: dict[int, int]) -> StageBook:
        self.book = StageBook(stage=stage, participants=participants)
        return self.book

    def on_stream_message(self, data: bytes, stream_seq: int) -> None:
        """One message of the work stream (records or lifecycle), in stream order."""
        self.last_stream_seq = max(self.last_stream_seq, stream_seq)
        try:
            event = WORKER_EVENT_ADAPTER.validate_json(data)
        except ValidationError as exc:
            self.fail(f"unreadable message from a worker: {describe_validation_error(exc)}")
            return
        if event.benchmark_id != self.benchmark_id:
            return
        self.last_seen[event.worker] = time.monotonic()
        try:
            if isinstance(event, WorkerRecords):
                self._records(event)
            elif isinstance(event, WorkerDone):
                self._done(event)
            elif isinstance(event, WorkerHello):
                self._hello(event)
            elif isinstance(event, WorkerFailed):
                where = f" in stage {event.stage}" if event.stage is not None else ""
                self.fail(f"{self.where(event.worker)} failed{where}: {event.reason}")
        except ValidationError as exc:
            self.fail(
                f"{self.where(event.worker)} sent an unreadable {event.kind} message: "
                f"{describe_validation_error(exc)}"
            )
        self.changed.set()

    def on_heartbeat(self, data: bytes) -> None:
        try:
            beat = WorkerHeartbeat.model_validate_json(data)
        except ValidationError:
            log.warning("ignoring an unreadable heartbeat")
            return
        if beat.benchmark_id != self.benchmark_id or beat.worker not in self.hellos:
            return  # liveness starts with the hello, which travels through the stream
        self.last_seen[beat.worker] = time.monotonic()
        book = self.book
        running = book is not None and beat.stage == book.stage and beat.worker not in book.reports
        if beat.progress is not None and running:
            self.collector.add([], beat.progress)

    def _hello(self, hello: WorkerHello) -> None:
        w = hello.worker
        if w >= self.total:
            self.fail(
                f"worker index {w} (host {hello.host}, pid {hello.pid}) is outside "
                f"0..{self.total - 1}: the job runs more tasks than the benchmark planned"
            )
            return
        known = self.hellos.get(w)
        if known is not None and (known.host, known.pid) != (hello.host, hello.pid):
            self.fail(
                f"two workers claim index {w}: host {known.host} pid {known.pid} and "
                f"host {hello.host} pid {hello.pid} (is srun missing under SLURM?)"
            )
            return
        self.hellos[w] = hello

    def _records(self, msg: WorkerRecords) -> None:
        key = (msg.stage, msg.worker, msg.seq)
        if key in self._seen:
            self.duplicates += 1
            return
        book = self.book
        if book is None or msg.stage != book.stage or msg.worker not in book.participants:
            self.fail(
                f"{self.where(msg.worker)} sent records for stage {msg.stage}, which it was not "
                "ordered to run"
            )
            return
        if msg.worker in book.reports:
            self.fail(f"{self.where(msg.worker)} sent records after its stage-{msg.stage} report")
            return
        self._seen.add(key)
        records, progress = msg.records, msg.progress
        book.received[msg.worker] = book.received.get(msg.worker, 0) + len(records)
        book.batches.setdefault(msg.worker, set()).add(msg.seq)
        self.collector.add(records, progress)

    def _done(self, msg: WorkerDone) -> None:
        book = self.book
        if book is None or msg.stage != book.stage or msg.worker not in book.participants:
            self.fail(f"{self.where(msg.worker)} reported stage {msg.stage}, not ordered")
            return
        if msg.worker in book.reports:
            self.duplicates += 1
            return
        received = book.received.get(msg.worker, 0)
        seqs = book.batches.get(msg.worker, set())
        if received != msg.records or seqs != set(range(msg.batches)):
            lost = sorted(set(range(msg.batches)) - seqs)[:10]
            self.fail(
                f"{self.where(msg.worker)} sent {msg.records} records in {msg.batches} batches "
                f"in stage {msg.stage}, but {received} records arrived (missing batches: "
                f"{lost or 'none'}); records were lost, the statistics would be wrong"
            )
            return
        book.reports[msg.worker] = msg.report
