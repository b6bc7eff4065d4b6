"""Bad targets are failed scrapes with a reason, and never hold up the good ones.

Real HTTP servers on loopback (aiohttp) play the targets: one healthy, and one each that
answers garbage, sends more than 10 MB, takes 10 s, drops the connection mid-answer, or
repeats a series. The monitor's scheduler scrapes all of them on a short interval, under a
concurrency limit smaller than the number of targets.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import datetime
from itertools import pairwise

import pytest
from aiohttp import web

from aifactory.monitor.exposition import Parser, Selector
from aifactory.monitor.scheduler import ScrapeScheduler
from aifactory.monitor.scrape import ScrapeOutcome, Scraper
from aifactory.shared.messages import ScrapeTarget
from aifactory.shared.settings import DEFAULT_MONITOR_KEEP

GOOD = b'# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="m"} 2\n'
LINE = b'vllm:filler{model_name="m",i="%08d"} 1\n'


async def good(request: web.Request) -> web.Response:
    return web.Response(body=GOOD, content_type="text/plain")


async def garbage(request: web.Request) -> web.Response:
    return web.Response(body=b"<html><body>Bad gateway</body></html>", content_type="text/html")


async def huge(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()  # chunked: no Content-Length to refuse up front
    await response.prepare(request)
    block = b"".join(LINE % i for i in range(20_000))  # ~0.9 MB of valid lines
    for _ in range(14):
        await response.write(block)
    await response.write_eof()
    return response


async def huge_declared(request: web.Request) -> web.Response:
    return web.Response(body=b"#" * (11 * 1024 * 1024), content_type="text/plain")


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(10)
    return web.Response(body=GOOD, content_type="text/plain")


async def vanish(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Length": "100000"})
    await response.prepare(request)
    await response.write(GOOD)
    assert request.transport is not None
    request.transport.abort()  # gone mid-answer
    return response


async def duplicate(request: web.Request) -> web.Response:
    return web.Response(body=GOOD + GOOD.splitlines(keepends=True)[1], content_type="text/plain")


HANDLERS = {
    "good": good,
    "garbage": garbage,
    "huge": huge,
    "huge-declared": huge_declared,
    "slow": slow,
    "vanish": vanish,
    "duplicate": duplicate,
}
REASONS = {
    "garbage": "invalid exposition: line 1",
    "huge": "over 10,485,760 bytes",
    "huge-declared": "over 10,485,760 bytes",
    "slow": "timeout",
    "vanish": "connection lost mid-scrape",
    "duplicate": "duplicate series",
}


@pytest.fixture
async def targets() -> AsyncIterator[str]:
    app = web.Application()
    for name, handler in HANDLERS.items():
        app.router.add_get(f"/{name}", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def target(base: str, name: str) -> ScrapeTarget:
    return ScrapeTarget(
        key=f"svc-{name}",
        url=f"{base}/{name}",
        service_id="svc",
        recipe="inference/simulator",
        job_id="1",
        node="127.0.0.1",
        role="service",
    )


async def test_bad_targets_fail_with_reasons_while_the_good_one_keeps_its_pace(
    targets: str,
) -> None:
    seen: dict[str, list[tuple[float, ScrapeOutcome]]] = defaultdict(list)

    async def record(t: ScrapeTarget, outcome: ScrapeOutcome, started: datetime) -> None:
        seen[t.key.removeprefix("svc-")].append((time.monotonic(), outcome))

    scraper = Scraper(Parser(Selector(DEFAULT_MONITOR_KEEP)), timeout=1.5, concurrency=3)
    scheduler = ScrapeScheduler(scraper, record, interval=0.25)
    try:
        scheduler.set_targets(target(targets, name) for name in HANDLERS)
        await asyncio.sleep(4.0)
    finally:
        await scheduler.close()
        await scraper.close()

    good_scrapes = seen["good"]
    assert all(
        o.up and o.groups[0]["values"]["vllm:num_requests_running"] == 2 for _, o in good_scrapes
    )
    # every 0.25 s for ~4 s, whatever the slow and huge ones do to their own slots
    assert len(good_scrapes) >= 10, [round(t, 2) for t, _ in good_scrapes]
    gaps = [b - a for (a, _), (b, _) in pairwise(good_scrapes)]
    assert max(gaps) < 1.0, gaps
    for name, reason in REASONS.items():
        outcomes = [o for _, o in seen[name]]
        assert outcomes, f"{name} was never scraped"
        for outcome in outcomes:
            assert not outcome.up and outcome.groups == []
            assert outcome.error is not None and reason in outcome.error, (name, outcome.error)
    assert max(o.duration_s for _, o in seen["slow"]) < 2.5  # the timeout, not 10 s
    assert len(seen["garbage"]) >= 10  # a failing target is still scraped on schedule


async def test_a_target_that_is_not_there_is_a_failed_scrape() -> None:
    scraper = Scraper(Parser(Selector(DEFAULT_MONITOR_KEEP)), timeout=1.0)
    try:
        outcome = await scraper.scrape("http://127.0.0.1:9/metrics")
        missing = await scraper.scrape("http://127.0.0.1:9/nothing")
    finally:
        await scraper.close()
    assert not outcome.up and outcome.error is not None and "cannot connect" in outcome.error
    assert not missing.up
