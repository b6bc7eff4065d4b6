"""``GET /api/v1/sd/prometheus``: the monitor's targets in Prometheus's HTTP SD format."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from nats.js.kv import KeyValue

from aifactory.services.server.ingress.app import IngressContext, create_ingress
from aifactory.services.server.metrics import ServerMetrics
from aifactory.shared.bus import ensure_topology, make_broker
from aifactory.shared.messages import ScrapeTarget, ServiceTargets
from aifactory.shared.natsd import EmbeddedNats
from aifactory.shared.registry import BenchmarkRecord, KVRegistry, ServiceRecord
from aifactory.shared.registry_view import RegistryView
from aifactory.shared.settings import Settings

pytestmark = pytest.mark.nats
AUTH = {"Authorization": "Bearer s3cret"}


@pytest.fixture
async def ingress(
    nats_server: EmbeddedNats, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, KeyValue]]:
    settings = Settings(nats_url=nats_server.url, state_dir=tmp_path, api_token="s3cret")
    broker = make_broker(settings, name="test")
    await broker.connect()
    topo = await ensure_topology(broker.connection.jetstream())
    views = [RegistryView(topo.services), RegistryView(topo.targets)]
    for view in views:
        await view.start()
    app = create_ingress(
        IngressContext(
            services_view=views[0],
            targets_view=views[1],
            settings=settings,
            broker=broker,
            services=KVRegistry(topo.services, ServiceRecord),
            benchmarks=KVRegistry(topo.benchmarks, BenchmarkRecord),
            metrics=ServerMetrics(),
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as client:
        yield client, topo.targets
    for view in views:
        await view.stop()
    await broker.stop()


def targets(service_id: str, labels: dict[str, str] | None = None) -> ServiceTargets:
    common = {"service_id": service_id, "recipe": "inference/vllm", "job_id": "12", "node": "gpu7"}
    return ServiceTargets(
        service_id=service_id,
        targets=[
            ScrapeTarget(
                key=f"{service_id}-service-0",
                url="http://gpu7:8000/metrics",
                role="service",
                labels=labels or {},
                **common,
            ),
            ScrapeTarget(
                key=f"{service_id}-gpu-0",
                url="http://gpu7:9400/metrics",
                role="gpu",
                **common,
            ),
        ],
    )


async def sd(client: httpx.AsyncClient, expect: int) -> list[dict[str, object]]:
    for _ in range(50):  # the view follows the bucket within milliseconds
        response = await client.get("/api/v1/sd/prometheus", headers=AUTH)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        groups: list[dict[str, object]] = response.json()
        if len(groups) == expect:
            return groups
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {expect} groups, got {groups}")


async def test_sd_lists_targets_with_their_labels_and_needs_the_token(
    ingress: tuple[httpx.AsyncClient, KeyValue],
) -> None:
    client, bucket = ingress
    assert await sd(client, 0) == []
    unauthorised = await client.get("/api/v1/sd/prometheus")
    assert unauthorised.status_code == 401
    await bucket.put("svc1", targets("svc1", {"team": "nlp"}).model_dump_json().encode())
    groups = await sd(client, 2)
    assert groups[1] == {
        "targets": ["gpu7:8000"],
        "labels": {
            "team": "nlp",
            "service_id": "svc1",
            "recipe": "inference/vllm",
            "job_id": "12",
            "node": "gpu7",
            "role": "service",
            "__metrics_path__": "/metrics",
            "__scheme__": "http",
        },
    }
    assert groups[0]["labels"]["role"] == "gpu"  # type: ignore[index]
    await bucket.delete("svc1")
    assert await sd(client, 0) == []


async def test_an_entry_that_would_inject_labels_is_left_out(
    ingress: tuple[httpx.AsyncClient, KeyValue],
) -> None:
    client, bucket = ingress
    await bucket.put("svc1", targets("svc1").model_dump_json().encode())
    hostile = targets("svc2").model_dump(mode="json")
    hostile["targets"][0]["labels"] = {"team": 'x"}\n- targets: [evil:1]'}
    await bucket.put("svc2", json.dumps(hostile).encode())  # written by something not ours
    groups = await sd(client, 2)
    assert {g["labels"]["service_id"] for g in groups} == {"svc1"}  # type: ignore[index]
