"""Fixtures of the integration tests."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium under Playwright, once per test module (see ``webkit.py``).

    Not once per session: Playwright's sync API keeps an event loop running in this thread
    while it is open, and every async test (and ``asyncio.run``) after it would fail."""
    from tests.integration.webkit import chromium

    with chromium() as found:
        yield found


@pytest.fixture(scope="session")
def web_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``aifactory up`` for the web page's tests, with the simulator recipe beside the test
    recipes; every service still running is stopped at the end."""
    import httpx

    from tests.integration.server_stack import aifactory_up
    from tests.integration.webkit import add_recipes, stop_services, wait_until

    env = {"AIFACTORY_HEALTH_INTERVAL": "0.3", "AIFACTORY_MONITOR__INTERVAL": "1"}
    with aifactory_up(tmp_path_factory.mktemp("web"), env_extra=env) as stack:

        def healthy() -> bool:
            try:
                return httpx.get(f"{stack.ingress}/health", timeout=1).is_success
            except httpx.HTTPError:
                return False

        wait_until(healthy, 90, "the stack's ingress")
        add_recipes(stack)
        yield stack
        stop_services(stack)


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Screenshots of every page, kept in the test output."""
    from tests.integration.webkit import Shots

    return Shots(tmp_path_factory.mktemp("screenshots"))


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
