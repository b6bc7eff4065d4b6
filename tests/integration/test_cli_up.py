"""``aifactory up`` + ``aifactory deploy --wait`` as a user runs them; Ctrl-C leaves nothing."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.server_stack import aifactory_up

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
    with aifactory_up(tmp_path) as stack:
        deploy = stack.cli("deploy", "inference/httpserver", "--wait", "--timeout", "40")
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        assert f"http://127.0.0.1:{stack.service_port}" in deploy.stdout
        assert httpx.get(f"http://127.0.0.1:{stack.service_port}/").status_code == 200
        assert "running" in stack.cli("services", "ls", timeout=30).stdout
        service_id = deploy.stdout.split("deploy requested: service ", 1)[1].split()[0]
        output = stack.cli("services", "logs", service_id, "-n", "20", timeout=30)
        assert "aifactory: job" in output.stdout, output.stdout + output.stderr
        # `aifactory up` started the monitor: it scrapes the node exporter the job started
        for _ in range(40):
            targets = stack.cli("monitor", "targets", service_id, timeout=30)
            if " node " in targets.stdout and " up " in targets.stdout:
                break
            time.sleep(0.5)
        assert " node " in targets.stdout and " up " in targets.stdout, targets.stdout
        bad = stack.cli("deploy", "inference/httpserver", "--set", "resources.gpus=1", timeout=30)
        assert bad.returncode != 0
        assert "resources.gpus" in bad.stderr and "valid keys" in bad.stderr
    assert stack.returncode == 0, stack.output
    assert "stopped." in stack.output
    state_dir = str(tmp_path / "state")
    assert _procs_mentioning(state_dir) == []  # no nats-server, service or job left behind
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{stack.service_port}/", timeout=1)
