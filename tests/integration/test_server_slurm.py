"""The server service on the real single-node SLURM (deploy/local-slurm)."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import nats
import pytest

from aifactory.services.server.lifecycle import Lifecycle, job_name_for
from aifactory.services.server.metrics import ServerMetrics
from aifactory.services.server.tracker import Tracker
from aifactory.shared import subjects
from aifactory.shared.bus import ensure_topology, make_broker
from aifactory.shared.executors.slurm import SlurmExecutor
from aifactory.shared.messages import DeployRequested
from aifactory.shared.natsd import EmbeddedNats, free_port
from aifactory.shared.recipes import load_recipe
from aifactory.shared.registry import KVRegistry, ServiceRecord
from aifactory.shared.settings import Settings
from aifactory.shared.states import JobState, ServiceState
from tests.integration.server_stack import (
    ServerProcess,
    api_client,
    wait_for_state,
    write_test_recipes,
)
from tests.integration.slurmkit import slurm_up, squeue

pytestmark = [pytest.mark.slurm, pytest.mark.nats]


@pytest.fixture(scope="module", autouse=True)
def _slurm() -> None:
    slurm_up()


async def test_deploy_on_slurm_goes_pending_starting_running_then_cancel(
    nats_server: EmbeddedNats, tmp_path: Path, jobs_dir: Path
) -> None:
    write_test_recipes(tmp_path / "recipes", port=free_port())
    server = ServerProcess(
        tmp_path, nats_server.url, executor="slurm", AIFACTORY_JOBS_DIR=str(jobs_dir)
    ).start()
    try:
        async with api_client() as client:
            created = await client.post(
                f"{server.base}/api/v1/services", json={"recipe": "inference/httpserver"}
            )
            service_id = created.json()["service_id"]
            record = await wait_for_state(client, server.base, service_id, {"running"}, 60)
            states = [change["state"] for change in record["history"]]
            assert states == ["pending", "starting", "running"], record["history"]
            job_id = record["job_id"]
            assert squeue("-j", job_id, "-o", "%T") == ["RUNNING"]
            [endpoint] = record["endpoints"]
            assert (await client.get(endpoint["url"] + "/", timeout=5)).status_code == 200

            await client.delete(f"{server.base}/api/v1/services/{service_id}")
            record = await wait_for_state(client, server.base, service_id, {"cancelled"}, 60)
            assert record["job_state"] == "cancelled"
            assert squeue("-j", job_id) == []  # left the queue (default states)
    finally:
        server.stop()


async def test_kill9_during_deploy_then_restart_leaves_exactly_one_job(
    nats_server: EmbeddedNats, tmp_path: Path, jobs_dir: Path
) -> None:
    write_test_recipes(tmp_path / "recipes", port=free_port())
    # A slow sbatch makes the crash land while the submission is in flight.
    shim = tmp_path / "bin"
    shim.mkdir()
    real = shutil.which("sbatch")
    (shim / "sbatch").write_text(f'#!/bin/bash\nsleep 1.5\nexec {real} "$@"\n')
    (shim / "sbatch").chmod(0o755)
    env = {"AIFACTORY_JOBS_DIR": str(jobs_dir), "AIFACTORY_SLURM__BIN_DIR": str(shim)}
    server = ServerProcess(tmp_path, nats_server.url, executor="slurm", **env).start()
    service_id = f"crash{time.monotonic_ns() % 10**9}"
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        cmd = DeployRequested(service_id=service_id, recipe="inference/httpserver")
        await js.publish(
            subjects.DEPLOY_REQUESTED.subject(),
            cmd.model_dump_json().encode(),
            headers={"Nats-Msg-Id": cmd.id},
        )
        kv = await js.key_value("aif_services")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # wait until the record exists: sbatch is running
            try:
                await kv.get(service_id)
                break
            except nats.js.errors.KeyNotFoundError:
                await asyncio.sleep(0.05)
        server.kill9()
        # The same command arrives again too, as a client retrying would send it.
        await js.publish(
            subjects.DEPLOY_REQUESTED.subject(),
            cmd.model_dump_json().encode(),
            headers={"Nats-Msg-Id": cmd.id},
        )
    finally:
        await nc.close()

    server = ServerProcess(tmp_path, nats_server.url, executor="slurm", **env)
    server.port, server.base = server.port, server.base
    server.start()
    try:
        async with api_client() as client:
            record = await wait_for_state(client, server.base, service_id, {"running"}, 60)
            jobs = squeue("--states=all", f"--name={job_name_for(service_id)}", "-o", "%i %T")
            assert len(jobs) == 1, jobs
            job_id, slurm_state = jobs[0].split()
            assert record["job_id"] == job_id
            assert slurm_state == "RUNNING" and record["job_state"] == "running"
            await client.delete(f"{server.base}/api/v1/services/{service_id}")
            await wait_for_state(client, server.base, service_id, {"cancelled"}, 60)
    finally:
        server.stop()


async def test_200_tracked_jobs_cost_one_squeue_per_poll(
    nats_server: EmbeddedNats, tmp_path: Path, jobs_dir: Path
) -> None:
    settings = Settings(
        nats_url=nats_server.url,
        state_dir=tmp_path,
        jobs_dir=jobs_dir,
        executor="slurm",
    )
    broker = make_broker(settings, name="test")
    await broker.connect()
    executor = SlurmExecutor()
    try:
        topo = await ensure_topology(broker.connection.jetstream())
        registry = KVRegistry(topo.services, ServiceRecord)
        lifecycle = Lifecycle(
            settings=settings,
            broker=broker,
            executor=executor,
            registry=registry,
            metrics=ServerMetrics(),
        )
        # Two real jobs and 198 ids SLURM has never heard of.
        real_ids = []
        for i in range(2):
            job = await executor.submit(
                "#!/bin/bash\n#SBATCH --time=00:02:00\nsleep 60\n", f"aif-poll{i}", jobs_dir
            )
            real_ids.append(job.job_id)
        ids = real_ids + [str(9_000_000 + i) for i in range(198)]
        spec = load_recipe("inference/simulator", settings.recipes_dir)
        for i, job_id in enumerate(ids):
            sid = f"poll{i}"
            await registry.create(
                sid,
                ServiceRecord(
                    service_id=sid,
                    recipe="inference/httpserver",
                    request_id=sid,
                    job_name=f"aif-{sid}",
                    executor="slurm",
                    workdir=str(jobs_dir),
                    job_id=job_id,
                    job_state=JobState.PENDING,
                    spec=spec,
                ),
            )
            lifecycle.tracked.add(sid)
        tracker = Tracker(lifecycle)
        before = executor.calls["squeue"]
        async with api_client() as client:
            await tracker.poll_once(client)
            assert executor.calls["squeue"] - before == 1
            await tracker.poll_once(client)
            assert executor.calls["squeue"] - before == 2
        vanished = await registry.get("poll5")
        assert vanished is not None and vanished[0].state is ServiceState.FAILED
        assert vanished[0].job_state is JobState.VANISHED
        for job_id in real_ids:
            await executor.cancel(job_id)
    finally:
        await broker.stop()
