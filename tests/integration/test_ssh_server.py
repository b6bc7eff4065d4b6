"""The server service with ``slurm+ssh``, killed with SIGKILL while ``sbatch`` runs over ssh:
after a restart there is exactly one job for the service (found again by its name)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path

import nats
import pytest

from aifactory.services.server.lifecycle import job_name_for
from aifactory.shared import subjects
from aifactory.shared.messages import DeployRequested
from aifactory.shared.natsd import EmbeddedNats, free_port
from tests.integration.server_stack import (
    ServerProcess,
    api_client,
    wait_for_state,
    write_test_recipes,
)
from tests.integration.sshd import LocalSshd, slurm_ready, sshd  # noqa: F401 - fixture

pytestmark = [pytest.mark.slurm, pytest.mark.nats]


def squeue(*args: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", *args], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


async def test_ssh_kill9_of_server_mid_submit_leaves_exactly_one_job(
    nats_server: EmbeddedNats,
    sshd: LocalSshd,  # noqa: F811
    tmp_path: Path,
) -> None:
    slurm_ready()
    write_test_recipes(tmp_path / "recipes", port=free_port())
    # The "login node's" SLURM commands, with an sbatch slow enough to be killed mid-way.
    shim = tmp_path / "bin"
    shim.mkdir()
    for command in ("squeue", "scancel", "sacct"):
        found = shutil.which(command)
        assert found is not None
        (shim / command).symlink_to(found)
    real = shutil.which("sbatch")
    (shim / "sbatch").write_text(f'#!/bin/bash\nsleep 1.5\nexec {real} "$@"\n')
    (shim / "sbatch").chmod(0o755)
    jobs = Path(f"/tmp/aifactory-ssh-kill9-{os.getpid()}-{time.monotonic_ns()}")
    env = {
        **sshd.service_env(),
        "AIFACTORY_JOBS_DIR": str(jobs),
        "AIFACTORY_SLURM__BIN_DIR": str(shim),
    }
    server = ServerProcess(tmp_path, nats_server.url, executor="slurm+ssh", **env).start()
    service_id = f"sshcrash{time.monotonic_ns() % 10**9}"
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        cmd = DeployRequested(service_id=service_id, recipe="inference/httpserver")
        headers = {"Nats-Msg-Id": cmd.id}
        await js.publish(
            subjects.DEPLOY_REQUESTED.subject(), cmd.model_dump_json().encode(), headers=headers
        )
        kv = await js.key_value("aif_services")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the record exists: the upload or sbatch runs
            try:
                await kv.get(service_id)
                break
            except nats.js.errors.KeyNotFoundError:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # into the slow sbatch
        server.kill9()
        await js.publish(  # and the command again, as a retrying client would send it
            subjects.DEPLOY_REQUESTED.subject(), cmd.model_dump_json().encode(), headers=headers
        )
    finally:
        await nc.close()

    server = ServerProcess(tmp_path, nats_server.url, executor="slurm+ssh", **env).start()
    name = job_name_for(service_id)
    try:
        async with api_client() as client:
            record = await wait_for_state(client, server.base, service_id, {"running"}, 90)
            found = squeue("--states=all", f"--name={name}", "-o", "%i %T")
            assert len(found) == 1, found
            job_id, slurm_state = found[0].split()
            assert record["job_id"] == job_id and slurm_state == "RUNNING"
            await client.delete(f"{server.base}/api/v1/services/{service_id}")
            await wait_for_state(client, server.base, service_id, {"cancelled"}, 60)
    finally:
        server.stop()
        leftover = squeue("--states=all", f"--name={name}", "-o", "%i")
        if leftover:
            subprocess.run(["scancel", *leftover], capture_output=True, timeout=30)
        shutil.rmtree(jobs, ignore_errors=True)
