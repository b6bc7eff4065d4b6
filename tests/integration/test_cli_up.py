"""``aifactory up`` + ``aifactory deploy --wait`` as a user runs them; Ctrl-C leaves nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from aifactory.shared.natsd import free_port
from tests.integration.server_stack import write_test_recipes

pytestmark = pytest.mark.nats


def _procs_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in cmdline or text in environ:
            found.append(int(entry.name))
    return found


def test_up_deploy_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
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
        "AIFACTORY_POLL_INTERVAL": "0.3",
    }
    cli = [sys.executable, "-m", "aifactory.cli.main"]
    up = subprocess.Popen([*cli, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{ingress}/health", timeout=0.5).is_success:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        deploy = subprocess.run(
            [*cli, "deploy", "inference/httpserver", "--wait", "--timeout", "40"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        assert f"http://127.0.0.1:{service_port}" in deploy.stdout
        assert httpx.get(f"http://127.0.0.1:{service_port}/").status_code == 200
        listing = subprocess.run(
            [*cli, "services", "ls"], env=env, capture_output=True, text=True, timeout=30
        )
        assert "running" in listing.stdout
        service_id = deploy.stdout.split("deploy requested: service ", 1)[1].split()[0]
        output = subprocess.run(
            [*cli, "services", "logs", service_id, "-n", "5"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "aifactory: job" in output.stdout, output.stdout + output.stderr

        bad = subprocess.run(
            [*cli, "deploy", "inference/httpserver", "--set", "resources.gpus=1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert bad.returncode != 0
        assert "resources.gpus" in bad.stderr and "valid keys" in bad.stderr
    finally:
        up.send_signal(signal.SIGINT)
        out, _ = up.communicate(timeout=40)
    assert up.returncode == 0, out.decode()
    assert b"stopped." in out
    state_dir = str(tmp_path / "state")
    assert _procs_mentioning(state_dir) == []  # no nats-server, service or job left behind
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{service_port}/", timeout=1)
