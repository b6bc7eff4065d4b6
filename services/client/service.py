"""Wiring and lifetime of the client service process (benchmarks over the bus)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from aifactory.services.client.handlers import build_router
from aifactory.services.client.metrics import ClientMetrics
from aifactory.services.client.runs import BenchmarkRuns
from aifactory.shared.bus import bus_connected, ensure_topology, make_broker
from aifactory.shared.executors.factory import make_executor
from aifactory.shared.http import add_ops_routes, embedded_server
from aifactory.shared.process import ServiceProcess
from aifactory.shared.registry import BenchmarkRecord, KVRegistry, ServiceRecord
from aifactory.shared.settings import Settings

log = logging.getLogger(__name__)


class ClientService(ServiceProcess):
    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self.broker = make_broker(settings, name="client")
        self.metrics = ClientMetrics()

    async def run(self) -> None:
        await self.broker.connect()
        topology = await ensure_topology(self.broker.connection.jetstream())
        runs = BenchmarkRuns(
            settings=self.settings,
            broker=self.broker,
            benchmarks=KVRegistry(topology.benchmarks, BenchmarkRecord),
            services=KVRegistry(topology.services, ServiceRecord),
            metrics=self.metrics,
            executor=make_executor(self.settings),
        )
        await runs.reconcile()
        self.broker.include_router(build_router(self.settings, runs))
        await self.broker.start()
        app = FastAPI(title="aifactory client service")
        add_ops_routes(app, self.metrics.registry, lambda: bus_connected(self.broker))
        http = embedded_server(app, "127.0.0.1", self.settings.client_port)
        serving = asyncio.create_task(http.serve(), name="http")
        log.info("client service up: http://127.0.0.1:%s", self.settings.client_port)
        try:
            await asyncio.wait(
                [serving, asyncio.create_task(self.stopped())],
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            http.should_exit = True
            await asyncio.gather(serving, return_exceptions=True)
            await self.broker.stop()
