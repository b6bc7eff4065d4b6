"""The service page's live server and GPU charts: the monitor's scrapes of one service, read
while a page shows them, turned into chart points (``figures`` events on ``monitor/<id>``).

Only services a page watches are followed. A page opening its charts calls :meth:`want`,
which subscribes (core NATS) to ``monitor.samples.<id>`` and first replays the last minutes
from the monitor's stream (the stream is the record), so the charts start with history
rather than an empty frame. A reaper drops a subscription once no page has followed its
topic for ``GRACE_S``, and clears the topic's buffer with it (the next page gets the history
from the stream again). Everything is bounded: services followed at once, rows kept per
service (the last ``LIVE_S`` seconds: rates need the previous scrape), series per chart.

The reading of the samples is the monitor library's (``timeline``, ``rate``): the same
figures as ``aifactory monitor watch``, the benchmark summary and the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from aifactory.monitor.figures import Series, Timeline, rate, timeline
from aifactory.monitor.window import Row, read_window, rows_of
from aifactory.services.server.ingress.web.hub import Hub
from aifactory.shared import subjects
from aifactory.shared.bus.events import watch
from aifactory.shared.messages import MonitorSamples
from aifactory.shared.messages.base import utcnow
from aifactory.shared.registry import ServiceRecord
from aifactory.shared.registry_view import RegistryView

log = logging.getLogger(__name__)

#: Services followed at once, all pages together.
MAX_FOLLOWED = 64
#: Seconds of rows kept per service for the live point (rates need the previous scrape).
LIVE_S = 30.0
#: Rows kept at most per service, whatever the scrape rate.
MAX_ROWS = 20_000
#: Series per chart at most (a chart per GPU quantity has a series per GPU).
MAX_SERIES = 16
#: Scrapes arriving within this of each other (server, node, GPUs of one round) make one point.
ROUND_S = 0.5
#: A series whose latest scrape is this much older than the newest is left out of a point.
STALE_S = 30.0
#: History replayed from the monitor's stream when a service is first followed.
HISTORY_S = 300.0
#: A followed service no page has watched for this long is dropped.
GRACE_S = 15.0
REAP_EVERY_S = 5.0


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart's latest values: series name → value (``None``: no fresh scrape)."""

    name: str
    label: str
    unit: str
    values: dict[str, float | None]


def _last(series: Series, fresh_after: float) -> float | None:
    return series[-1][1] if series and series[-1][0] >= fresh_after else None


def _total(per_target: dict[str, Series], fresh_after: float, scale: float = 1.0) -> float | None:
    found = [v for s in per_target.values() if (v := _last(s, fresh_after)) is not None]
    return scale * sum(found) if found else None


def _each(per_key: dict[str, Series], fresh_after: float, scale: float = 1.0) -> dict[str, float]:
    out = {}
    for key, series in sorted(per_key.items()):
        value = _last(series, fresh_after)
        if value is not None:
            out[key] = scale * value
    return out


def charts(tl: Timeline, fresh_after: float) -> list[Chart]:
    """The latest value of every chart the scrapes allow (a chart without data is left out):
    the server's queue, KV cache and token rates, each GPU's utilisation, memory and power,
    each node's CPU and memory."""
    out: list[Chart] = []

    def add(name: str, label: str, unit: str, values: dict[str, float | None]) -> None:
        if any(v is not None for v in values.values()):
            out.append(Chart(name, label, unit, values))

    add(
        "requests",
        "Requests on the server",
        "requests",
        {"running": _total(tl.running, fresh_after), "waiting": _total(tl.waiting, fresh_after)},
    )
    kv = [v for s in tl.kv_cache.values() if (v := _last(s, fresh_after)) is not None]
    add("kv_cache", "KV cache used", "%", {"KV cache": 100 * max(kv) if kv else None})
    add(
        "tokens",
        "Tokens per second (server)",
        "tokens/s",
        {
            "output": _total({k: rate(v) for k, v in tl.generation.items()}, fresh_after),
            "prompt": _total({k: rate(v) for k, v in tl.prompt.items()}, fresh_after),
        },
    )
    for quantity, name, label, unit in (
        ("util", "gpu_util", "GPU utilisation", "%"),
        ("mem_used", "gpu_memory", "GPU memory used", "MiB"),
        ("power", "gpu_power", "GPU power", "W"),
    ):
        add(name, label, unit, dict(_each(tl.gpu_series(quantity), fresh_after)))
    add("node_cpu", "Node CPU busy", "%", dict(_each(tl.cpu_busy(), fresh_after, 100.0)))
    add("node_memory", "Node memory used", "GiB", dict(_each(tl.mem_used, fresh_after, 1 / 2**30)))
    return out


class Board:
    """One followed service: its recent rows, and the chart points made of them.

    ``origin`` (seconds since the epoch: when the service was created) is the charts' zero,
    the same for every page and every follow of the service."""

    def __init__(self, origin: float) -> None:
        self.origin = origin
        self.rows: deque[Row] = deque(maxlen=MAX_ROWS)
        self.newest = float("-inf")
        self.shown = float("-inf")
        #: Series of each chart in the order they first appeared (a page's chart keeps
        #: its series; a GPU seen later is added, never reorders the others).
        self.series: dict[str, list[str]] = {}

    def add(self, message: MonitorSamples) -> None:
        self.rows.extend(rows_of([message]))
        self.newest = max(self.newest, message.time.timestamp())
        horizon = self.newest - LIVE_S
        while self.rows and self.rows[0].time < horizon:
            self.rows.popleft()

    def point(self) -> str | None:
        """The ``figures`` event of the scrapes added since the last one (``None``: nothing
        new, or nothing drawable in them)."""
        if self.newest <= self.shown:
            return None
        self.shown = self.newest
        found = charts(timeline(self.rows), self.newest - STALE_S)
        if not found:
            return None
        values: dict[str, list[float | None]] = {}
        for chart in found:
            known = self.series.setdefault(chart.name, [])
            for name in chart.values:
                if name not in known and len(known) < MAX_SERIES:
                    known.append(name)
            values[chart.name] = [_round(chart.values.get(name)) for name in known]
        event = {
            "elapsed_s": round(self.newest - self.origin, 1),
            "values": values,
            "labels": {c.name: c.label for c in found},
            "series": {c.name: self.series[c.name] for c in found},
            "units": {c.name: c.unit for c in found},
        }
        return orjson.dumps(event).decode()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def history_points(board: Board, messages: Iterable[MonitorSamples]) -> list[str]:
    """Replay scrapes in time order: one point per round of scrapes, but the last round's
    (more of it may still arrive live: the caller shows it after ``ROUND_S``)."""
    out: list[str] = []
    round_start: float | None = None
    for message in sorted(messages, key=lambda m: m.time):
        t = message.time.timestamp()
        if round_start is not None and t - round_start > ROUND_S:
            if (event := board.point()) is not None:
                out.append(event)
            round_start = None
        board.add(message)
        round_start = t if round_start is None else round_start
    return out


class Follower:
    """The subscription, board and timers of one followed service."""

    def __init__(self, service_id: str) -> None:
        self.service_id = service_id
        self.topic = f"monitor/{service_id}"
        self.board: Board | None = None
        self.subscription: Subscription | None = None
        self.starting: asyncio.Task[None] | None = None
        self.flush: asyncio.TimerHandle | None = None
        self.seen = time.monotonic()


class MonitorFeed:
    """Follows the services pages watch; see the module's docstring."""

    def __init__(self, hub: Hub, nc: NatsClient, services_view: RegistryView) -> None:
        self.hub = hub
        self.nc = nc
        self.services_view = services_view
        self._followed: dict[str, Follower] = {}
        self._reaper: asyncio.Task[None] | None = None

    @property
    def followed(self) -> set[str]:
        return set(self._followed)

    async def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap(), name="web-monitor-reaper")

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for service_id in list(self._followed):
            await self._drop(service_id)

    def want(self, service_id: str) -> None:
        """A page opens ``service_id``'s charts: follow it (if not already) for a while."""
        follower = self._followed.get(service_id)
        if follower is not None:
            follower.seen = time.monotonic()
            return
        if len(self._followed) >= MAX_FOLLOWED:
            log.warning("not following %s's monitor samples: %d followed", service_id, MAX_FOLLOWED)
            return
        follower = self._followed[service_id] = Follower(service_id)
        follower.starting = asyncio.create_task(
            self._begin(follower), name=f"web-monitor-{service_id}"
        )

    async def _begin(self, follower: Follower) -> None:
        service_id = follower.service_id
        raw = await self.services_view.get_json(service_id)
        if raw is None:  # no such service: nothing to follow
            self._followed.pop(service_id, None)
            return
        record = ServiceRecord.model_validate_json(raw)
        board = Board(record.created.timestamp())
        #: What arrives while the history is read (added after it, in order).
        early: deque[MonitorSamples] = deque(maxlen=1000)

        async def on_samples(message: MonitorSamples) -> None:
            if follower.board is None:
                early.append(message)
                return
            board.add(message)
            if follower.flush is None:  # one point per round of scrapes
                loop = asyncio.get_running_loop()
                follower.flush = loop.call_later(ROUND_S, self._flush, follower)

        past: list[MonitorSamples] = []
        try:  # subscribe first, then read the history: nothing falls between the two
            follower.subscription = await watch(
                self.nc, subjects.MONITOR_SAMPLES, on_samples, service_id=service_id
            )
            now = utcnow()
            since = now - timedelta(seconds=HISTORY_S)
            js = self.nc.jetstream()
            past = await read_window(js, subjects.MONITOR_SAMPLES, service_id, since, now)
        except NatsError as exc:
            log.warning("cannot read %s's monitor history: %s", service_id, exc)
        unique = {(m.target.key, m.time): m for m in [*past, *early]}
        for event in history_points(board, unique.values()):
            self.hub.post(follower.topic, "figures", event)
        follower.board = board
        follower.flush = asyncio.get_running_loop().call_later(ROUND_S, self._flush, follower)

    def _flush(self, follower: Follower) -> None:
        follower.flush = None
        if follower.board is not None and (event := follower.board.point()) is not None:
            self.hub.post(follower.topic, "figures", event)

    async def _drop(self, service_id: str) -> None:
        follower = self._followed.pop(service_id, None)
        if follower is None:
            return
        if follower.starting is not None and not follower.starting.done():
            follower.starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower.starting
        if follower.flush is not None:
            follower.flush.cancel()
        if follower.subscription is not None and not self.nc.is_closed:
            with contextlib.suppress(NatsError):
                await follower.subscription.unsubscribe()
        self.hub.forget(follower.topic)

    async def reap(self) -> None:
        """Drop the followed services no page has watched for ``GRACE_S``."""
        now = time.monotonic()
        for service_id, follower in list(self._followed.items()):
            if self.hub.watchers(follower.topic):
                follower.seen = now
            elif now - follower.seen > GRACE_S:
                await self._drop(service_id)

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(REAP_EVERY_S)
            try:
                await self.reap()
            except Exception:  # the reaper must outlive one bad drop
                log.exception("dropping unwatched monitor feeds failed")
