"""Live events for browsers: one bus subscription per channel, fanned out to every page.

The hub turns bus events and registry changes into *topics* (``services``,
``services/<id>``, ``benchmarks``, ``benchmarks/<id>``, ``experiments/<id>``,
``monitor/<id>``). Each topic keeps its recent events in a bounded buffer with increasing
ids, so a page that opens late or reconnects (``Last-Event-ID``) is replayed what it
missed, and each connected page has a bounded queue: a browser that stops reading is cut
off (it reconnects and is replayed) rather than holding memory. Nothing here runs per
browser but a queue; the bus is read once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

#: Events kept per topic for replay; a benchmark's windows (one a second) for an hour.
KEEP = {"benchmarks/": 3600, "monitor/": 600, "services": 500}
DEFAULT_KEEP = 200
#: Topics kept at most (the least recently used without listeners go first).
MAX_TOPICS = 512
#: Events waiting per browser before it is cut off as too slow.
QUEUE_SIZE = 2000
#: Open streams at most, all browsers together.
MAX_SUBSCRIBERS = 1000


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    name: str
    data: str


class Subscriber:
    """One open page's stream of one topic."""

    def __init__(self, topic: Topic) -> None:
        self.topic = topic
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE_SIZE)

    def push(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.close()  # too slow: it reconnects with Last-Event-ID and is replayed

    def close(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while (event := await self.queue.get()) is not None:
            yield event


@dataclass
class Topic:
    keep: int
    seq: int = 0
    buffer: deque[Event] = field(default_factory=deque)
    subscribers: set[Subscriber] = field(default_factory=set)

    def post(self, name: str, data: str) -> None:
        self.seq += 1
        event = Event(self.seq, name, data)
        self.buffer.append(event)
        if len(self.buffer) > self.keep:
            self.buffer.popleft()
        for subscriber in list(self.subscribers):
            subscriber.push(event)


class TooManyStreams(RuntimeError):
    pass


class Hub:
    """Topics and their subscribers; all calls happen on the event loop (no locks)."""

    def __init__(self) -> None:
        #: Changes at every start, so an id from before a restart is recognised as such.
        self.epoch = secrets.token_hex(4)
        self._topics: OrderedDict[str, Topic] = OrderedDict()
        self._count = 0
        self._closed = False
        self._on_change: list[Callable[[int], None]] = []
        self.started = time.monotonic()

    @property
    def subscribers(self) -> int:
        return self._count

    @property
    def full(self) -> bool:
        return self._closed or self._count >= MAX_SUBSCRIBERS

    def on_subscribers(self, callback: Callable[[int], None]) -> None:
        self._on_change.append(callback)

    def topic(self, key: str) -> Topic:
        found = self._topics.get(key)
        if found is None:
            keep = next((n for p, n in KEEP.items() if key.startswith(p)), DEFAULT_KEEP)
            found = self._topics[key] = Topic(keep=keep)
            self._evict()
        self._topics.move_to_end(key)
        return found

    def _evict(self) -> None:
        if len(self._topics) <= MAX_TOPICS:
            return
        for key, topic in list(self._topics.items()):
            if not topic.subscribers:
                del self._topics[key]
                if len(self._topics) <= MAX_TOPICS:
                    return

    def post(self, key: str, name: str, data: str) -> None:
        self.topic(key).post(name, data)

    def position(self, key: str) -> str:
        """The id of the topic's latest event: a page rendered now streams from here."""
        return f"{self.epoch}:{self.topic(key).seq}"

    def subscribe(self, key: str, after: str | None) -> tuple[Subscriber, list[Event], bool]:
        """A new subscriber, the events after ``after`` it missed, and whether ``after`` is
        from an earlier run of the ingress (the page should reload: state was lost)."""
        if self.full:
            raise TooManyStreams(f"{self._count} live streams are open; try again later")
        topic = self.topic(key)
        stale = False
        backlog: list[Event] = []
        if after:
            epoch, _, seq = after.partition(":")
            if epoch != self.epoch or not seq.isdigit():
                stale, backlog = True, list(topic.buffer)
            else:
                backlog = [e for e in topic.buffer if e.seq > int(seq)]
        subscriber = Subscriber(topic)
        topic.subscribers.add(subscriber)
        self._changed(+1)
        return subscriber, backlog, stale

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in subscriber.topic.subscribers:
            subscriber.topic.subscribers.discard(subscriber)
            self._changed(-1)

    def _changed(self, delta: int) -> None:
        self._count += delta
        for callback in self._on_change:
            callback(self._count)

    def listening(self, prefix: str) -> bool:
        """Does any page follow a topic starting with ``prefix``?"""
        return any(t.subscribers for k, t in self._topics.items() if k.startswith(prefix))

    def watchers(self, key: str) -> int:
        """Pages following exactly ``key`` now."""
        found = self._topics.get(key)
        return len(found.subscribers) if found is not None else 0

    def forget(self, key: str) -> None:
        """Empty ``key``'s replay buffer (what fed it stopped; its source is the record).
        The topic's ids keep increasing, so a page reconnecting later is not confused."""
        found = self._topics.get(key)
        if found is not None:
            found.buffer.clear()

    def close(self) -> None:
        """End every stream (the ingress is stopping): browsers reconnect to the next one."""
        self._closed = True
        for topic in self._topics.values():
            for subscriber in list(topic.subscribers):
                subscriber.close()


async def cancel_quietly(task: asyncio.Task[object] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
