"""The job script's exporters (``_exporters.sh.j2``), run for real: Debian's node exporter
and a stand-in dcgm-exporter start on free ports, the ports land in exporters-<i>.json, and
everything stops with the job. Multi-node jobs start them on every node through srun."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aifactory.shared.connection import NodeExporters, exporters_path, parse_exporters
from aifactory.shared.recipes import load_recipe
from tests.conftest import need_tool
from tests.shellkit import ROOT, render, write

pytestmark = pytest.mark.tools

#: dcgm-exporter stand-in: records its argv, listens on the --address port it was given.
FAKE_DCGM = """#!/bin/bash
printf '%s\\n' "$@" > "$AIF_CAPTURE/dcgm-exporter.argv"
port=${1##*:}
exec python3 -c 'import socket,sys,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(8)
while True: s.accept()[0].close()' "$port"
"""
#: srun stand-in: records its options, runs the command as node 1 of the job.
FAKE_SRUN = """#!/bin/bash
printf '%s\\n' "$@" > "$AIF_CAPTURE/srun.argv"
while [[ $1 == --* ]]; do shift; done
SLURM_NODEID=1 exec "$@"
"""


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(condition: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.fixture
def fakes(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    need_tool("prometheus-node-exporter")
    capture = tmp_path / "capture"
    capture.mkdir()
    write(tmp_path / "bin" / "dcgm-exporter", FAKE_DCGM, 0o755)
    write(tmp_path / "bin" / "srun", FAKE_SRUN, 0o755)
    env = {
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "AIF_CAPTURE": str(capture),
        "HOME": str(tmp_path),
    }
    return capture, env


@pytest.fixture
def job(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:  # whatever the test left running, by its own process group
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start(
    tmp: Path, env: dict[str, str], overrides: dict[str, Any], started: list[Any]
) -> tuple[subprocess.Popen[bytes], Path]:
    base = {"runtime": "native", "command": ["sleep", "3"], "extra_args": []}
    recipe = load_recipe("inference/simulator", ROOT, {**base, **overrides})
    workdir = tmp / "work"
    script = write(tmp / "job.sh", render(recipe, workdir))
    proc = subprocess.Popen(
        [need_tool("bash"), str(script)],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started.append(proc)
    return proc, workdir


def test_exporters_start_on_free_ports_and_stop_with_the_job(
    tmp_path: Path, fakes: tuple[Path, dict[str, str]], job: list[Any]
) -> None:
    capture, env = fakes
    proc, workdir = start(tmp_path, env, {"resources": {"gpu": 1}}, job)
    path = exporters_path(workdir, 0)
    wait_for(path.exists, "exporters-0.json was not written")
    found = parse_exporters(path.read_text())
    assert found.node_index == 0 and found.host
    assert found.node_exporter_port and found.dcgm_exporter_port
    assert listening(found.node_exporter_port) and listening(found.dcgm_exporter_port)
    argv = (capture / "dcgm-exporter.argv").read_text().split()
    assert argv == [f"--address=:{found.dcgm_exporter_port}"]
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output.decode()
    assert b"starting metrics exporters" in output
    assert b"exporters on" not in output  # their chatter goes to their own log
    assert b"exporters on" in (workdir / "exporters-0.log").read_bytes()
    wait_for(
        lambda: (
            not listening(found.node_exporter_port or 0)
            and not listening(found.dcgm_exporter_port or 0)
        ),
        "the exporters outlived the job",
    )


def test_a_sites_running_exporter_is_recorded_not_started(
    tmp_path: Path, fakes: tuple[Path, dict[str, str]], job: list[Any]
) -> None:
    _, env = fakes
    monitoring = {"node_exporter_port": 9100, "dcgm_exporter": False}
    proc, workdir = start(tmp_path, env, {"resources": {"gpu": 2}, "monitoring": monitoring}, job)
    path = exporters_path(workdir, 0)
    wait_for(path.exists, "exporters-0.json was not written")
    assert parse_exporters(path.read_text()) == NodeExporters(
        node_index=0, host=parse_exporters(path.read_text()).host, node_exporter_port=9100
    )
    proc.communicate(timeout=30)


def test_monitoring_off_starts_nothing(
    tmp_path: Path, fakes: tuple[Path, dict[str, str]], job: list[Any]
) -> None:
    _, env = fakes
    proc, workdir = start(tmp_path, env, {"monitoring": {"enabled": False}}, job)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and b"exporters" not in output
    assert not list(workdir.glob("exporters-*"))


def test_multinode_jobs_start_them_on_every_node_through_srun(
    tmp_path: Path, fakes: tuple[Path, dict[str, str]], job: list[Any]
) -> None:
    capture, env = fakes
    env |= {"SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_ID": "77"}
    proc, workdir = start(tmp_path, env, {}, job)
    path = exporters_path(workdir, 1)  # the fake srun runs it as node 1
    wait_for(path.exists, "exporters-1.json was not written")
    srun = (capture / "srun.argv").read_text()
    assert srun.splitlines()[:6] == [
        "--overlap",
        "--nodes=2",
        "--ntasks=2",
        "--ntasks-per-node=1",
        "bash",
        "-c",
    ]
    assert srun.rstrip().endswith("aif_exporters 0")
    assert parse_exporters(path.read_text()).node_exporter_port
    proc.communicate(timeout=30)
