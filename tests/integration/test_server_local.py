"""The server service end to end with the local executor: HTTP → bus → job → events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest

from aifactory.shared import subjects
from aifactory.shared.natsd import EmbeddedNats, free_port
from tests.integration.server_stack import (
    ServerProcess,
    api_client,
    event_subjects,
    wait_for_state,
    write_test_recipes,
)

pytestmark = pytest.mark.nats


@pytest.fixture
def server(nats_server: EmbeddedNats, tmp_path: Path) -> Iterator[ServerProcess]:
    write_test_recipes(tmp_path / "recipes", port=free_port())
    proc = ServerProcess(tmp_path, nats_server.url, executor="local").start()
    yield proc
    proc.stop()


async def test_deploy_runs_then_delete_cancels(server: ServerProcess, nats_server) -> None:  # type: ignore[no-untyped-def]
    async with api_client() as client:
        created = await client.post(
            f"{server.base}/api/v1/services", json={"recipe": "inference/httpserver"}
        )
        assert created.status_code == 202, created.text
        service_id = created.json()["service_id"]
        # 202 is answered once the server has registered the service: GET finds it at once.
        assert (await client.get(f"{server.base}/api/v1/services/{service_id}")).status_code == 200
        record = await wait_for_state(client, server.base, service_id, {"running"})
        assert record["job_state"] == "running"
        [endpoint] = record["endpoints"]
        assert (await client.get(endpoint["url"] + "/")).status_code == 200
        status = (await client.get(f"{server.base}/api/v1/services/{service_id}/status")).json()
        assert status["state"] == "running"

        assert (
            await client.delete(f"{server.base}/api/v1/services/{service_id}")
        ).status_code == 202
        record = await wait_for_state(client, server.base, service_id, {"cancelled"})
        assert record["job_state"] == "cancelled"
        with pytest.raises(httpx.ConnectError):
            await client.get(endpoint["url"] + "/", timeout=2)
        # The rendered script is kept beside the job output for debugging.
        assert Path(record["script_path"]).read_text().startswith("#!/bin/bash")

    seen = await event_subjects(nats_server.url, service_id)
    for expected in (
        subjects.JOB.subject(event="submitted"),
        subjects.JOB.subject(event="running"),
        subjects.SERVICE_READY.subject(),
        subjects.JOB.subject(event="cancelled"),
    ):
        assert expected in seen, seen
    assert seen.index(subjects.JOB.subject(event="submitted")) < seen.index(
        subjects.SERVICE_READY.subject()
    )


async def test_invalid_recipe_and_override_are_rejected_with_field_path(
    server: ServerProcess,
) -> None:
    async with api_client() as client:
        bad = await client.post(
            f"{server.base}/api/v1/services",
            json={"recipe": "inference/httpserver", "overrides": {"resources": {"gpus": 2}}},
        )
        assert bad.status_code == 422
        [error] = bad.json()["detail"]
        assert error["loc"] == ["resources", "gpus"]
        assert "valid keys" in error["msg"]
        traversal = await client.post(
            f"{server.base}/api/v1/services", json={"recipe": "../etc/passwd"}
        )
        assert traversal.status_code == 422
        missing = await client.get(f"{server.base}/api/v1/services/nosuchservice")
        assert missing.status_code == 404


async def test_malformed_command_is_dead_lettered_and_service_keeps_serving(
    server: ServerProcess, nats_server
) -> None:  # type: ignore[no-untyped-def]
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await js.publish(
            subjects.DEPLOY_REQUESTED.subject(), b'{"service_id": "x; rm -rf /", "recipe": 5}'
        )
        await js.publish(subjects.DEPLOY_REQUESTED.subject(), b"not json at all")
        sub = await js.subscribe(
            subjects.DEADLETTER.subject(subject=subjects.DEPLOY_REQUESTED.subject()),
            stream=subjects.DEADLETTER_STREAM,
        )
        letters = [json.loads((await sub.next_msg(timeout=10)).data) for _ in range(2)]
    finally:
        await nc.close()
    reasons = " | ".join(letter["reason"] for letter in letters)
    assert "service_id" in reasons and "recipe" in reasons
    assert any("json" in letter["reason"].lower() for letter in letters)
    async with api_client() as client:
        assert (await client.get(f"{server.base}/health")).status_code == 200
        created = await client.post(
            f"{server.base}/api/v1/services", json={"recipe": "inference/httpserver"}
        )
        service_id = created.json()["service_id"]
        await wait_for_state(client, server.base, service_id, {"running"})
        await client.delete(f"{server.base}/api/v1/services/{service_id}")
        await wait_for_state(client, server.base, service_id, {"cancelled"})


async def test_service_that_never_gets_healthy_is_failed_and_its_job_cancelled(
    nats_server, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # The recipe's port differs from the one the process binds: health can never pass.
    write_test_recipes(tmp_path / "recipes", port=free_port(), health_timeout=1.5)
    recipe = tmp_path / "recipes" / "inference" / "httpserver.yaml"
    recipe.write_text(recipe.read_text().replace('"{port}"', f'"{free_port()}"'))
    proc = ServerProcess(tmp_path, nats_server.url, executor="local").start()
    try:
        async with api_client() as client:
            created = await client.post(
                f"{proc.base}/api/v1/services", json={"recipe": "inference/httpserver"}
            )
            service_id = created.json()["service_id"]
            record = await wait_for_state(client, proc.base, service_id, {"failed"})
            assert "not healthy within" in record["reason"]
        assert subjects.SERVICE_UNHEALTHY.subject() in await event_subjects(
            nats_server.url, service_id
        )
    finally:
        proc.stop()


async def test_metrics_pass_promtool(server: ServerProcess) -> None:
    import subprocess

    from tests.conftest import need_tool

    promtool = need_tool("promtool")
    async with api_client() as client:
        await client.get(f"{server.base}/api/v1/services")
        text = (await client.get(f"{server.base}/metrics")).text
    assert "aifactory_ingress_requests_total" in text
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stdout + check.stderr


async def test_command_sent_while_server_is_down_is_handled_after_restart(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    from aifactory.shared.messages import DeployRequested

    write_test_recipes(tmp_path / "recipes", port=free_port())
    first = ServerProcess(tmp_path, nats_server.url, executor="local").start()
    first.kill9()
    cmd = DeployRequested(service_id="whiledown", recipe="inference/httpserver")
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await js.publish(
            subjects.DEPLOY_REQUESTED.subject(),
            cmd.model_dump_json().encode(),
            headers={"Nats-Msg-Id": cmd.id},
        )
    finally:
        await nc.close()
    second = ServerProcess(tmp_path, nats_server.url, executor="local").start()
    try:
        async with api_client() as client:
            record = await wait_for_state(client, second.base, "whiledown", {"running"})
            assert record["request_id"] == cmd.id
            await client.delete(f"{second.base}/api/v1/services/whiledown")
            await wait_for_state(client, second.base, "whiledown", {"cancelled"})
    finally:
        second.stop()


async def test_client_recipe_without_port_is_not_deployable(
    server: ServerProcess, tmp_path: Path
) -> None:
    import shutil

    from aifactory.shared.settings import REPO_ROOT

    shutil.copytree(REPO_ROOT / "recipes" / "client", tmp_path / "recipes" / "client")
    async with api_client() as client:
        response = await client.post(
            f"{server.base}/api/v1/services", json={"recipe": "client/loadgen"}
        )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["ports"] and "cannot be deployed" in error["msg"]
