"""Reading a job's output back from the bus: from anywhere NATS reaches, no file access.

One ordered consumer on ``logs.<service_id>.*`` gives its lines (both files), alerts and
end of output in the order they were published. Where to start:

- the last *N* records: each file's last batch says how many records came before it
  (``first_index``), and a binary search over the stream (direct gets of "the next
  message of this subject from sequence *x*") finds the batch holding record
  ``total - N`` in about log2(stream length) requests, however long the log;
- a time (``--since``): the stream starts the consumer there;
- a sequence (an SSE client's ``Last-Event-ID``): just after it.

Used by ``aifactory services logs``, the ingress (JSON lines and SSE) and the experiment
runner; the channels are passed in, so each caller's use of them is its own.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from aifactory.logs.lines import Cut, record_sizes
from aifactory.shared.bus.deadletter import describe_validation_error
from aifactory.shared.channel import Channel
from aifactory.shared.messages import LogAlert, LogEof, LogLines, LogStream

log = logging.getLogger(__name__)

Event = LogLines | LogAlert | LogEof
#: How long a non-following read waits for the consumer's first message.
FIRST_MESSAGE_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Record:
    """One record of a batch, placed: which file, which line, which bytes."""

    seq: int
    stream: LogStream
    index: int
    line: int
    offset: int
    text: str
    #: ``None`` when the record ends its line.
    cut: Cut | None
    time: datetime


def records(seq: int, batch: LogLines, *, from_index: int = 0) -> list[Record]:
    """The records of ``batch`` (those numbered ``from_index`` and after)."""
    cuts = set(batch.split) | set(batch.partial)
    sizes = record_sizes(batch.lines, cuts, batch.sizes)
    out: list[Record] = []
    line, offset = batch.first_line, batch.offset
    for i, text in enumerate(batch.lines):
        index = batch.first_index + i
        cut = Cut.SPLIT if i in batch.split else Cut.PARTIAL if i in batch.partial else None
        if index >= from_index:
            out.append(Record(seq, batch.stream, index, line, offset, text, cut, batch.time))
        offset += sizes[i]
        if cut is None:
            line += 1
    return out


@dataclass(frozen=True, slots=True)
class Start:
    """Where a read begins: a stream sequence, and per file the first record wanted."""

    seq: int
    from_index: dict[LogStream, int]


class LogReader:
    def __init__(
        self,
        js: JetStreamContext,
        lines: Channel[LogLines],
        eof: Channel[LogEof],
        alerts: Channel[LogAlert],
        service_id: str,
    ) -> None:
        assert lines.stream is not None
        self.js, self.stream_name = js, lines.stream
        self.lines, self.eof, self.alerts = lines, eof, alerts
        self.service_id = service_id
        self.filter = lines.subject(service_id=service_id, stream="out").rsplit(".", 1)[0] + ".*"

    def _subject(self, stream: LogStream) -> str:
        return self.lines.subject(service_id=self.service_id, stream=stream.value)

    async def last(self) -> tuple[int, Event] | None:
        """The last event published for this service (a line, an alert, the end), if any."""
        try:
            held = await self.js.get_last_msg(self.stream_name, self.filter, direct=True)
        except NotFoundError:
            return None
        assert held.seq is not None and held.subject is not None
        event = self._parse(held.subject, held.data or b"")
        return (held.seq, event) if event is not None else None

    async def _batch_at(self, subject: str, seq: int) -> tuple[int, LogLines] | None:
        """The first batch of ``subject`` at or after ``seq``."""
        try:
            held = await self.js.get_msg(
                self.stream_name, seq=max(seq, 1), subject=subject, next=True, direct=True
            )
        except NotFoundError:
            return None
        assert held.seq is not None
        return held.seq, LogLines.model_validate_json(held.data or b"")

    async def tail_start(self, streams: tuple[LogStream, ...], n: int) -> Start | None:
        """Where the last ``n`` records of each of ``streams`` begin; ``None``: no lines."""
        seqs: list[int] = []
        wanted: dict[LogStream, int] = {}
        for stream in streams:
            subject = self._subject(stream)
            try:
                held = await self.js.get_last_msg(self.stream_name, subject, direct=True)
            except NotFoundError:
                continue
            assert held.seq is not None
            last = LogLines.model_validate_json(held.data or b"")
            want = max(0, last.first_index + len(last.lines) - n)
            wanted[stream] = want
            # Binary search: the last batch whose first record is at or before ``want``.
            first = await self._batch_at(subject, 1)
            if first is None:  # aged out of the stream meanwhile
                continue
            lo, hi = first[0], held.seq
            while lo < hi:
                mid = (lo + hi + 1) // 2
                found = await self._batch_at(subject, mid)
                if found is not None and found[1].first_index <= want:
                    lo = found[0]
                else:
                    hi = mid - 1
            seqs.append(lo)
        if not seqs:
            return None
        return Start(min(seqs), wanted)

    async def events(
        self,
        *,
        start: Start | None = None,
        after_seq: int | None = None,
        since: datetime | None = None,
        follow: bool = False,
        streams: tuple[LogStream, ...] = (LogStream.OUT, LogStream.ERR),
        idle_timeout: float = 1.0,
    ) -> AsyncIterator[tuple[int, Event]]:
        """Every event of the selected files from the chosen start, in publish order.

        Without ``follow`` it stops once caught up with what the stream holds; with it, at
        the end of output (``LogEof``) or when the caller stops iterating.
        """
        config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        first_seq = start.seq if start else (after_seq + 1 if after_seq is not None else None)
        if first_seq is not None:
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=first_seq
            )
        elif since is not None:
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since
            )
        if not follow:
            last = await self.last()
            if last is None or (first_seq or 0) > last[0]:
                return
            if since is not None and first_seq is None and last[1].time < since:
                return
        sub = await self.js.subscribe(
            self.filter, stream=self.stream_name, ordered_consumer=True, config=config
        )
        try:
            waited = 0.0
            while True:
                try:
                    msg = await sub.next_msg(timeout=idle_timeout)
                except TimeoutError:
                    waited += idle_timeout
                    if not follow and waited >= FIRST_MESSAGE_TIMEOUT:
                        return  # nothing at or after the start
                    continue
                waited = 0.0
                event = self._decode(msg, streams, start)
                if event is not None:
                    yield msg.metadata.sequence.stream, event
                    if isinstance(event, LogEof) and follow:
                        return
                if not follow and msg.metadata.num_pending == 0:
                    return
        finally:
            await sub.unsubscribe()

    @staticmethod
    def _parse(subject: str, data: bytes) -> Event | None:
        kind = subject.rsplit(".", 1)[-1]
        model: type[Event] = LogEof if kind == "eof" else LogAlert if kind == "alert" else LogLines
        try:
            return model.model_validate_json(data)
        except ValidationError as exc:  # a newer producer's message: skip it, say so
            log.warning("skipped a malformed %s: %s", subject, describe_validation_error(exc))
            return None

    def _decode(
        self, msg: Msg, streams: tuple[LogStream, ...], start: Start | None
    ) -> Event | None:
        event = self._parse(msg.subject, msg.data)
        if isinstance(event, LogAlert):
            return event if event.stream in streams else None
        if not isinstance(event, LogLines):
            return event
        batch = event
        if batch.stream not in streams:
            return None
        if start is not None:
            wanted = start.from_index.get(batch.stream, 0)
            if batch.first_index + len(batch.lines) <= wanted:
                return None
        return batch
