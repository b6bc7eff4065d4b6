"""The server service with ``slurm+ssh``: a simulator deployed on the real cluster through a
real sshd, reached through the tunnel the server opens, benchmarked through it.

One deployment carries the whole story (jobs are scarce on the 2-CPU test cluster): the
endpoint's two URLs, a health check and an ingress prompt through the tunnel, a benchmark
from "the laptop" resolved by service id, the tunnel surviving an sshd restart and a server
restart on the same local port, and closing when the service ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from aifactory.shared.natsd import EmbeddedNats, free_port
from aifactory.shared.settings import PACKAGE_ROOT
from tests.integration.server_stack import CLI, ServerProcess, api_client, wait_for_state
from tests.integration.sshd import LocalSshd, slurm_ready, sshd  # noqa: F401 - fixture

pytestmark = [pytest.mark.slurm, pytest.mark.nats]

AIFACTORY = str(Path(sys.executable).with_name("aifactory"))


def simulator_overrides(port: int) -> dict[str, object]:
    """The shipped recipe, with this checkout's ``aifactory`` (a job's PATH is the login
    shell's, which has no virtual environment) and a free port."""
    return {
        "command": [AIFACTORY, "simulate", "--host", "0.0.0.0", "--port", "{port}",
                    "--model", "{model}"],
        "extra_args": ["--ttft-ms", "5", "--itl-ms", "1"],
        "ports": {"http": port},
        "resources": {"time_limit": "00:10:00"},
        "health": {"interval": 0.3},
    }  # fmt: skip


async def healthy(url: str, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(url + "/health", timeout=2)).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    return False


async def refused(url: str, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                await client.get(url + "/health", timeout=2)
            except httpx.ConnectError:
                return True
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    return False


async def test_ssh_tunnel_to_deployed_simulator_with_benchmark_through_it(
    nats_server: EmbeddedNats,
    sshd: LocalSshd,  # noqa: F811
    tmp_path: Path,
) -> None:
    slurm_ready()
    jobs = Path(f"/tmp/aifactory-ssh-tunnel-{os.getpid()}-{time.monotonic_ns()}")
    env = {
        **sshd.service_env(),
        "AIFACTORY_JOBS_DIR": str(jobs),
        "AIFACTORY_RECIPES_DIR": str(PACKAGE_ROOT / "recipes"),
    }
    server = ServerProcess(tmp_path, nats_server.url, executor="slurm+ssh", **env).start()
    port = free_port()
    job_id = None
    try:
        async with api_client() as client:
            created = await client.post(
                f"{server.base}/api/v1/services",
                json={"recipe": "inference/simulator", "overrides": simulator_overrides(port)},
            )
            assert created.status_code == 202, created.text
            service_id = created.json()["service_id"]
            record = await wait_for_state(client, server.base, service_id, {"running"}, 120)
            job_id = record["job_id"]
            [endpoint] = record["endpoints"]
            assert endpoint["url"] == f"http://{record['nodes'][0]}:{port}"
            local = endpoint["local_url"]
            local_port = urlsplit(local).port
            assert urlsplit(local).hostname == "127.0.0.1" and local_port not in (None, port)
            assert await healthy(local)

            answer = await client.post(
                f"{server.base}/api/v1/services/{service_id}/prompt",
                json={"prompt": "hello", "max_tokens": 3},
            )
            assert answer.status_code == 200, answer.text

            out = tmp_path / "bench"
            bench_env = {**os.environ, "AIFACTORY_NATS_URL": nats_server.url,
                         "AIFACTORY_STATE_DIR": str(tmp_path / "cli-state")}  # fmt: skip
            ran = subprocess.run(
                [*CLI, "bench", "run", "--target", service_id, "--profile", "concurrency",
                 "--concurrency", "4", "--requests", "40", "--workers", "1",
                 "--output-tokens-mean", "8", "--no-progress", "--out", str(out)],
                env=bench_env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert ran.returncode == 0, ran.stdout + ran.stderr
            summary = json.loads((out / "summary.json").read_text())
            assert summary["target"].rstrip("/").startswith(local)
            [run] = summary["runs"]
            assert (run["requests_ok"], run["requests_failed"]) == (40, 0), run

            sshd.restart()  # the connection and the forward drop; the forward comes back
            assert await healthy(local), "the tunnel did not come back after an sshd restart"

            server.stop()  # a new server process re-opens it on the same local port
            server = ServerProcess(tmp_path, nats_server.url, executor="slurm+ssh", **env)
            server.start()
            assert await healthy(local), "reconcile did not re-open the tunnel"
            again = (await client.get(f"{server.base}/api/v1/services/{service_id}")).json()
            assert again["endpoints"][0]["local_url"] == local

            await client.delete(f"{server.base}/api/v1/services/{service_id}")
            await wait_for_state(client, server.base, service_id, {"cancelled"}, 60)
            assert await refused(local), "the tunnel outlived its service"
    finally:
        server.stop()
        if job_id is not None:
            subprocess.run(["scancel", job_id], capture_output=True, timeout=30)
        shutil.rmtree(jobs, ignore_errors=True)
