"""Run the real server service as a subprocess against a real nats-server, for tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats

from aifactory.shared import subjects
from aifactory.shared.credentials import load_credentials
from aifactory.shared.natsd import free_port

HTTP_RECIPE = """\
name: httpserver
category: inference
description: python's http.server, a native process that serves the health path
version: "1"
runtime: native
command: [{python}, -m, http.server, "{{port}}", --bind, 127.0.0.1]
ports:
  http: {port}
resources:
  nodes: 1
  cpus_per_task: 1
  memory: 256M
  time_limit: "00:10:00"
  partition: cpu
health:
  path: /
  timeout: {health_timeout}
  interval: 0.2
"""


def write_test_recipes(root: Path, *, port: int, health_timeout: float = 30) -> Path:
    (root / "inference").mkdir(parents=True, exist_ok=True)
    (root / "inference" / "httpserver.yaml").write_text(
        HTTP_RECIPE.format(python=sys.executable, port=port, health_timeout=health_timeout)
    )
    return root


#: The ingress token the test servers are given (the ingress always requires one).
TEST_TOKEN = "test-token-not-a-secret"
AUTH = {"Authorization": f"Bearer {TEST_TOKEN}"}


def api_client() -> httpx.AsyncClient:
    """An HTTP client that presents the test servers' token."""
    return httpx.AsyncClient(headers=AUTH)


class ServerProcess:
    def __init__(self, tmp: Path, nats_url: str, *, executor: str, **env: str) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "server.log"
        self.env = {
            **os.environ,
            "AIFACTORY_NATS_URL": nats_url,
            "AIFACTORY_STATE_DIR": str(tmp / "state"),
            "AIFACTORY_JOBS_DIR": str(tmp / "jobs"),
            "AIFACTORY_RECIPES_DIR": str(tmp / "recipes"),
            "AIFACTORY_EXECUTOR": executor,
            "AIFACTORY_INGRESS_PORT": str(self.port),
            "AIFACTORY_POLL_INTERVAL": "0.3",
            "AIFACTORY_HEALTH_INTERVAL": "0.2",
            "AIFACTORY_COMMAND_ACK_WAIT": "3",
            "AIFACTORY_SUBMIT_GRACE": "4",
            "AIFACTORY_API_TOKEN": TEST_TOKEN,
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aifactory.services.server"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 45  # generous: CI machines are slow
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.base + "/health", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not healthy: {self.log.read_text()[-3000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def wait_for_state(
    client: httpx.AsyncClient, base: str, service_id: str, states: set[str], timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await client.get(f"{base}/api/v1/services/{service_id}")
        if response.status_code == 200:
            last = response.json()
            if last["state"] in states:
                return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"{service_id} never reached {states}; last: {last}")


async def event_subjects(nats_url: str, service_id: str) -> list[str]:
    """Every event subject published for ``service_id``, in stream order."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(">", stream=subjects.EVENTS_STREAM, ordered_consumer=True)
        seen: list[str] = []
        while True:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except nats.errors.TimeoutError:
                return seen
            if json.loads(msg.data).get("service_id") == service_id:
                seen.append(msg.subject)
    finally:
        await nc.close()


CLI = [sys.executable, "-m", "aifactory.cli.main"]


class UpStack:
    """A running ``aifactory up`` (as a user starts it) and the environment to talk to it."""

    def __init__(self, env: dict[str, str], ingress: str, service_port: int) -> None:
        self.env = env
        self.ingress = ingress
        self.service_port = service_port
        self.returncode: int | None = None
        self.output = ""

    @property
    def headers(self) -> dict[str, str]:
        """The generated ingress token, read where the CLI reads it."""
        credentials = load_credentials(Path(self.env["AIFACTORY_STATE_DIR"]))
        assert credentials is not None, "aifactory up made no credentials"
        return {"Authorization": f"Bearer {credentials.api_token.get_secret_value()}"}

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )


@contextlib.contextmanager
def aifactory_up(
    tmp_path: Path, *up_args: str, env_extra: dict[str, str] | None = None
) -> Iterator[UpStack]:
    """``aifactory up`` in the background with its own state, recipes and ports; Ctrl-C on
    exit (``returncode`` and ``output`` are set afterwards)."""
    service_port = free_port()
    write_test_recipes(tmp_path / "recipes", port=service_port)
    ingress = free_port()
    env = {
        **os.environ,
        "AIFACTORY_STATE_DIR": str(tmp_path / "state"),
        "AIFACTORY_RECIPES_DIR": str(tmp_path / "recipes"),
        "AIFACTORY_NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "AIFACTORY_INGRESS_PORT": str(ingress),
        "AIFACTORY_CLIENT_PORT": str(free_port()),
        "AIFACTORY_LOGS_PORT": str(free_port()),
        "AIFACTORY_POLL_INTERVAL": "0.3",
        **(env_extra or {}),
    }
    up = subprocess.Popen(
        [*CLI, "up", *up_args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    stack = UpStack(env, f"http://127.0.0.1:{ingress}", service_port)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{stack.ingress}/health", timeout=0.5).is_success:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield stack
    finally:
        up.send_signal(signal.SIGINT)
        out, _ = up.communicate(timeout=40)
        stack.returncode, stack.output = up.returncode, out.decode(errors="replace")
