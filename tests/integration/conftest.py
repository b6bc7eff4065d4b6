"""Fixtures of the integration tests."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from aifactory.services.server.ingress.app import IngressContext, create_ingress
from aifactory.services.server.metrics import ServerMetrics
from aifactory.shared.bus import ensure_topology, make_broker
from aifactory.shared.natsd import EmbeddedNats
from aifactory.shared.registry import BenchmarkRecord, KVRegistry, ServiceRecord
from aifactory.shared.registry_view import RegistryView
from aifactory.shared.settings import Settings


@pytest.fixture
def jobs_dir() -> Iterator[Path]:
    """A job folder outside pytest's 0700 tmp tree: SLURM jobs run as root on the local
    cluster, and the shared-node tests' second user must be able to reach what it may."""
    path = Path(f"/tmp/aifactory-test-jobs-{os.getpid()}-{time.monotonic_ns()}")
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def ingress(
    nats_server: EmbeddedNats, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, KVRegistry[ServiceRecord]]]:
    """The ingress in-process (ASGI) on a real JetStream; its token is ``s3cret``."""
    settings = Settings(nats_url=nats_server.url, state_dir=tmp_path, api_token="s3cret")
    broker = make_broker(settings, name="test")
    await broker.connect()
    topo = await ensure_topology(broker.connection.jetstream())
    registry = KVRegistry(topo.services, ServiceRecord)
    view = RegistryView(topo.services)
    await view.start()
    targets_view = RegistryView(topo.targets)
    await targets_view.start()
    app = create_ingress(
        IngressContext(
            services_view=view,
            targets_view=targets_view,
            settings=settings,
            broker=broker,
            services=registry,
            benchmarks=KVRegistry(topo.benchmarks, BenchmarkRecord),
            metrics=ServerMetrics(),
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as client:
        yield client, registry
    await view.stop()
    await targets_view.stop()
    await broker.stop()
