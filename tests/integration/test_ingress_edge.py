"""What every request meets at the ingress: body limits, honest Allow headers, no CORS,
a rate limit on failed logins, and 503 (nothing done) when the bus will not store a command.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from nats.js.api import DiscardPolicy

from aifactory.shared import subjects
from aifactory.shared.natsd import EmbeddedNats
from aifactory.shared.registry import KVRegistry, ServiceRecord

pytestmark = pytest.mark.nats

AUTH = {"Authorization": "Bearer s3cret"}
Ingress = tuple[httpx.AsyncClient, KVRegistry[ServiceRecord]]


async def test_options_and_405_list_every_method_of_the_path(ingress: Ingress) -> None:
    client, _ = ingress
    options = await client.options("/api/v1/services", headers=AUTH)
    assert options.status_code == 204
    assert options.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    wrong = await client.put("/api/v1/services", headers=AUTH, json={})
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    unknown = await client.options("/api/v1/nothing-here", headers=AUTH)
    assert unknown.status_code in (401, 404)  # no route: no invented Allow header


async def test_bodies_over_one_mebibyte_are_refused_before_a_route_reads_them(
    ingress: Ingress,
) -> None:
    client, _ = ingress
    big = b'{"recipe": "' + b"x" * (1024 * 1024) + b'"}'
    declared = await client.post("/api/v1/services", headers=AUTH, content=big)
    assert declared.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(20):
            yield b" " * 65536

    chunked = await client.post("/api/v1/services", headers=AUTH, content=chunks())
    assert chunked.status_code == 413
    prompt = await client.post(
        "/api/v1/services/abc/prompt", headers=AUTH, json={"prompt": "y" * (1024 * 1024)}
    )
    assert prompt.status_code == 413
    assert (await client.get("/api/v1/services", headers=AUTH)).status_code == 200


async def test_undecodable_body_is_a_documented_client_error(ingress: Ingress) -> None:
    client, _ = ingress
    answer = await client.post(
        "/api/v1/services",
        headers={**AUTH, "content-type": "application/json"},
        content=b"\xff\xfe{not json",
    )
    assert 400 <= answer.status_code < 500
    documented = (await client.get("/openapi.json")).json()
    create = documented["paths"]["/api/v1/services"]["post"]["responses"]
    assert {"400", "413", "422", "429", "503"} <= set(create)
    recipe = documented["components"]["schemas"]["CreateService"]["properties"]["recipe"]
    assert "inference/simulator" in recipe["enum"]


async def test_no_cors_headers_for_other_origins(ingress: Ingress) -> None:
    client, _ = ingress
    origin = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    for answer in (
        await client.options("/api/v1/services", headers=origin),
        await client.get("/api/v1/services", headers={**AUTH, **origin}),
    ):
        assert not any(h.startswith("access-control-") for h in answer.headers)


async def test_failed_logins_are_rate_limited_per_address(ingress: Ingress) -> None:
    client, _ = ingress
    codes = [
        (await client.get("/api/v1/services", headers={"Authorization": f"Bearer guess{i}"}))
        for i in range(25)
    ]
    assert [c.status_code for c in codes[:20]] == [401] * 20
    assert {c.status_code for c in codes[20:]} == {429}
    assert 1 <= int(codes[-1].headers["retry-after"]) <= 60
    # Until the window passes even the right token waits: a guesser learns nothing.
    assert (await client.get("/api/v1/services", headers=AUTH)).status_code == 429


async def test_a_full_command_stream_is_a_503_and_nothing_is_registered(
    ingress: Ingress, nats_server: EmbeddedNats
) -> None:
    client, registry = ingress
    import nats

    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    config = (await js.stream_info(subjects.COMMANDS_STREAM)).config
    config.max_bytes, config.discard = 64, DiscardPolicy.NEW
    await js.update_stream(config)
    await nc.close()
    answer = await client.post(
        "/api/v1/services", headers=AUTH, json={"recipe": "inference/simulator"}
    )
    assert answer.status_code == 503
    assert "maximum bytes" in answer.json()["detail"]
    assert await registry.keys() == []
