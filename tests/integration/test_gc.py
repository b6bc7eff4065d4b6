"""``aifactory gc`` on real folders: the real SLURM cluster, a real JetStream registry, real
local jobs, and the server applying the policy by itself.

Folders are aged with ``os.utime`` (a retention test cannot wait 30 days); everything else
(job states, registry records, links) is what the stack produces.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aifactory import gc
from aifactory.gc.policy import DAY
from aifactory.shared.bus import ensure_topology, make_broker
from aifactory.shared.executors.local import LocalExecutor
from aifactory.shared.executors.slurm import SlurmExecutor
from aifactory.shared.natsd import EmbeddedNats, free_port
from aifactory.shared.registry import KVRegistry, ServiceRecord
from aifactory.shared.settings import RetentionPolicy, Settings
from aifactory.shared.states import JobState, ServiceState
from tests.integration.server_stack import ServerProcess
from tests.integration.slurmkit import slurm_up

BASH = "#!/bin/bash\n#SBATCH -c 1\n"
CLI = [sys.executable, "-m", "aifactory.cli.main", "gc"]
POLICY = RetentionPolicy(max_age_days=30)


def age(path: Path, days: float) -> None:
    """Make every entry of ``path`` look ``days`` old (links themselves, not their targets)."""
    moment = time.time() - days * DAY
    for parent, dirs, files in os.walk(path):
        for name in dirs + files:
            os.utime(Path(parent) / name, (moment, moment), follow_symlinks=False)
    os.utime(path, (moment, moment))


def days_ago(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


async def until_state(executor: SlurmExecutor, job_id: str, done: bool) -> JobState:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = (await executor.states([job_id]))[job_id].state
        if state.is_terminal == done and (done or state is JobState.RUNNING):
            return state
        await asyncio.sleep(0.3)
    raise AssertionError(f"job {job_id} never {'ended' if done else 'ran'}")


@pytest.mark.slurm
async def test_slurm_live_kept_finished_removed_forgotten_kept_dry_run_removes_nothing(
    jobs_dir: Path, tmp_path: Path
) -> None:
    slurm_up()
    executor = SlurmExecutor()
    live = await executor.submit(BASH + "sleep 300\n", "aif-gclive", jobs_dir / "gclive")
    try:
        done = await executor.submit(BASH + "echo done\n", "aif-gcdone", jobs_dir / "gcdone")
        assert await until_state(executor, done.job_id, done=True) is JobState.COMPLETED
        await until_state(executor, live.job_id, done=False)
        # A folder whose job SLURM has forgotten, and no accounting here: nobody can tell.
        forgotten = jobs_dir / "gcforgotten"
        forgotten.mkdir()
        (forgotten / "aif-gcforgotten.sh").write_text(BASH)
        (forgotten / "aif-gcforgotten-67000000.out").write_text("old output\n")
        for name in ("gclive", "gcdone", "gcforgotten"):
            age(jobs_dir / name, 40)

        env = {
            **os.environ,
            "AIFACTORY_EXECUTOR": "slurm",
            "AIFACTORY_JOBS_DIR": str(jobs_dir),
            "AIFACTORY_STATE_DIR": str(tmp_path / "state"),
            "AIFACTORY_NATS_URL": f"nats://127.0.0.1:{free_port()}",  # no stack: no registry
            "COLUMNS": "200",
        }
        dry = subprocess.run(
            [*CLI, "--what", "jobs", "-v"], env=env, capture_output=True, text=True, timeout=60
        )
        assert dry.returncode == 0, dry.stderr
        assert "registry unavailable" in dry.stdout
        assert "would remove 1" in dry.stdout and "dry run" in dry.stdout
        assert sorted(p.name for p in jobs_dir.iterdir()) == ["gcdone", "gcforgotten", "gclive"]
        rows = [line for line in dry.stdout.splitlines() if "│" in line]
        lines = {row.split("│")[1].strip(): row for row in rows}
        assert "live" in lines["gclive"] and f"job {live.job_id}" in lines["gclive"]
        assert "unknown" in lines["gcforgotten"] and "vanished" in lines["gcforgotten"]
        assert "remove" in lines["gcdone"] and "completed" in lines["gcdone"]

        applied = subprocess.run(
            [*CLI, "--what", "jobs", "--apply"], env=env, capture_output=True, text=True, timeout=60
        )
        assert applied.returncode == 0, applied.stderr
        assert "removed 1" in applied.stdout
        assert sorted(p.name for p in jobs_dir.iterdir()) == ["gcforgotten", "gclive"]
        assert (jobs_dir / "gclive" / "aif-gclive.sh").is_file()
    finally:
        await executor.cancel(live.job_id)


@pytest.mark.nats
async def test_registry_and_local_jobs_decide_and_links_are_never_followed(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    settings = Settings(nats_url=nats_server.url, state_dir=tmp_path / "state")
    root = settings.effective_jobs_dir
    outside = tmp_path / "precious"
    outside.mkdir(parents=True)
    (outside / "results.csv").write_text("keep me\n")
    broker = make_broker(settings, name="gc-test")
    await broker.connect()
    executor = LocalExecutor(tmp_path / "state" / "local-executor")
    try:
        topology = await ensure_topology(broker.connection.jetstream())
        services = KVRegistry(topology.services, ServiceRecord)

        async def record(service_id: str, state: ServiceState, job_id: str | None = None) -> None:
            """A record as the server leaves it, its end (if any) 45 days ago."""
            entry = ServiceRecord(
                service_id=service_id,
                recipe="inference/simulator",
                request_id=service_id,
                job_name=f"aif-{service_id}",
                executor="local",
                workdir=str(root / service_id),
                job_id=job_id,
            )
            entry.set_state(state)
            if entry.ended is not None:
                entry.ended = days_ago(45)
            await services.create(service_id, entry)

        # Ended per the registry, old: goes. It holds a link out of the root: only the link
        # goes with it.
        (root / "ended").mkdir(parents=True)
        (root / "ended" / "aif-ended.sh").write_text("#!/bin/sh\n")
        (root / "ended" / "escape").symlink_to(outside)
        await record("ended", ServiceState.COMPLETED)
        # Running per the registry, no job id yet (queued): stays, however old.
        (root / "queued").mkdir()
        await record("queued", ServiceState.PENDING)
        # The registry says failed, but its local job still runs: stays.
        sleeper = await executor.submit("#!/bin/sh\nsleep 60\n", "aif-stubborn", root / "stubborn")
        await record("stubborn", ServiceState.FAILED, sleeper.job_id)
        # A link in the root to a folder full of old things: never followed, never removed.
        (root / "elsewhere").symlink_to(outside)
        # No record at all, no job id: unknown.
        (root / "stray").mkdir()
        for name in ("ended", "queued", "stubborn", "stray"):
            age(root / name, 45)
        age(outside, 45)

        registries = await gc.Registries.read(services, None)
        plan = await gc.plan(gc.Kind.JOBS, root, POLICY, registries=registries, executor=executor)
        seen = {f.name: (f.evidence.state, f.action) for f in plan.folders}
        assert seen == {
            "elsewhere": (gc.FolderState.SKIPPED, gc.Action.KEEP),
            "ended": (gc.FolderState.ENDED, gc.Action.REMOVE),
            "queued": (gc.FolderState.LIVE, gc.Action.KEEP),
            "stray": (gc.FolderState.UNKNOWN, gc.Action.KEEP),
            "stubborn": (gc.FolderState.LIVE, gc.Action.KEEP),
        }
        assert all(p.exists() for p in (root / "ended", root / "stray"))  # planning only
        outcome = await gc.apply(plan)
        assert [f.name for f in outcome.removed] == ["ended"] and not outcome.failed
        assert outcome.bytes_freed > 0
        left = sorted(p.name for p in root.iterdir())
        assert left == ["elsewhere", "queued", "stray", "stubborn"]
        assert (outside / "results.csv").read_text() == "keep me\n"
        assert (root / "elsewhere").is_symlink()
    finally:
        await executor.stop_with_stack()
        await broker.stop()


@pytest.mark.nats
async def test_the_server_applies_the_policy_by_itself(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    jobs = tmp_path / "jobs"
    (jobs / "oldsvc").mkdir(parents=True)
    (jobs / "oldsvc" / "aif-oldsvc-3.out").write_text("finished long ago\n")
    (jobs / "newsvc").mkdir()
    age(jobs / "oldsvc", 40)
    broker = make_broker(Settings(nats_url=nats_server.url), name="gc-test")
    await broker.connect()
    try:
        services = KVRegistry(
            (await ensure_topology(broker.connection.jetstream())).services, ServiceRecord
        )
        for name in ("oldsvc", "newsvc"):
            entry = ServiceRecord(
                service_id=name,
                recipe="inference/x",
                request_id=name,
                job_name=f"aif-{name}",
                executor="local",
                workdir=str(jobs / name),
            )
            entry.set_state(ServiceState.CANCELLED)
            entry.ended = days_ago(40 if name == "oldsvc" else 0)
            await services.create(name, entry)
    finally:
        await broker.stop()
    (tmp_path / "recipes").mkdir()
    server = ServerProcess(
        tmp_path, nats_server.url, executor="local", AIFACTORY_RETENTION__INTERVAL_HOURS="0.0003"
    ).start()
    try:
        deadline = time.monotonic() + 20
        while (jobs / "oldsvc").exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert not (jobs / "oldsvc").exists(), server.log.read_text()[-2000:]
        assert (jobs / "newsvc").is_dir()
    finally:
        server.stop()
