"""``/api/v1/services/{id}/logs`` and ``…/logs/stream``: a job's output from the logs stream.

- ``GET …/logs?tail=N&stream=out|err``: the last N records as JSON lines, one object per
  record (stream, line number, byte offset, text, whether the line was cut).
- ``GET …/logs/stream``: Server-Sent Events. ``event: lines`` carries a batch exactly as the
  bus holds it (file identity, offset, first line number: a client can check that nothing
  is missing), ``event: alert`` a failure pattern, ``event: eof`` the end of the job's
  output, after which the response ends. Each event's ``id`` is its stream sequence: a
  client that reconnects with ``Last-Event-ID`` continues right after it. A new stream
  starts at the batch holding the ``tail``-th last record.

Nothing here touches a file: the lines come from JetStream, so the ingress serves the logs
of jobs on any cluster whose logs service publishes to this bus.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, HTTPException, Path, Query
from fastapi.responses import StreamingResponse
from faststream.nats import NatsBroker
from sse_starlette import EventSourceResponse, ServerSentEvent

from aifactory.logs.read import LogReader, Record, records
from aifactory.services.server.ingress.errors import NOT_FOUND
from aifactory.shared import subjects
from aifactory.shared.messages import LogAlert, LogEof, LogLines, LogStream
from aifactory.shared.messages.base import ID_PATTERN
from aifactory.shared.registry_view import RegistryView

ServiceId = Annotated[str, Path(pattern=ID_PATTERN, description="service id, or bench-<id>")]
MAX_TAIL = 100_000
#: Seconds between SSE comment pings, so proxies keep an idle stream open.
PING_S = 15


def record_json(record: Record) -> bytes:
    return orjson.dumps(
        {
            "seq": record.seq,
            "stream": record.stream.value,
            "index": record.index,
            "line": record.line,
            "offset": record.offset,
            "text": record.text,
            "cut": record.cut.value if record.cut else None,
            "time": record.time.isoformat(),
        }
    )


def logs_router(broker: NatsBroker, services_view: RegistryView) -> APIRouter:
    router = APIRouter(tags=["logs"])

    async def reader(service_id: str) -> LogReader:
        found = LogReader(
            broker.connection.jetstream(),
            subjects.LOGS,
            subjects.LOGS_EOF,
            subjects.LOG_ALERT,
            service_id,
        )
        if await services_view.get_json(service_id) is None and await found.last() is None:
            raise HTTPException(404, f"no service {service_id!r} and no output of it")
        return found

    def selected(stream: LogStream | None) -> tuple[LogStream, ...]:
        return (stream,) if stream else (LogStream.OUT, LogStream.ERR)

    @router.get(
        "/services/{service_id}/logs",
        responses={
            **NOT_FOUND,
            200: {"content": {"application/x-ndjson": {}}, "description": "JSON lines"},
        },
    )
    async def tail_logs(
        service_id: ServiceId,
        tail: Annotated[int, Query(ge=0, le=MAX_TAIL, description="Last records")] = 100,
        stream: Annotated[LogStream | None, Query(description="out or err; both if unset")] = None,
    ) -> StreamingResponse:
        """The last ``tail`` records of the job's output, one JSON object per line."""
        log_reader = await reader(service_id)
        streams = selected(stream)
        start = await log_reader.tail_start(streams, tail)
        keep: deque[Record] = deque(maxlen=tail)
        if start is not None:
            async for seq, event in log_reader.events(start=start, streams=streams):
                if isinstance(event, LogLines):
                    keep.extend(
                        records(seq, event, from_index=start.from_index.get(event.stream, 0))
                    )

        async def body() -> AsyncIterator[bytes]:
            for record in keep:
                yield record_json(record) + b"\n"

        return StreamingResponse(body(), media_type="application/x-ndjson")

    @router.get(
        "/services/{service_id}/logs/stream",
        responses={
            **NOT_FOUND,
            200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"},
        },
    )
    async def stream_logs(
        service_id: ServiceId,
        tail: Annotated[int, Query(ge=0, le=MAX_TAIL, description="Start this far back")] = 100,
        stream: Annotated[LogStream | None, Query(description="out or err; both if unset")] = None,
        last_event_id: Annotated[str | None, Header(description="Resume after this id")] = None,
    ) -> EventSourceResponse:
        """Follow the job's output live, from ``tail`` records back or after
        ``Last-Event-ID``, until its end (``event: eof``)."""
        after: int | None = None
        if last_event_id:
            if not last_event_id.strip().isdigit():
                raise HTTPException(400, "Last-Event-ID must be an event id of this stream")
            after = int(last_event_id)
        log_reader = await reader(service_id)
        streams = selected(stream)
        start = None if after is not None else await log_reader.tail_start(streams, tail)

        async def events() -> AsyncIterator[ServerSentEvent]:
            async for seq, event in log_reader.events(
                start=start, after_seq=after, follow=True, streams=streams
            ):
                kind = (
                    "lines"
                    if isinstance(event, LogLines)
                    else "alert"
                    if isinstance(event, LogAlert)
                    else "eof"
                )
                yield ServerSentEvent(data=event.model_dump_json(), event=kind, id=str(seq))
                if isinstance(event, LogEof):
                    return

        return EventSourceResponse(events(), ping=PING_S)

    return router
