"""Replicas over several nodes, the script run for real with stand-in SLURM commands: node 0
starts the other nodes' share through srun (this same script, AIFACTORY_NODE set), each node
claims its own ports, and node 0 merges every node's replicas into connection.json."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from aifactory.shared.connection import connection_path, parse_connection
from aifactory.shared.recipes import load_recipe
from tests.conftest import need_tool
from tests.integration.test_render_run import FAKE_VLLM, alive
from tests.shellkit import NATIVE, ROOT, render, write

pytestmark = pytest.mark.tools

#: srun on one machine: drop srun's options, run the step here with the caller's environment.
FAKE_SRUN = """#!/bin/bash
while [[ ${1-} == --* ]]; do shift; done
printf '%s\\n' "${AIFACTORY_NODE-}" >> "$AIF_CAPTURE/srun-steps"
exec "$@"
"""
FAKE_SCONTROL = """#!/bin/bash
[[ $1 == show && $2 == hostnames ]] && printf 'node0\\nnode1\\n'
"""


def test_four_replicas_on_two_nodes_each_with_its_own_ports(tmp_path: Path) -> None:
    capture = tmp_path / "capture"
    capture.mkdir()
    for name, body in {"vllm": FAKE_VLLM, "srun": FAKE_SRUN, "scontrol": FAKE_SCONTROL}.items():
        write(tmp_path / "bin" / name, body, 0o755)
    recipe = load_recipe(
        "inference/vllm-replicas",
        ROOT,
        {**NATIVE, "resources": {"nodes": 2, "gpu": 2}, "replicas": {"base_port": 18400}},
    )
    workdir = tmp_path / "work"
    script = write(workdir / "aif-svc-test.sh", render(recipe, workdir, job_name="aif-svc-test"))
    env = {
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "AIF_CAPTURE": str(capture),
        "HOME": str(tmp_path),
        "CUDA_VISIBLE_DEVICES": "0,1",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NODELIST": "node[0-1]",
    }
    proc = subprocess.Popen(
        [need_tool("bash"), str(script)],
        cwd=tmp_path,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while not connection_path(workdir).exists():
            assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        connection = parse_connection(connection_path(workdir).read_text())
        assert connection.job_id == "4242"
        assert [r.index for r in connection.replicas] == [0, 1, 2, 3]
        ports = [r.port for r in connection.replicas]
        # Both "nodes" are this machine here, so node 1's claims skip node 0's ports.
        assert len(set(ports)) == 4 and ports[:2] == [18400, 18401]
        assert (capture / "srun-steps").read_text().split() == ["1"]
        deadline = time.monotonic() + 10
        files = [capture / f"vllm-{port}" for port in ports]
        while not all(f.exists() for f in files):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        gpus = [f.read_text().splitlines()[0] for f in files]
        assert gpus == ["0", "1", "0", "1"]  # each node slices its own GPUs
        pids = [int(f.read_text().splitlines()[1]) for f in files]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 143
        deadline = time.monotonic() + 10
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(p) for p in pids)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
