"""``aifactory up`` never gives up: crash loops, a killed NATS, a kill while starting.

Every part is a real process (nats-server, the services) killed with SIGKILL; the back-off
is shortened by settings so the tests take seconds, the logic is the production one.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from aifactory.shared.parts import StackParts, read_parts
from aifactory.shared.settings import Settings
from aifactory.stack import Stack
from tests.integration.server_stack import UpStack, aifactory_up, write_test_recipes

pytestmark = pytest.mark.nats

FAST_BACKOFF = {"AIFACTORY_RESTART_BACKOFF": "0.2", "AIFACTORY_RESTART_BACKOFF_MAX": "1"}


def _parts(stack: UpStack) -> StackParts:
    found = read_parts(Path(stack.env["AIFACTORY_STATE_DIR"]))
    assert found is not None, "aifactory up wrote no parts.json"
    return found


def _pid(stack: UpStack, name: str, *, other_than: int | None = None, timeout: float = 20) -> int:
    """The part's pid once it runs (and, after a kill, once it is a new process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        part = next(p for p in _parts(stack).parts if p.name == name)
        if part.state.value == "running" and part.pid and part.pid != other_than:
            return part.pid
        time.sleep(0.05)
    raise AssertionError(f"{name} did not run again within {timeout}s: {_parts(stack)}")


def _wait_state(api: httpx.Client, service_id: str, state: str, timeout: float = 40) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    record: dict = {}  # type: ignore[type-arg]
    while time.monotonic() < deadline:
        record = api.get(f"/api/v1/services/{service_id}").json()
        if record.get("state") == state:
            return record
        time.sleep(0.2)
    raise AssertionError(f"service {service_id} not {state} within {timeout}s: {record}")


def test_a_crash_loop_is_reported_and_never_stops_the_rest(tmp_path: Path) -> None:
    with aifactory_up(tmp_path, env_extra=FAST_BACKOFF) as stack:
        api = httpx.Client(base_url=stack.ingress, headers=stack.headers, timeout=10)
        nats_pid, server_pid = _pid(stack, "nats"), _pid(stack, "server")
        client_pid = _pid(stack, "client")
        for _ in range(7):  # more than 5 a minute used to stop the whole stack
            os.kill(client_pid, signal.SIGKILL)
            client_pid = _pid(stack, "client", other_than=client_pid)
        health = api.get("/health").json()
        assert health["status"] == "degraded"
        client = next(p for p in health["parts"] if p["name"] == "client")
        assert client["restarts"] == 7 and client["last_exit_code"] == -9
        metrics = api.get("/metrics").text
        assert 'aifactory_stack_part_restarts_total{part="client"} 7.0' in metrics
        assert 'aifactory_stack_part_up{part="server",state="running"} 1.0' in metrics
        # The siblings and the bus were never touched, and still work.
        assert (_pid(stack, "nats"), _pid(stack, "server")) == (nats_pid, server_pid)
        created = api.post("/api/v1/services", json={"recipe": "inference/httpserver"})
        service_id = created.json()["service_id"]
        _wait_state(api, service_id, "running")
        api.delete(f"/api/v1/services/{service_id}")
    assert stack.returncode == 0, stack.output
    assert "client was killed by signal 9; restarting in" in stack.output
    assert "stopped." in stack.output


def test_killed_nats_is_restarted_and_an_acked_command_runs_once(tmp_path: Path) -> None:
    with aifactory_up(tmp_path, env_extra=FAST_BACKOFF) as stack:
        api = httpx.Client(base_url=stack.ingress, headers=stack.headers, timeout=10)
        before = api.post("/api/v1/services", json={"recipe": "inference/httpserver"}).json()
        _wait_state(api, before["service_id"], "running")
        # Freeze the server (and its ingress) so a command is acked by JetStream but not yet
        # executed, then kill the bus under it: the command must survive and run once.
        server_pid = _pid(stack, "server")
        os.kill(server_pid, signal.SIGSTOP)
        try:
            pending = stack.cli("deploy", "inference/httpserver")  # straight onto the bus
            assert pending.returncode == 0, pending.stdout + pending.stderr
            service_id = pending.stdout.split("deploy requested: service ", 1)[1].split()[0]
            nats_pid = _pid(stack, "nats")
            os.kill(nats_pid, signal.SIGKILL)
            killed = time.monotonic()
            _pid(stack, "nats", other_than=nats_pid)
        finally:
            os.kill(server_pid, signal.SIGCONT)
        deadline = killed + 10
        while time.monotonic() < deadline:  # healthy again within 10 s of the kill
            health = httpx.get(f"{stack.ingress}/health", timeout=1)
            if health.status_code == 200 and health.json()["bus"] == "connected":
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"not healthy 10 s after NATS was killed: {health.text}")
        record = _wait_state(api, service_id, "running")
        assert record["job_id"]
        outputs = list((tmp_path / "state" / "jobs" / service_id).glob("*.out"))
        assert len(outputs) == 1, outputs  # one job: executed once
        after = api.post("/api/v1/services", json={"recipe": "inference/httpserver"})
        _wait_state(api, after.json()["service_id"], "running")  # commands flow again
        listed = {r["service_id"] for r in api.get("/api/v1/services").json()}
        assert {before["service_id"], service_id, after.json()["service_id"]} <= listed
    assert stack.returncode == 0, stack.output
    assert "nats was killed by signal 9" in stack.output


def test_a_service_killed_while_the_stack_starts_is_restarted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aifactory.shared.natsd import free_port

    write_test_recipes(tmp_path / "recipes", port=free_port())
    settings = Settings(
        state_dir=tmp_path / "state",
        recipes_dir=tmp_path / "recipes",
        ingress_port=free_port(),
        client_port=free_port(),
        restart_backoff=0.2,
    )
    monkeypatch.setenv("AIFACTORY_RECIPES_DIR", str(settings.recipes_dir))
    monkeypatch.setenv("AIFACTORY_STATE_DIR", str(settings.state_dir))
    killed: list[int] = []

    def kill_client_once_spawned() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not killed:
            found = read_parts(settings.state_dir)
            client = next((p for p in found.parts if p.name == "client"), None) if found else None
            if client is not None and client.pid:
                os.kill(client.pid, signal.SIGKILL)
                killed.append(client.pid)
            time.sleep(0.01)

    notes: list[str] = []
    killer = threading.Thread(target=kill_client_once_spawned)
    killer.start()
    with Stack(settings, on_note=notes.append) as stack:
        killer.join()
        assert killed, "the client never appeared in parts.json"
        client = next(c for c in stack.children if c.name == "client")
        assert client.pid != killed[0] and client.restarts == 1
        assert any("client was killed by signal 9" in n for n in notes), notes
