"""Wiring and lifetime of the server service process.

Start order matters for "nothing lost, nothing twice": connect, declare the topology,
reconcile the registry with the scheduler, and only then start consuming commands and
polling — so a command redelivered after a crash meets a registry that is already true.
"""

from __future__ import annotations

import asyncio
import logging

from faststream.nats import NatsBroker

from aifactory.services.server.handlers import build_router
from aifactory.services.server.ingress.app import IngressContext, create_ingress
from aifactory.services.server.ingress.auth import check_bind
from aifactory.services.server.lifecycle import Lifecycle
from aifactory.services.server.metrics import ServerMetrics
from aifactory.services.server.retention import retention_loop
from aifactory.services.server.tracker import Tracker
from aifactory.shared.bus import ensure_topology, make_broker
from aifactory.shared.executors.base import Executor
from aifactory.shared.executors.factory import make_executor
from aifactory.shared.http import EmbeddedUvicorn, embedded_server
from aifactory.shared.process import ServiceProcess
from aifactory.shared.registry import BenchmarkRecord, KVRegistry, ServiceRecord
from aifactory.shared.registry_view import RegistryView
from aifactory.shared.settings import Settings

log = logging.getLogger(__name__)


class ServerService(ServiceProcess):
    def __init__(self, settings: Settings, executor: Executor | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.executor = executor or make_executor(settings)
        self.broker: NatsBroker = make_broker(settings, name="server")
        self.metrics = ServerMetrics()
        self.http: EmbeddedUvicorn | None = None

    async def run(self) -> None:
        token = self.settings.api_token
        check_bind(
            self.settings.ingress_host,
            token.get_secret_value() if token else None,
            insecure_loopback=self.settings.insecure_loopback,
        )
        await self.broker.connect()
        topology = await ensure_topology(self.broker.connection.jetstream())
        registry = KVRegistry(topology.services, ServiceRecord)
        lifecycle = Lifecycle(
            settings=self.settings,
            broker=self.broker,
            executor=self.executor,
            registry=registry,
            metrics=self.metrics,
        )
        tracker = Tracker(lifecycle)
        await lifecycle.reconcile()
        self.broker.include_router(build_router(self.settings, lifecycle, tracker))
        await self.broker.start()
        services_view = RegistryView(
            topology.services, reconnects=lambda: int(self.broker.connection.stats["reconnects"])
        )
        await services_view.start()
        targets_view = RegistryView(topology.targets)
        await targets_view.start()
        ingress = create_ingress(
            IngressContext(
                services_view=services_view,
                targets_view=targets_view,
                settings=self.settings,
                broker=self.broker,
                services=registry,
                benchmarks=KVRegistry(topology.benchmarks, BenchmarkRecord),
                metrics=self.metrics,
            )
        )
        self.http = embedded_server(ingress, self.settings.ingress_host, self.settings.ingress_port)
        tasks = [
            asyncio.create_task(tracker.run(), name="tracker"),
            asyncio.create_task(self.http.serve(), name="ingress"),
        ]
        if self.settings.retention.interval_hours is not None:
            benchmarks = KVRegistry(topology.benchmarks, BenchmarkRecord)
            loop = retention_loop(self.settings, self.executor, registry, benchmarks, self.metrics)
            tasks.append(asyncio.create_task(loop, name="retention"))
        stop = asyncio.create_task(self.stopped(), name="stop")
        log.info(
            "server service up: executor=%s ingress=http://%s:%s",
            self.executor.kind,
            self.settings.ingress_host,
            self.settings.ingress_port,
        )
        try:
            done, _ = await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            self.http.should_exit = True
            for task in tasks:
                if task.get_name() in ("tracker", "retention"):
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            stop.cancel()
            await services_view.stop()
            await targets_view.stop()
            await self.broker.stop()
            await self.executor.close()
