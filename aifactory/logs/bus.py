"""The logs service's side of the bus: :class:`BusSink` publishes batches, alerts and ends
of output on their declared channels and keeps the read positions in the logs KV bucket.

Every publish waits for the stream's acknowledgement; the caller saves its position only
after it. A batch carries a Nats-Msg-Id made of its file identity and offset, so the same
batch published twice (a retry after a lost ack, a restart) is stored once; the ack then
says "duplicate" and names the stored copy, which is read back so the follower continues
from what the stream really holds.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from faststream.nats import NatsBroker
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from aifactory.logs.sink import Stored
from aifactory.logs.state import Checkpoint, checkpoint_key
from aifactory.shared import subjects
from aifactory.shared.bus import publish
from aifactory.shared.messages import LogAlert, LogEof, LogLines, LogStream

log = logging.getLogger(__name__)


class BusSink:
    def __init__(self, broker: NatsBroker, checkpoints: KeyValue, *, timeout: float = 10.0) -> None:
        self.broker = broker
        self.kv = checkpoints
        self.timeout = timeout

    @property
    def _js(self) -> JetStreamContext:
        return self.broker.connection.jetstream()

    async def publish_lines(self, batch: LogLines) -> Stored:
        ack = await publish(
            self.broker,
            subjects.LOGS,
            batch,
            timeout=self.timeout,
            service_id=batch.service_id,
            stream=batch.stream.value,
        )
        assert ack is not None, "a stored channel is acknowledged"
        if not ack.duplicate:
            return Stored(ack.seq, batch)
        held = await self._js.get_msg(subjects.LOGS_STREAM, seq=ack.seq, direct=True)
        stored = LogLines.model_validate_json(held.data or b"")
        log.info(
            "%s/%s: batch at offset %d was stored before (seq %d, %d bytes)",
            batch.service_id,
            batch.stream,
            batch.offset,
            ack.seq,
            stored.size,
        )
        return Stored(ack.seq, stored)

    async def publish_alert(self, alert: LogAlert) -> None:
        await publish(
            self.broker,
            subjects.LOG_ALERT,
            alert,
            timeout=self.timeout,
            service_id=alert.service_id,
        )

    async def publish_eof(self, eof: LogEof) -> None:
        await publish(
            self.broker, subjects.LOGS_EOF, eof, timeout=self.timeout, service_id=eof.service_id
        )

    async def stored_after(
        self, service_id: str, stream: LogStream, seq: int
    ) -> AsyncIterator[Stored]:
        subject = subjects.LOGS.subject(service_id=service_id, stream=stream.value)
        while True:
            try:
                held = await self._js.get_msg(
                    subjects.LOGS_STREAM, seq=seq + 1, subject=subject, next=True, direct=True
                )
            except NotFoundError:
                return
            assert held.seq is not None
            seq = held.seq
            yield Stored(seq, LogLines.model_validate_json(held.data or b""))

    async def eof_published(self, service_id: str) -> bool:
        subject = subjects.LOGS_EOF.subject(service_id=service_id)
        try:
            await self._js.get_last_msg(subjects.LOGS_STREAM, subject, direct=True)
        except NotFoundError:
            return False
        return True

    async def load(self, service_id: str, stream: LogStream) -> Checkpoint | None:
        try:
            entry = await self.kv.get(checkpoint_key(service_id, stream))
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        return Checkpoint.model_validate_json(entry.value)

    async def save(self, checkpoint: Checkpoint) -> None:
        key = checkpoint_key(checkpoint.service_id, checkpoint.stream)
        await self.kv.put(key, checkpoint.model_dump_json().encode())
