"""The ``local`` executor with real processes: states, cancel, time limit, restarts."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from aifactory.shared.executors.base import ExecutorError, InvalidJobName, JobStatus
from aifactory.shared.executors.factory import make_executor
from aifactory.shared.executors.local import LocalExecutor
from aifactory.shared.executors.slurm import SlurmExecutor
from aifactory.shared.settings import Settings
from aifactory.shared.states import JobState

BASH = "#!/bin/bash\n"


async def wait_for(
    executor: LocalExecutor,
    job_id: str,
    predicate: Callable[[JobStatus], bool],
    timeout: float = 10.0,
) -> JobStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = (await executor.states([job_id]))[job_id]
        if predicate(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {status} after {timeout} s")
        await asyncio.sleep(0.05)


def ended(status: JobStatus) -> bool:
    return status.state.is_terminal


def live_members(pgid: int) -> list[int]:
    """Pids in process group ``pgid`` that are not zombies (dead but not yet reaped)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def group_exists(pgid: int, settle: float = 0.0) -> bool:
    """Does the group have a live member (after waiting up to ``settle`` s for it to die)?"""
    deadline = time.monotonic() + settle
    while live_members(pgid):
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.05)
    return False


async def read_pid(path: Path, timeout: float = 5.0) -> int:
    """The job prints ``pid=$$``: bash's pid, which is its process group id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(r"pid=(\d+)", path.read_text() if path.exists() else "")
        if match:
            return int(match.group(1))
        await asyncio.sleep(0.05)
    raise AssertionError(f"no pid in {path}")


@pytest.fixture
def executor(tmp_path: Path) -> LocalExecutor:
    return LocalExecutor(tmp_path / "state")


async def test_cancel_ends_the_whole_process_group(executor: LocalExecutor, tmp_path: Path) -> None:
    job = await executor.submit(BASH + "sleep 60 &\necho pid=$$\nwait\n", "sleeper", tmp_path / "w")
    assert job.script_path == tmp_path / "w" / "sleeper.sh"
    assert job.output_path == tmp_path / "w" / f"sleeper-{job.job_id}.out"
    assert job.script_path.stat().st_mode & 0o777 == 0o700
    running = await wait_for(executor, job.job_id, lambda s: s.state is JobState.RUNNING)
    assert running.nodes == ("127.0.0.1",)
    assert await executor.find_by_name("sleeper") == [job.job_id]
    assert await executor.find_by_name("other") == []
    assert await executor.active_jobs() == [job.job_id]
    pgid = await read_pid(job.output_path)
    assert group_exists(pgid)

    await executor.cancel(job.job_id)
    status = await wait_for(executor, job.job_id, ended)
    assert status.state is JobState.CANCELLED
    assert not group_exists(pgid, settle=3), "the job's background sleep survived the cancel"
    await executor.cancel(job.job_id)  # idempotent
    assert (await executor.states([job.job_id]))[job.job_id].state is JobState.CANCELLED


async def test_exit_code_and_failure(executor: LocalExecutor, tmp_path: Path) -> None:
    failing = await executor.submit(BASH + "echo oops >&2\nexit 3\n", "fails", tmp_path)
    ok = await executor.submit(BASH + "echo fine\n", "works", tmp_path)
    status = await wait_for(executor, failing.job_id, ended)
    assert (status.state, status.exit_code) == (JobState.FAILED, 3)
    assert failing.output_path.read_text() == ""  # stderr has its own file, as with SLURM
    assert failing.error_path is not None and failing.error_path.read_text() == "oops\n"
    done = await wait_for(executor, ok.job_id, ended)
    assert (done.state, done.exit_code) == (JobState.COMPLETED, 0)
    assert int(ok.job_id) > int(failing.job_id)


async def test_time_limit_gives_timeout(executor: LocalExecutor, tmp_path: Path) -> None:
    script = BASH + "#SBATCH --job-name=x\n#SBATCH --time=0:02\nsleep 30\n"
    started = time.monotonic()
    job = await executor.submit(script, "limited", tmp_path)
    status = await wait_for(executor, job.job_id, ended, timeout=10)
    assert status.state is JobState.TIMEOUT
    assert 1.5 < time.monotonic() - started < 8
    assert status.reason is not None and "time limit" in status.reason


async def test_slurm_like_environment(executor: LocalExecutor, tmp_path: Path) -> None:
    names = [
        "SLURM_JOB_ID",
        "SLURM_JOB_NAME",
        "SLURM_JOB_NODELIST",
        "SLURM_NODELIST",
        "SLURM_JOB_NUM_NODES",
        "SLURM_SUBMIT_DIR",
        "SLURM_CPUS_ON_NODE",
        "SLURMD_NODENAME",
    ]
    script = BASH + "".join(f'echo "{name}=${name}"\n' for name in names) + "pwd\n"
    job = await executor.submit(script, "env-check", tmp_path / "wd")
    assert (await wait_for(executor, job.job_id, ended)).state is JobState.COMPLETED
    lines = job.output_path.read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if "=" in line)
    host = socket.gethostname().split(".")[0]
    assert env["SLURM_JOB_ID"] == job.job_id
    assert env["SLURM_JOB_NAME"] == "env-check"
    assert env["SLURM_JOB_NODELIST"] == env["SLURM_NODELIST"] == env["SLURMD_NODENAME"] == host
    assert env["SLURM_JOB_NUM_NODES"] == "1"
    assert env["SLURM_SUBMIT_DIR"] == str(tmp_path / "wd")
    assert int(env["SLURM_CPUS_ON_NODE"]) >= 1
    assert lines[-1] == str(tmp_path / "wd")  # runs in the job directory


async def test_jobs_survive_a_killed_server_and_a_new_executor(tmp_path: Path) -> None:
    """The submitting process is kill -9ed; the job runs on and a new executor sees it."""
    state_dir, workdir = tmp_path / "state", tmp_path / "w"
    server = (
        "import asyncio, sys, time\n"
        "from pathlib import Path\n"
        "from aifactory.shared.executors.local import LocalExecutor\n"
        "async def main():\n"
        f"    ex = LocalExecutor(Path({str(state_dir)!r}))\n"
        "    job = await ex.submit('#!/bin/bash\\nsleep 1.5\\necho done\\n', 'survivor',"
        f" Path({str(workdir)!r}))\n"
        "    print(job.job_id, flush=True)\n"
        "    time.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", server], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        job_id = proc.stdout.readline().strip()
        assert job_id.isdigit()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
    fresh = LocalExecutor(state_dir)
    assert (await fresh.states([job_id]))[job_id].state is JobState.RUNNING
    status = await wait_for(fresh, job_id, ended)
    assert status.state is JobState.COMPLETED
    assert (workdir / f"survivor-{job_id}.out").read_text() == "done\n"
    # Ids keep increasing across executor instances.
    later = await fresh.submit(BASH + "true\n", "later", workdir)
    assert int(later.job_id) == int(job_id) + 1


async def test_dead_runner_means_failed_and_cancel_cleans_up(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    job = await executor.submit(BASH + "echo pid=$$\nsleep 60\n", "orphan", tmp_path)
    pgid = await read_pid(job.output_path)
    os.kill(int(job.extra["runner_pid"]), signal.SIGKILL)
    status = await wait_for(executor, job.job_id, ended)
    assert status.state is JobState.FAILED
    assert status.reason is not None and "runner" in status.reason
    assert group_exists(pgid)  # nobody supervises the job any more...
    await executor.cancel(job.job_id)  # ...until cancel ends it
    assert not group_exists(pgid, settle=3)
    assert (await executor.states([job.job_id]))[job.job_id].state is JobState.CANCELLED


async def test_concurrent_submits_get_distinct_ids(executor: LocalExecutor, tmp_path: Path) -> None:
    other = LocalExecutor(executor.state_dir)  # a second instance on the same state dir
    jobs = await asyncio.gather(
        *(
            (executor if i % 2 else other).submit(BASH + "true\n", f"j{i}", tmp_path)
            for i in range(6)
        )
    )
    assert len({job.job_id for job in jobs}) == 6
    states = await executor.states([job.job_id for job in jobs])
    assert set(states) == {job.job_id for job in jobs}


async def test_unknown_ids_and_bad_input(executor: LocalExecutor, tmp_path: Path) -> None:
    status = (await executor.states(["424242"]))["424242"]
    assert status.state is JobState.VANISHED
    await executor.cancel("424242")  # unknown: not an error
    with pytest.raises(InvalidJobName):
        await executor.submit(BASH, "../escape", tmp_path)
    with pytest.raises(ExecutorError, match="not a local job id"):
        await executor.cancel("1; rm -rf /")
    executor.jobs_dir.mkdir(parents=True, exist_ok=True)
    (executor.jobs_dir / "777.json").write_text("{not json")
    damaged = await executor.states(["777", "424242"])  # one bad file spoils only its job
    assert damaged["777"].state is JobState.FAILED
    assert damaged["777"].reason is not None and "corrupt" in damaged["777"].reason
    assert damaged["424242"].state is JobState.VANISHED
    bad = await executor.submit(BASH + "#SBATCH --time=soon\ntrue\n", "bad-time", tmp_path)
    failed = await wait_for(executor, bad.job_id, ended)
    assert failed.state is JobState.FAILED
    assert failed.reason is not None and "not a SLURM time" in failed.reason


def test_factory_picks_the_executor(tmp_path: Path) -> None:
    local = make_executor(Settings(executor="local", state_dir=tmp_path))
    assert isinstance(local, LocalExecutor)
    assert local.kind == "local"
    assert local.state_dir == tmp_path / "local-executor"
    slurm = make_executor(
        Settings(executor="slurm", state_dir=tmp_path, slurm={"bin_dir": tmp_path / "bin"})
    )
    assert isinstance(slurm, SlurmExecutor)
    assert slurm.kind == "slurm"
    assert slurm.bin_dir == tmp_path / "bin"
