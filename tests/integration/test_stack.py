"""The embedded stack's supervisor: a killed service comes back and reconciles."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from aifactory.shared.credentials import load_credentials
from aifactory.shared.natsd import free_port
from aifactory.shared.settings import Settings
from aifactory.stack import Stack
from tests.integration.server_stack import write_test_recipes

pytestmark = pytest.mark.nats


def test_killed_service_is_restarted_and_keeps_its_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_test_recipes(tmp_path / "recipes", port=free_port())
    settings = Settings(
        state_dir=tmp_path / "state",
        recipes_dir=tmp_path / "recipes",
        nats_url=f"nats://127.0.0.1:{free_port()}",
        ingress_port=free_port(),
        client_port=free_port(),
        poll_interval=0.3,
    )
    # The children read their settings from the environment, as under `aifactory up`.
    for key, value in {
        "AIFACTORY_STATE_DIR": settings.state_dir,
        "AIFACTORY_RECIPES_DIR": settings.recipes_dir,
        "AIFACTORY_INGRESS_PORT": settings.ingress_port,
        "AIFACTORY_CLIENT_PORT": settings.client_port,
        "AIFACTORY_POLL_INTERVAL": settings.poll_interval,
    }.items():
        monkeypatch.setenv(key, str(value))
    base = f"http://127.0.0.1:{settings.ingress_port}"
    with Stack(settings) as stack:
        credentials = load_credentials(settings.state_dir)
        assert credentials is not None
        token = credentials.api_token.get_secret_value()
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
        assert httpx.get(f"{base}/api/v1/services").status_code == 401  # loopback too
        created = api.post("/api/v1/services", json={"recipe": "inference/httpserver"})
        service_id = created.json()["service_id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = api.get(f"/api/v1/services/{service_id}").json().get("state")
            if state == "running":
                break
            time.sleep(0.2)
        assert state == "running"
        server = next(c for c in stack.children if c.module == "aifactory.services.server")
        assert server.proc is not None
        old_pid = server.proc.pid
        os.kill(old_pid, signal.SIGKILL)
        server.proc.wait()
        notes = stack.supervise_once()
        assert any("server was killed by signal 9; restarting in" in n for n in notes), notes
        stack.wait_healthy()  # supervises meanwhile: restarted after its back-off
        assert server.pid != old_pid and server.restarts == 1
        record = api.get(f"/api/v1/services/{service_id}").json()
        assert record["state"] == "running"
        api.delete(f"/api/v1/services/{service_id}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if api.get(f"/api/v1/services/{service_id}").json()["state"] == "cancelled":
                break
            time.sleep(0.2)
        else:
            pytest.fail("the restarted server did not cancel the service")
