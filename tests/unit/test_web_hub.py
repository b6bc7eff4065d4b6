"""The live hub: replay after a position, stale ids, slow pages cut off, nothing left over."""

from __future__ import annotations

import asyncio

import pytest

from aifactory.services.server.ingress.web import hub as hub_module
from aifactory.services.server.ingress.web.hub import Hub, TooManyStreams


async def _take(subscriber: hub_module.Subscriber, n: int) -> list[str]:
    out = []
    async for event in subscriber:
        out.append(event.data)
        if len(out) == n:
            break
    return out


async def test_a_page_gets_what_was_posted_after_its_position() -> None:
    hub = Hub()
    hub.post("services", "service", "a")
    position = hub.position("services")  # the page is rendered here
    hub.post("services", "service", "b")  # between render and connect
    subscriber, backlog, stale = hub.subscribe("services", position)
    assert not stale and [e.data for e in backlog] == ["b"]
    hub.post("services", "service", "c")
    assert await asyncio.wait_for(_take(subscriber, 1), 1) == ["c"]
    hub.unsubscribe(subscriber)
    assert hub.subscribers == 0


async def test_a_reconnect_is_replayed_from_its_last_event_id() -> None:
    hub = Hub()
    for value in "abcd":
        hub.post("benchmarks/x", "window", value)
    _, backlog, _ = hub.subscribe("benchmarks/x", f"{hub.epoch}:2")
    assert [e.data for e in backlog] == ["c", "d"]
    _, everything, _ = hub.subscribe("benchmarks/x", f"{hub.epoch}:0")
    assert [e.data for e in everything] == ["a", "b", "c", "d"]


async def test_an_id_from_before_a_restart_asks_the_page_to_reload() -> None:
    hub = Hub()
    hub.post("services", "service", "a")
    _, backlog, stale = hub.subscribe("services", "00000000:7")
    assert stale and [e.data for e in backlog] == ["a"]


async def test_buffers_are_bounded() -> None:
    hub = Hub()
    keep = hub.topic("services/abc").keep
    for i in range(keep + 10):
        hub.post("services/abc", "note", str(i))
    _, backlog, _ = hub.subscribe("services/abc", f"{hub.epoch}:0")
    assert len(backlog) == keep and backlog[-1].data == str(keep + 9)


async def test_a_page_that_stops_reading_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "QUEUE_SIZE", 3)
    hub = Hub()
    slow, _, _ = hub.subscribe("services", None)
    for i in range(10):
        hub.post("services", "service", str(i))
    assert await asyncio.wait_for(_take(slow, 10), 1) == []  # closed: it reconnects


async def test_closing_ends_every_stream_and_refuses_new_ones() -> None:
    hub = Hub()
    subscriber, _, _ = hub.subscribe("services", None)
    reader = asyncio.create_task(_take(subscriber, 5))
    await asyncio.sleep(0)
    hub.close()
    assert await asyncio.wait_for(reader, 1) == []
    with pytest.raises(TooManyStreams):
        hub.subscribe("services", None)


async def test_the_number_of_open_streams_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "MAX_SUBSCRIBERS", 2)
    hub = Hub()
    counts: list[int] = []
    hub.on_subscribers(counts.append)
    first, _, _ = hub.subscribe("a/1", None)
    hub.subscribe("a/2", None)
    assert hub.full
    with pytest.raises(TooManyStreams):
        hub.subscribe("a/3", None)
    hub.unsubscribe(first)
    hub.unsubscribe(first)  # twice is harmless
    assert counts == [1, 2, 1] and not hub.full


async def test_idle_topics_are_evicted_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "MAX_TOPICS", 3)
    hub = Hub()
    hub.subscribe("watched", None)
    for i in range(6):
        hub.post(f"benchmarks/{i}", "window", "w")
    assert "watched" in hub._topics and len(hub._topics) == 3
    assert hub.listening("watch") and not hub.listening("benchmarks/")
