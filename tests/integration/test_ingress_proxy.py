"""The ingress in-process on real KV: proxying across replicas, failover, bearer auth."""

from __future__ import annotations

import pytest

from aifactory.services.server.ingress.auth import InsecureBindError, check_bind
from aifactory.shared.messages import Endpoint
from aifactory.shared.natsd import free_port
from aifactory.shared.registry import ServiceRecord
from aifactory.shared.states import ServiceState
from aifactory.simulator.harness import SimulatorProcess

pytestmark = pytest.mark.nats


def _record(service_id: str, urls: list[str]) -> ServiceRecord:
    endpoints = []
    for i, url in enumerate(urls):
        port = int(url.rsplit(":", 1)[1])
        endpoints.append(Endpoint(host="127.0.0.1", port=port, url=url, replica=i))
    return ServiceRecord(
        service_id=service_id,
        recipe="inference/simulator",
        request_id="r",
        job_name=f"aif-{service_id}",
        executor="local",
        workdir="/tmp",
        state=ServiceState.RUNNING,
        endpoints=endpoints,
    )


AUTH = {"Authorization": "Bearer s3cret"}


async def test_round_robin_with_failover_across_replicas(ingress) -> None:  # type: ignore[no-untyped-def]
    client, registry = ingress
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    with (
        SimulatorProcess("--model", "m-a", "--ttft-ms", "1", "--itl-ms", "0") as a,
        SimulatorProcess("--model", "m-b", "--ttft-ms", "1", "--itl-ms", "0") as b,
    ):
        await registry.create("rr", _record("rr", [a.url, dead, b.url]))
        served = []
        for _ in range(6):
            response = await client.get("/api/v1/services/rr/models", headers=AUTH)
            assert response.status_code == 200, response.text
            served.append(response.json()["data"][0]["id"])
        # Both live replicas take turns; the dead one never fails a request.
        assert set(served) == {"m-a", "m-b"}
        assert abs(served.count("m-a") - served.count("m-b")) <= 2
        chat = await client.post(
            "/api/v1/services/rr/prompt",
            json={"prompt": "hi", "max_tokens": 3, "chat": True},
            headers=AUTH,
        )
        assert chat.status_code == 200, chat.text
        assert chat.json()["usage"]["completion_tokens"] == 3


async def test_all_replicas_down_is_502_and_not_running_is_409(ingress) -> None:  # type: ignore[no-untyped-def]
    client, registry = ingress
    await registry.create("down", _record("down", [f"http://127.0.0.1:{free_port()}"]))
    response = await client.get("/api/v1/services/down/models", headers=AUTH)
    assert response.status_code == 502
    assert "no replica answered" in response.json()["detail"]
    pending = _record("pend", []).model_copy(update={"state": ServiceState.PENDING})
    await registry.create("pend", pending)
    response = await client.post("/api/v1/services/pend/prompt", json={"prompt": "x"}, headers=AUTH)
    assert response.status_code == 409


async def test_bearer_token_is_enforced(ingress) -> None:  # type: ignore[no-untyped-def]
    client, _ = ingress
    assert (await client.get("/api/v1/services")).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await client.get("/api/v1/services", headers=wrong)).status_code == 401
    assert (await client.get("/api/v1/services", headers=AUTH)).status_code == 200
    assert (await client.get("/health")).status_code == 200  # liveness stays open
    bad = await client.post(
        "/api/v1/services", json={"recipe": "inference/simulator", "extra": 1}, headers=AUTH
    )
    assert bad.status_code == 422
    bad_id = await client.get("/api/v1/services/bad%20id", headers=AUTH)
    assert bad_id.status_code == 422


def test_ingress_refuses_to_serve_without_a_token_loopback_included() -> None:
    check_bind("0.0.0.0", "token")
    check_bind("127.0.0.1", "token")
    for host in ("127.0.0.1", "::1", "0.0.0.0"):
        with pytest.raises(InsecureBindError, match="AIFACTORY_API_TOKEN"):
            check_bind(host, None)
    check_bind("127.0.0.1", None, insecure_loopback=True)  # demos, with a warning
    check_bind("::1", None, insecure_loopback=True)
    with pytest.raises(InsecureBindError, match="only applies on loopback"):
        check_bind("0.0.0.0", None, insecure_loopback=True)


async def test_benchmark_requests_are_validated_and_published(ingress, nats_server) -> None:  # type: ignore[no-untyped-def]
    import json

    import nats as nats_client

    from aifactory.shared import subjects
    from aifactory.shared.workload import Workload

    client, registry = ingress
    bad = await client.post(
        "/api/v1/benchmarks",
        json={
            "target": {"url": "http://127.0.0.1:9"},
            "workload": {"profile": "poisson", "rate": -1},
        },
        headers=AUTH,
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "workload", "rate"]
    unknown = await client.post(
        "/api/v1/benchmarks",
        json={"target": {"service_id": "nosuch"}, "workload": {"requests": 3}},
        headers=AUTH,
    )
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "target", "service_id"]
    both = await client.post(
        "/api/v1/benchmarks",
        json={"target": {"service_id": "a", "url": "http://127.0.0.1:9"}},
        headers=AUTH,
    )
    assert both.status_code == 422
    await registry.create("svc", _record("svc", ["http://127.0.0.1:9"]))
    ok = await client.post(
        "/api/v1/benchmarks",
        json={
            "target": {"service_id": "svc"},
            "workload": {"profile": "synchronous", "requests": 3},
        },
        headers=AUTH,
    )
    assert ok.status_code == 202, ok.text
    benchmark_id = ok.json()["benchmark_id"]
    nc = await nats_client.connect(nats_server.url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(
            subjects.BENCH_REQUESTED.subject(), stream=subjects.COMMANDS_STREAM
        )
        command = json.loads((await sub.next_msg(timeout=5)).data)
    finally:
        await nc.close()
    assert command["benchmark_id"] == benchmark_id
    assert command["target"]["service_id"] == "svc"
    sent = Workload.model_validate(command["workload"])
    assert sent == Workload(profile="synchronous", requests=3)
    missing = await client.get("/api/v1/benchmarks/nosuch", headers=AUTH)
    assert missing.status_code == 404
