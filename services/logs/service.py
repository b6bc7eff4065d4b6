"""Wiring and lifetime of the logs service process.

Connect, declare the topology, then three loops: the registry feed (which jobs), the
shipper (their files onto the bus), and ``/health`` + ``/metrics``. All the work is in the
``aifactory.logs`` library; this module only connects it to the bus and the registries.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from aifactory.logs.bus import BusSink
from aifactory.logs.follow import FollowConfig
from aifactory.logs.jobs import BenchJobs
from aifactory.logs.shipper import LogShipper
from aifactory.services.logs.feed import RegistryFeed
from aifactory.services.logs.metrics import LogsMetrics
from aifactory.shared.bus import bus_connected, ensure_topology, make_broker
from aifactory.shared.executors.base import Executor
from aifactory.shared.executors.factory import make_executor
from aifactory.shared.http import add_ops_routes, embedded_server
from aifactory.shared.process import ServiceProcess
from aifactory.shared.settings import Settings

log = logging.getLogger(__name__)


class LogsService(ServiceProcess):
    def __init__(self, settings: Settings, executor: Executor | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.executor = executor or make_executor(settings)
        self.broker = make_broker(settings, name="logs")
        self.metrics = LogsMetrics()

    async def run(self) -> None:
        await self.broker.connect()
        topology = await ensure_topology(self.broker.connection.jetstream())
        shipper = LogShipper(
            self.executor,
            BusSink(self.broker, topology.logs),
            FollowConfig.from_settings(self.settings),
            observer=self.metrics,
        )
        self.metrics.follow(lambda: len(shipper.jobs), lambda: shipper.followed_files)
        feed = RegistryFeed(
            shipper,
            BenchJobs(self.executor, self.settings),
            self.metrics,
            reconnects=lambda: int(self.broker.connection.stats["reconnects"]),
        )
        app = FastAPI(title="aifactory logs service")
        add_ops_routes(app, self.metrics.registry, lambda: bus_connected(self.broker))
        http = embedded_server(app, "127.0.0.1", self.settings.logs_port)
        tasks = [
            asyncio.create_task(shipper.run(), name="shipper"),
            asyncio.create_task(
                feed.watch(topology.services, feed.service_entry, "services"), name="services"
            ),
            asyncio.create_task(
                feed.watch(topology.benchmarks, feed.benchmark_entry, "benchmarks"),
                name="benchmarks",
            ),
            asyncio.create_task(feed.rescan(), name="rescan"),
            asyncio.create_task(http.serve(), name="http"),
        ]
        stop = asyncio.create_task(self.stopped(), name="stop")
        log.info(
            "logs service up: executor=%s http://127.0.0.1:%s",
            self.executor.kind,
            self.settings.logs_port,
        )
        try:
            done, _ = await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            http.should_exit = True
            for task in tasks:
                if task.get_name() != "http":
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            stop.cancel()
            await shipper.close()
            await self.broker.stop()
            await self.executor.close()
