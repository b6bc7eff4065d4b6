"""``/events/<topic>``: a topic of the hub as Server-Sent Events (sse-starlette).

Every event has an id (``<epoch>:<seq>``). A page passes the position it was rendered at
(``?since=``), so nothing between render and connect is lost; the browser's automatic
reconnect sends ``Last-Event-ID`` and is replayed what it missed. An id from before an
ingress restart gets ``event: reset`` (the page reloads). When the browser goes away,
sse-starlette cancels the generator and its ``finally`` drops the subscription: no task
or queue outlives the connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query
from sse_starlette import EventSourceResponse, ServerSentEvent

from aifactory.services.server.ingress.web.hub import Event, TooManyStreams
from aifactory.services.server.ingress.web.state import WebState

#: Seconds between keep-alive comments, so proxies keep an idle stream open.
PING_S = 15
#: A browser that takes longer than this to accept one event is cut off.
SEND_TIMEOUT_S = 10
TOPIC = (
    r"^(services|benchmarks)(/[A-Za-z0-9_-]{1,64})?$|^(experiments|monitor)/[A-Za-z0-9_-]{1,64}$"
)
POSITION = r"^[0-9a-f]{1,16}:[0-9]{1,18}$"


def _sse(event: Event, epoch: str) -> ServerSentEvent:
    return ServerSentEvent(data=event.data, event=event.name, id=f"{epoch}:{event.seq}")


def live_router(state: WebState) -> APIRouter:
    router = APIRouter(include_in_schema=False, dependencies=[Depends(state.guard.page)])

    @router.get("/events/{topic:path}")
    async def events(
        topic: Annotated[str, Path(pattern=TOPIC)],
        since: Annotated[str | None, Query(pattern=POSITION)] = None,
        last_event_id: Annotated[str | None, Header(max_length=40)] = None,
    ) -> EventSourceResponse:
        hub = state.hub
        if hub.full:
            raise HTTPException(503, "too many live streams are open", headers={"Retry-After": "5"})
        if topic.startswith("monitor/"):
            state.want_monitor(topic.removeprefix("monitor/"))

        async def stream() -> AsyncIterator[ServerSentEvent]:
            subscriber = None
            try:  # subscribed inside the generator: its finally is sure to run
                subscriber, backlog, stale = hub.subscribe(topic, last_event_id or since)
                if stale:
                    yield ServerSentEvent(data="{}", event="reset")
                for event in backlog:
                    yield _sse(event, hub.epoch)
                async for event in subscriber:
                    yield _sse(event, hub.epoch)
            except TooManyStreams:
                return
            finally:
                if subscriber is not None:
                    hub.unsubscribe(subscriber)

        return EventSourceResponse(
            stream(),
            ping=PING_S,
            send_timeout=SEND_TIMEOUT_S,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return router
