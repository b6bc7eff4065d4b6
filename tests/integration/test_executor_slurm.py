"""The ``slurm`` executor against the real single-node cluster (deploy/local-slurm/up.sh).

Other tests submit to the same cluster at the same time: these tests only cancel their own
jobs and never assume an empty queue.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from aifactory.shared.executors.base import ExecutorError, JobStatus, SchedulerCommandError
from aifactory.shared.executors.slurm import SlurmExecutor
from aifactory.shared.states import JobState
from tests.conftest import need, need_tool

pytestmark = pytest.mark.slurm

BASH = "#!/bin/bash\n"
#: Ids far above anything this cluster hands out (SLURM's limit is 67108863).
NEVER_EXISTED = 67_000_000


@pytest.fixture(scope="module")
def cluster() -> str:
    """The node's name, once sinfo answers and the node accepts jobs."""
    sinfo = need_tool("sinfo")
    try:
        answer = subprocess.run(
            [sinfo, "-h", "-N", "-o", "%N %t"], capture_output=True, text=True, timeout=15
        )
    except subprocess.TimeoutExpired:
        need(False, "a SLURM controller answering sinfo (run deploy/local-slurm/up.sh)")
        raise
    nodes = dict(line.split() for line in answer.stdout.splitlines() if line.strip())
    usable = [node for node, state in nodes.items() if state in ("idle", "mix", "alloc")]
    need(
        answer.returncode == 0 and bool(usable),
        f"an idle SLURM node (sinfo said {answer.stdout.strip() or answer.stderr.strip()!r}; "
        "run deploy/local-slurm/up.sh)",
    )
    return usable[0]


@pytest.fixture
def executor(cluster: str) -> SlurmExecutor:
    return SlurmExecutor()


async def wait_for(
    executor: SlurmExecutor,
    job_id: str,
    predicate: Callable[[JobStatus], bool],
    timeout: float = 30.0,
) -> tuple[JobStatus, list[JobState]]:
    """Poll until ``predicate``; also return every state seen on the way."""
    seen: list[JobState] = []
    deadline = time.monotonic() + timeout
    while True:
        status = (await executor.states([job_id]))[job_id]
        if not seen or seen[-1] is not status.state:
            seen.append(status.state)
        if predicate(status):
            return status, seen
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {status} after {timeout} s (seen {seen})")
        await asyncio.sleep(0.2)


def ended(status: JobStatus) -> bool:
    return status.state.is_terminal


async def test_submit_runs_to_completion(executor: SlurmExecutor, tmp_path: Path) -> None:
    job = await executor.submit(
        BASH + "#SBATCH -c 1\necho hello from $SLURM_JOB_ID\nsleep 1\n", "hello", tmp_path
    )
    assert job.output_path == tmp_path / f"hello-{job.job_id}.out"
    assert job.script_path.read_text().startswith(BASH)
    status, seen = await wait_for(executor, job.job_id, ended)
    assert status.state is JobState.COMPLETED, status
    assert status.exit_code == 0
    assert seen[0] in (JobState.PENDING, JobState.RUNNING, JobState.COMPLETING)
    assert status.nodes == (socket.gethostname().split(".")[0],)
    assert job.output_path.read_text() == f"hello from {job.job_id}\n"
    assert executor.calls["sbatch"] == 1


async def test_failing_job(executor: SlurmExecutor, tmp_path: Path) -> None:
    job = await executor.submit(BASH + "#SBATCH -c 1\nexit 1\n", "fails", tmp_path)
    status, _ = await wait_for(executor, job.job_id, ended)
    assert (status.state, status.exit_code) == (JobState.FAILED, 1)
    assert status.reason == "NonZeroExitCode"


async def test_cancel(executor: SlurmExecutor, tmp_path: Path) -> None:
    name = f"cancel-me-{uuid.uuid4().hex[:12]}"  # squeue --states=all keeps ended jobs a while
    job = await executor.submit(BASH + "#SBATCH -c 1\nsleep 120\n", name, tmp_path)
    assert await executor.find_by_name(name) == [job.job_id]  # how a restart re-finds it
    assert await executor.find_by_name(f"{name}-other") == []
    await wait_for(executor, job.job_id, lambda s: s.state is JobState.RUNNING)
    await executor.cancel(job.job_id)
    status, _ = await wait_for(executor, job.job_id, ended, timeout=20)
    assert status.state is JobState.CANCELLED
    await executor.cancel(job.job_id)  # already ended: not an error
    with pytest.raises(ExecutorError, match="not a SLURM job id"):
        await executor.cancel("--signal=KILL")


async def test_gpu_partition_and_gres(executor: SlurmExecutor, tmp_path: Path) -> None:
    script = BASH + "#SBATCH -p gpu\n#SBATCH --gres=gpu:2\n#SBATCH -c 1\n"
    script += 'echo "gpus=$SLURM_GPUS_ON_NODE partition=$SLURM_JOB_PARTITION"\n'
    job = await executor.submit(script, "gpu-job", tmp_path)
    status, _ = await wait_for(executor, job.job_id, ended)
    assert status.state is JobState.COMPLETED, status
    assert job.output_path.read_text().strip() == "gpus=2 partition=gpu"


async def test_refused_submission_is_an_error(executor: SlurmExecutor, tmp_path: Path) -> None:
    script = BASH + "#SBATCH -p gpu\n#SBATCH --gres=gpu:64\ntrue\n"
    with pytest.raises(SchedulerCommandError) as caught:
        await executor.submit(script, "too-many-gpus", tmp_path)
    error = caught.value
    assert error.cmd[0] == "sbatch" and "--job-name=too-many-gpus" in error.cmd
    assert error.returncode != 0 and "node configuration is not available" in error.stderr
    assert "sbatch" in str(error) and str(error.returncode) in str(error)


def make_shim(bin_dir: Path, name: str, body: str) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / name
    shim.write_text(f"#!/bin/sh\n{body}\n")
    shim.chmod(0o755)
    return shim


async def test_200_ids_cost_one_squeue(cluster: str, tmp_path: Path) -> None:
    """A PATH shim logs every real squeue run: 200 tracked ids, exactly one invocation."""
    real_squeue = need_tool("squeue")
    log = tmp_path / "squeue.log"
    shim_dir = tmp_path / "bin"
    make_shim(shim_dir, "squeue", f'echo "$*" >> "{log}"\nexec "{real_squeue}" "$@"')
    executor = SlurmExecutor(bin_dir=shim_dir)
    running = await executor.submit(BASH + "#SBATCH -c 1\nsleep 20\n", "long", tmp_path)
    short = await executor.submit(BASH + "#SBATCH -c 1\ntrue\n", "short", tmp_path)
    await wait_for(executor, short.job_id, ended)
    await wait_for(executor, running.job_id, lambda s: s.state is JobState.RUNNING)
    log.unlink()
    squeue_before, sacct_before = executor.calls["squeue"], executor.calls["sacct"]

    tracked = [running.job_id, short.job_id] + [str(NEVER_EXISTED + i) for i in range(198)]
    answer = await executor.states(tracked)

    assert len(log.read_text().splitlines()) == 1, log.read_text()
    assert executor.calls["squeue"] - squeue_before == 1
    assert executor.calls["sacct"] - sacct_before <= 1  # once, batched, if at all
    assert list(answer) == tracked
    assert answer[running.job_id].state is JobState.RUNNING
    assert answer[short.job_id].state is JobState.COMPLETED
    assert all(answer[job_id].state is JobState.VANISHED for job_id in tracked[2:])
    await executor.cancel(running.job_id)


async def test_forgotten_job_is_vanished_never_missing(executor: SlurmExecutor) -> None:
    ghost = str(NEVER_EXISTED + 999)
    first = (await executor.states([ghost]))[ghost]
    assert first.state is JobState.VANISHED
    assert first.reason is not None and "not in squeue" in first.reason
    sacct_calls = executor.calls["sacct"]
    await executor.states([ghost])
    if executor.sacct_available is False:  # accounting off: learnt once, not asked again
        assert executor.calls["sacct"] == sacct_calls


async def test_squeue_failure_raises_for_back_off(tmp_path: Path) -> None:
    make_shim(
        tmp_path / "bin", "squeue", 'echo "slurm_load_jobs error: Unable to contact" >&2\nexit 1'
    )
    executor = SlurmExecutor(bin_dir=tmp_path / "bin")
    with pytest.raises(SchedulerCommandError, match=r"(?s)squeue.*exit code 1.*Unable to contact"):
        await executor.states(["1"])


async def test_hung_command_is_killed_at_the_timeout(tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    make_shim(tmp_path / "bin", "squeue", f'echo $$ > "{marker}"\nexec sleep 30')
    executor = SlurmExecutor(bin_dir=tmp_path / "bin", command_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(ExecutorError, match=r"did not answer within 0\.5 s"):
        await executor.states(["1"])
    assert time.monotonic() - started < 5
    pid = int(marker.read_text())
    assert not Path(f"/proc/{pid}").exists(), "the hung squeue was not killed and reaped"


async def test_missing_commands_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    executor = SlurmExecutor(bin_dir=tmp_path / "nowhere")
    with pytest.raises(ExecutorError, match="AIFACTORY_SLURM__BIN_DIR"):
        await executor.states(["1"])
