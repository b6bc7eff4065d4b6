"""Wiring and lifetime of the monitor service process.

Registries in (KV watches of services and benchmarks), scrapes out: every scrape of every
target is published on ``monitor.samples.<service_id>`` (stored in the ``AIF_MONITOR``
stream), successful or not. The work itself is the ``aifactory.monitor`` library.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from fastapi import FastAPI

from aifactory.monitor.exposition import Parser, Selector
from aifactory.monitor.follow import KVFollower
from aifactory.monitor.scheduler import ScrapeScheduler
from aifactory.monitor.scrape import ScrapeOutcome, Scraper
from aifactory.services.monitor.book import TargetBook
from aifactory.services.monitor.metrics import MonitorMetrics
from aifactory.shared import subjects
from aifactory.shared.bus import bus_connected, ensure_topology, make_broker, publish
from aifactory.shared.executors.factory import make_executor
from aifactory.shared.http import add_ops_routes, embedded_server
from aifactory.shared.messages import MonitorSamples, ScrapeTarget, new_id
from aifactory.shared.process import ServiceProcess
from aifactory.shared.settings import Settings

log = logging.getLogger(__name__)

#: Re-read the registries at least this often: a multi-node job's exporters files can
#: appear after its service is running.
REFRESH_EVERY_S = 5.0


class MonitorService(ServiceProcess):
    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self.broker = make_broker(settings, name="monitor")
        self.metrics = MonitorMetrics()
        cfg = settings.monitor
        self.scraper = Scraper(
            Parser(Selector(cfg.keep)),
            timeout=cfg.timeout,
            max_bytes=cfg.max_bytes,
            concurrency=cfg.concurrency,
        )
        self.scheduler = ScrapeScheduler(
            self.scraper,
            self.on_scrape,
            interval=cfg.interval,
            fast_interval=cfg.benchmark_interval,
        )

    async def on_scrape(
        self, target: ScrapeTarget, outcome: ScrapeOutcome, started: datetime
    ) -> None:
        self.metrics.scraped(target.role.value, outcome.up, outcome.duration_s)
        # Built from validated parts (the target model, samples parsed by prometheus_client):
        # constructed without a second validation of every sample.
        # Every field given: model_construct then never calls a default factory (pydantic
        # inspects a factory's signature on each call, a measurable cost at this rate).
        message = MonitorSamples.model_construct(
            id=new_id(),
            correlation_id=None,
            schema_version=1,
            time=started,
            service_id=target.service_id,
            target=target,
            up=outcome.up,
            error=outcome.error,
            duration_s=outcome.duration_s,
            size_bytes=outcome.size_bytes,
            groups=outcome.groups,
        )
        try:
            await publish(
                self.broker,
                subjects.MONITOR_SAMPLES,
                message,
                confirm=False,  # telemetry: stored by the stream, not waited for
                service_id=target.service_id,
            )
        except Exception:
            self.metrics.publish_errors.inc()
            raise
        self.metrics.samples.inc(sum(len(g["values"]) for g in outcome.groups))

    async def run(self) -> None:
        await self.broker.connect()
        topology = await ensure_topology(self.broker.connection.jetstream())
        executor = make_executor(self.settings)
        changed = asyncio.Event()
        services = KVFollower(topology.services, subjects.SERVICES_BUCKET, changed)
        benchmarks = KVFollower(topology.benchmarks, subjects.BENCHMARKS_BUCKET, changed)
        book = TargetBook(
            services=services,
            benchmarks=benchmarks,
            targets_kv=topology.targets,
            scheduler=self.scheduler,
            read=executor.read,
            file_sd=self.settings.effective_file_sd,
            metrics=self.metrics,
        )
        await services.start()
        await benchmarks.start()
        app = FastAPI(title="aifactory monitor service")
        add_ops_routes(app, self.metrics.registry, lambda: bus_connected(self.broker))
        http = embedded_server(app, "127.0.0.1", self.settings.monitor_port)
        tasks = [
            asyncio.create_task(http.serve(), name="http"),
            asyncio.create_task(self._keep_current(book, changed), name="targets"),
        ]
        log.info("monitor service up: http://127.0.0.1:%s", self.settings.monitor_port)
        try:
            await asyncio.wait(
                [*tasks, asyncio.create_task(self.stopped())],
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            http.should_exit = True
            tasks[1].cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.scheduler.close()
            await self.scraper.close()
            await services.stop()
            await benchmarks.stop()
            await self.broker.stop()
            await executor.close()

    async def _keep_current(self, book: TargetBook, changed: asyncio.Event) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), REFRESH_EVERY_S)
            changed.clear()
            try:
                await book.refresh()
            except Exception:  # a bad record or a full disk must not stop the monitor
                log.exception("refreshing the targets failed; retrying")
