"""How a remote worker's output reaches the stream: acknowledged, numbered, never doubled.

Every publish waits for the stream's acknowledgement and is retried with the *same*
``Nats-Msg-Id`` (the stream drops a copy that was in fact stored), so a batch is stored
exactly once or the worker fails loudly. Record batches are numbered per stage and split
below NATS's payload limit; the counts a worker reports in ``WorkerDone`` are those of the
batches the stream acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from nats.errors import Error as NatsError
from nats.js import JetStreamContext

from aifactory.loadgen.messages import WorkerProgress
from aifactory.loadgen.metrics.records import RequestRecord
from aifactory.loadgen.remote import protocol
from aifactory.loadgen.remote.protocol import WorkerRecords, records_msg_id
from aifactory.shared.messages.base import Message

log = logging.getLogger("aifactory.bench.worker")

PUBLISH_TIMEOUT_S = 10.0
#: A worker without its bus for longer than this stops (its records so far are stored).
BUS_LOSS_LIMIT_S = 60.0
#: Upper bound of one record batch message (NATS refuses payloads above max_payload).
BATCH_BYTES = 512 * 1024


class WorkerFailure(RuntimeError):
    """This worker cannot go on; the message is what the coordinator will report."""


class BusLoss:
    """How long this worker has been without its bus. A restart of NATS is a blip: the
    connection comes back and publishes are retried. Past ``limit_s`` the worker stops and
    says why, rather than generating load nobody can record."""

    def __init__(self, limit_s: float = BUS_LOSS_LIMIT_S) -> None:
        self.limit_s = limit_s
        self.since: float | None = None
        self.expired = asyncio.Event()

    async def disconnected(self) -> None:
        if self.since is None:
            self.since = time.monotonic()

    async def reconnected(self) -> None:
        self.since = None

    @property
    def reason(self) -> str:
        return f"lost the bus for more than {self.limit_s:g}s; stopping"

    async def watch(self, every_s: float = 0.5) -> None:
        while not self.expired.is_set():
            await asyncio.sleep(every_s)
            if self.since is not None and time.monotonic() - self.since > self.limit_s:
                log.error("%s", self.reason)
                self.expired.set()


class Publisher:
    """JetStream publishes retried under the *same* ``Nats-Msg-Id`` (no doubles), with a
    back-off capped at 2 s, until they have failed for ``loss.limit_s``."""

    def __init__(
        self,
        js: JetStreamContext,
        benchmark_id: str,
        worker: int,
        loss: BusLoss | None = None,
    ) -> None:
        self.loss = loss or BusLoss()
        self.js = js
        self.benchmark_id = benchmark_id
        self.worker = worker
        self.records_subject = protocol.BENCH_RECORDS.subject(benchmark_id=benchmark_id)
        self.events_subject = protocol.BENCH_WORKER.subject(benchmark_id=benchmark_id)

    async def publish(self, subject: str, payload: bytes, msg_id: str) -> None:
        delay, first_failure, attempt = 0.2, 0.0, 0
        while True:
            attempt += 1
            try:
                await self.js.publish(
                    subject,
                    payload,
                    timeout=min(PUBLISH_TIMEOUT_S, self.loss.limit_s),
                    stream=protocol.BENCH_WORK_STREAM,
                    headers={"Nats-Msg-Id": msg_id},
                )
                return
            except (NatsError, TimeoutError) as exc:
                now = time.monotonic()
                first_failure = first_failure or now
                if self.loss.expired.is_set() or now - first_failure > self.loss.limit_s:
                    raise WorkerFailure(
                        f"{self.loss.reason}: publishing {msg_id} on {subject} failed "
                        f"{attempt} times, last {exc!r}"
                    ) from exc
                log.warning("publish %s failed (%r); retrying", msg_id, exc)
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 2)

    async def event(self, message: Message) -> None:
        await self.publish(self.events_subject, message.model_dump_json().encode(), message.id)


class NatsRecordSink:
    """The :class:`RecordSink` of a remote worker: numbered, size-bounded record batches.

    Each batch is sent by a task of its own, chained after the previous one, and ``emit``
    only *waits* for it (shielded). The engine cancels its flusher at the end of a run,
    possibly mid-publish: a publish cut there could be stored without being counted, and
    the batch re-sent under the same id would then be dropped as a duplicate, losing it.
    Shielded, the batch completes and is counted; :meth:`drain` waits for the last one and
    raises if any failed, so a "done" is never sent over a gap.
    """

    def __init__(self, publisher: Publisher, stage: int, max_bytes: int = BATCH_BYTES) -> None:
        self.publisher = publisher
        self.stage = stage
        self.max_bytes = max_bytes
        self.batches = 0
        self.records = 0
        self.progress: WorkerProgress | None = None
        self._tail: asyncio.Future[None] | None = None

    def encode(self, records: list[RequestRecord], progress: WorkerProgress) -> bytes:
        envelope: dict[str, Any] = WorkerRecords(
            benchmark_id=self.publisher.benchmark_id,
            stage=self.stage,
            worker=self.publisher.worker,
            seq=self.batches,
            records=[],
            progress=progress,
        ).model_dump(mode="json")
        envelope["records"] = records  # dataclasses: orjson writes them natively, fast
        return orjson.dumps(envelope)

    async def emit(self, records: list[RequestRecord], progress: WorkerProgress) -> None:
        self.progress = progress
        if records:
            self._tail = asyncio.ensure_future(self._send_after(self._tail, records, progress))
            await asyncio.shield(self._tail)

    async def drain(self) -> None:
        """Wait until every batch emitted so far is stored (raises the first failure)."""
        if self._tail is not None:
            await self._tail

    async def _send_after(
        self,
        previous: asyncio.Future[None] | None,
        records: list[RequestRecord],
        progress: WorkerProgress,
    ) -> None:
        if previous is not None:
            await previous  # in order; a failed batch fails every later one too
        await self._send(records, progress)

    async def _send(self, records: list[RequestRecord], progress: WorkerProgress) -> None:
        payload = self.encode(records, progress)
        if len(payload) > self.max_bytes and len(records) > 1:
            half = len(records) // 2
            await self._send(records[:half], progress)
            await self._send(records[half:], progress)
            return
        msg_id = records_msg_id(
            self.publisher.benchmark_id, self.stage, self.publisher.worker, self.batches
        )
        await self.publisher.publish(self.publisher.records_subject, payload, msg_id)
        self.batches += 1
        self.records += len(records)
