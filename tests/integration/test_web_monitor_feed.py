"""The web page's monitor feed on a real JetStream: a watched service's history and live
scrapes become chart points; an unknown service is not followed; an unwatched one is dropped
with its subscription and replay buffer."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import orjson
import pytest

from aifactory.services.server.ingress.web import monitor_feed
from aifactory.services.server.ingress.web.hub import Hub, Subscriber
from aifactory.services.server.ingress.web.monitor_feed import MonitorFeed
from aifactory.shared import subjects
from aifactory.shared.bus import ensure_topology, make_broker, publish
from aifactory.shared.messages import MonitorSamples, ScrapeTarget, SeriesGroup
from aifactory.shared.messages.base import utcnow
from aifactory.shared.messages.monitor import TargetRole
from aifactory.shared.natsd import EmbeddedNats
from aifactory.shared.registry import KVRegistry, ServiceRecord
from aifactory.shared.registry_view import RegistryView
from aifactory.shared.settings import Settings

pytestmark = pytest.mark.nats

SERVER = ScrapeTarget(
    key="svc-service-0",
    url="http://n1:8000/metrics",
    service_id="svc",
    recipe="inference/simulator",
    job_id="1",
    node="n1",
    role=TargetRole.SERVICE,
)


def scrape(ago_s: float, running: float) -> MonitorSamples:
    values = {"vllm:num_requests_running": running, "vllm:num_requests_waiting": 0.0}
    return MonitorSamples(
        time=utcnow() - timedelta(seconds=ago_s),
        service_id="svc",
        target=SERVER,
        up=True,
        duration_s=0.01,
        size_bytes=10,
        groups=[SeriesGroup(labels={}, values=values)],
    )


async def points(subscriber: Subscriber, n: int) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    async for event in subscriber:
        assert event.name == "figures"
        out.append(orjson.loads(event.data))
        if len(out) == n:
            break
    return out


async def test_a_watched_service_is_charted_and_dropped_when_nobody_watches(
    nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = make_broker(Settings(nats_url=nats_server.url), name="test")
    await broker.connect()
    topo = await ensure_topology(broker.connection.jetstream())
    services = KVRegistry(topo.services, ServiceRecord)
    record = ServiceRecord(
        service_id="svc",
        recipe="inference/simulator",
        request_id="r",
        job_name="aif-svc",
        executor="local",
        workdir="/tmp/x",
    )
    await services.create("svc", record)
    view = RegistryView(topo.services)
    await view.start()
    hub = Hub()
    feed = MonitorFeed(hub, broker.connection, view)
    await feed.start()
    try:
        for ago, running in ((4, 1), (2, 2)):  # before any page: the stream keeps them
            await publish(broker, subjects.MONITOR_SAMPLES, scrape(ago, running), service_id="svc")
        subscriber, _, _ = hub.subscribe("monitor/svc", None)
        feed.want("svc")
        feed.want("nope")  # no such service: not followed
        history = await asyncio.wait_for(points(subscriber, 2), 10)
        assert [p["values"] for p in history] == [{"requests": [1, 0]}, {"requests": [2, 0]}]
        assert history[0]["series"] == {"requests": ["running", "waiting"]}
        await publish(broker, subjects.MONITOR_SAMPLES, scrape(0, 5), service_id="svc")
        (live,) = await asyncio.wait_for(points(subscriber, 1), 10)
        assert live["values"] == {"requests": [5, 0]}
        assert live["elapsed_s"] > history[1]["elapsed_s"]  # type: ignore[operator]
        assert feed.followed == {"svc"}

        monkeypatch.setattr(monitor_feed, "GRACE_S", 0.0)
        await feed.reap()
        assert feed.followed == {"svc"}  # a page still watches
        hub.unsubscribe(subscriber)
        await feed.reap()
        assert feed.followed == set()
        assert list(hub.topic("monitor/svc").buffer) == []  # the stream has it, not the hub
        nc = broker.connection
        count = nc.stats["in_msgs"]
        subject = subjects.MONITOR_SAMPLES.subject(service_id="svc")
        await nc.publish(subject, scrape(0, 6).model_dump_json().encode())  # no ack asked
        await nc.flush()
        await asyncio.sleep(0.3)
        assert nc.stats["in_msgs"] == count  # the subscription is gone
    finally:
        await feed.stop()
        await view.stop()
        await broker.stop()
