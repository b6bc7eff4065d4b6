"""The ``slurm+ssh`` executor through a real sshd to the real local SLURM cluster.

"The login node" is this machine reached over ssh on a loopback port (deploy/local-sshd);
the scheduler commands it runs are the real cluster's. Other tests share the cluster: these
only cancel their own jobs, by id.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from aifactory.shared.executors.base import ExecutorError, JobStatus
from aifactory.shared.executors.slurm_ssh import SlurmSshExecutor
from aifactory.shared.executors.ssh_connection import SshConnection
from aifactory.shared.executors.ssh_hosts import HostKeyError, SshError
from aifactory.shared.states import JobState
from tests.integration.sshd import LocalSshd, slurm_ready, sshd  # noqa: F401 - fixture

pytestmark = pytest.mark.slurm

BASH = "#!/bin/bash\n#SBATCH -c 1\n"


@pytest.fixture
async def executor(sshd: LocalSshd) -> AsyncIterator[SlurmSshExecutor]:  # noqa: F811
    slurm_ready()
    ex = SlurmSshExecutor(SshConnection(sshd.settings()))
    try:
        yield ex
    finally:
        await ex.close()


@pytest.fixture
def jobs_dir() -> Path:
    # The "cluster's shared file system" is this machine's /tmp; jobs run as root.
    return Path(f"/tmp/aifactory-ssh-test-{os.getpid()}-{time.monotonic_ns()}")


async def wait_for(
    executor: SlurmSshExecutor,
    job_id: str,
    predicate: Callable[[JobStatus], bool],
    timeout: float = 40.0,
) -> JobStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = (await executor.states([job_id]))[job_id]
        if predicate(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {status} after {timeout} s")
        await asyncio.sleep(0.3)


def ended(status: JobStatus) -> bool:
    return status.state.is_terminal


def scancel(*job_ids: str) -> None:
    if job_ids:
        subprocess.run(["scancel", *job_ids], capture_output=True, timeout=30)


async def test_ssh_submit_poll_read_and_cancel(executor: SlurmSshExecutor, jobs_dir: Path) -> None:
    # A folder name no shell string could carry unquoted: it reaches sbatch intact.
    workdir = jobs_dir / "we ird $(touch pwned) 'q';x"
    job = await executor.submit(BASH + 'echo "hello from $SLURM_JOB_ID in $PWD"\n', "hi", workdir)
    assert job.script_path == workdir / "hi.sh"
    assert job.output_path == workdir / f"hi-{job.job_id}.out"
    assert (workdir.stat().st_mode & 0o777, job.script_path.stat().st_mode & 0o777) == (0o700,) * 2
    status = await wait_for(executor, job.job_id, ended)
    assert (status.state, status.exit_code) == (JobState.COMPLETED, 0)
    text = f"hello from {job.job_id} in {workdir}\n"
    assert await executor.read(job.output_path) == text
    assert await executor.tail(job.output_path, 6) == (text[6:].encode(), len(text))
    assert await executor.tail(workdir / "absent.out", 3) == (b"", 3)
    with pytest.raises(FileNotFoundError):
        await executor.read(workdir / "absent.out")
    assert not list(jobs_dir.rglob("pwned")) and not Path("pwned").exists()

    secret = workdir / "secrets.json"
    await executor.write_secret(secret, '{"token": "t"}')
    assert secret.stat().st_mode & 0o777 == 0o600 and secret.read_text() == '{"token": "t"}'
    assert [p.name for p in workdir.iterdir() if p.name.startswith(".")] == []
    await executor.remove_file(secret)
    await executor.remove_file(secret)  # already gone: fine
    assert not secret.exists()

    name = f"ssh-cancel-{uuid.uuid4().hex[:10]}"
    long = await executor.submit(BASH + "sleep 120\n", name, jobs_dir)
    try:
        assert await executor.find_by_name(name) == [long.job_id]
        await wait_for(executor, long.job_id, lambda s: s.state is JobState.RUNNING)
        await executor.cancel(long.job_id)
        assert (await wait_for(executor, long.job_id, ended)).state is JobState.CANCELLED
        await executor.cancel(long.job_id)  # already ended: not an error
    finally:
        scancel(long.job_id)
    assert executor.ssh.logins == 1  # everything above went over one connection


async def test_ssh_unknown_host_key_refused_then_trusted_on_request(
    sshd: LocalSshd,  # noqa: F811
    tmp_path: Path,
) -> None:
    empty = tmp_path / "known_hosts"
    fingerprint = subprocess.run(
        ["ssh-keygen", "-lf", str(sshd.folder / "host_ed25519.pub")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[1]
    refused = SshConnection(sshd.settings(known_hosts=empty))
    with pytest.raises(HostKeyError, match="is unknown") as err:
        await refused.connection()
    assert fingerprint in str(err.value) and "--trust-on-first-use" in str(err.value)
    assert not empty.exists()  # nothing recorded without asking

    trusting = SshConnection(sshd.settings(known_hosts=empty, trust_on_first_use=True))
    try:
        await trusting.connection()
        assert (await trusting.run(["echo", "ok"]))[1] == "ok\n"
    finally:
        await trusting.close()
    assert empty.read_text().startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")
    assert empty.stat().st_mode & 0o777 == 0o600

    # A recorded key that differs is refused, trust on first use or not.
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    changed = tmp_path / "changed_hosts"
    changed.write_text(f"[127.0.0.1]:{sshd.port} {other.with_suffix('.pub').read_text()}")
    for tofu in (False, True):
        conn = SshConnection(sshd.settings(known_hosts=changed, trust_on_first_use=tofu))
        with pytest.raises(HostKeyError, match="differs from the one recorded"):
            await conn.connection()
    assert len(changed.read_text().splitlines()) == 1


async def test_ssh_wrong_user_key_refused(sshd: LocalSshd, tmp_path: Path) -> None:  # noqa: F811
    stranger = tmp_path / "id_stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    conn = SshConnection(sshd.settings(key_file=stranger))
    with pytest.raises(SshError, match="refused the login") as err:
        await conn.connection()
    assert "authorized_keys" in str(err.value)
    ex = SlurmSshExecutor(conn)
    with pytest.raises(ExecutorError):  # what a poll sees: an error, never "no jobs"
        await ex.states(["1"])


async def test_ssh_proxy_jump_checks_every_hop(sshd: LocalSshd) -> None:  # noqa: F811
    jump = f"{sshd.user}@127.0.0.1:{sshd.port}"
    conn = SshConnection(sshd.settings(proxy_jump=jump))
    try:
        assert (await conn.run(["echo", "through"]))[1] == "through\n"
        assert len(conn._hops) == 1
    finally:
        await conn.close()


async def test_ssh_sshd_restart_between_submit_and_poll_reconnects_without_duplicate(
    executor: SlurmSshExecutor,
    sshd: LocalSshd,  # noqa: F811
    jobs_dir: Path,
) -> None:
    name = f"ssh-restart-{uuid.uuid4().hex[:10]}"
    job = await executor.submit(BASH + "sleep 60\n", name, jobs_dir)
    try:
        sshd.restart()  # every session dropped, a new server on the same port
        status = await wait_for(executor, job.job_id, lambda s: s.state is JobState.RUNNING)
        assert status.job_id == job.job_id
        assert executor.ssh.logins == 2
        assert await executor.find_by_name(name) == [job.job_id]
    finally:
        scancel(job.job_id)


#: sbatch shims slow enough to be cut off: one whose submission escapes the cut (it lands
#: later: the executor must adopt it); one that stays in the session, which the remote
#: ``timeout`` usually ends when the session goes (then the executor submits once more)
#: but which may also land: either way there must be exactly one job.
SLOW_SBATCH = {
    "lands-later": 'setsid -f bash -c \'sleep 1.5; exec {real} "$@"\' _ "$@" >/dev/null\n'
    "touch {marker}\nsleep 5\n",
    "in-session": 'touch {marker}\nsleep 4\nexec {real} "$@"\n',
}


@pytest.mark.parametrize(("shim", "sbatch_calls"), [("lands-later", {1}), ("in-session", {1, 2})])
async def test_ssh_connection_lost_during_sbatch_leaves_exactly_one_job(
    sshd: LocalSshd,  # noqa: F811
    jobs_dir: Path,
    tmp_path: Path,
    shim: str,
    sbatch_calls: set[int],
) -> None:
    slurm_ready()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for command in ("squeue", "scancel", "sacct"):
        (bin_dir / command).symlink_to(
            subprocess.check_output(["which", command], text=True).strip()
        )
    real = subprocess.check_output(["which", "sbatch"], text=True).strip()
    marker = tmp_path / "sbatch-started"
    text = SLOW_SBATCH[shim].format(real=real, marker=marker)
    (bin_dir / "sbatch").write_text("#!/bin/bash\n" + text)
    (bin_dir / "sbatch").chmod(0o755)
    ex = SlurmSshExecutor(SshConnection(sshd.settings(command_timeout=6.0)), bin_dir=bin_dir)
    name = f"ssh-drop-{uuid.uuid4().hex[:10]}"
    try:
        submitting = asyncio.create_task(ex.submit(BASH + "sleep 60\n", name, jobs_dir))
        deadline = time.monotonic() + 20
        while not marker.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        sshd.restart()  # cut off mid-sbatch
        job = await asyncio.wait_for(submitting, 40)
        await asyncio.sleep(2)  # anything still on its way has landed by now
        assert await ex.find_by_name(name) == [job.job_id]
        assert ex.calls["sbatch"] in sbatch_calls and ex.ssh.logins == 2
    finally:
        await ex.close()
        out = subprocess.run(
            ["squeue", "-h", "--states=all", f"--name={name}", "-o", "%i"],
            capture_output=True,
            text=True,
        )
        scancel(*out.stdout.split())


async def test_ssh_poll_of_200_jobs_is_one_remote_exec(
    executor: SlurmSshExecutor, jobs_dir: Path
) -> None:
    jobs_dir.mkdir(parents=True)
    script = jobs_dir / "held.sh"
    script.write_text(BASH + "#SBATCH --hold\ntrue\n")
    ids: list[str] = []
    try:
        for _ in range(200):  # held: they never run, and cost the cluster nothing
            out = subprocess.run(
                ["sbatch", "--parsable", "--job-name=ssh-poll-200", f"--chdir={jobs_dir}",
                 f"--output={jobs_dir}/%j.out", str(script)],
                capture_output=True, text=True, timeout=30, check=True,
            )  # fmt: skip
            ids.append(out.stdout.strip().split(";")[0])
        await executor.states(ids[:1])  # connect first: the login is not the poll
        execs, squeues = executor.ssh.execs, executor.calls["squeue"]
        started = time.perf_counter()
        statuses = await executor.states(ids)
        took = time.perf_counter() - started
        assert executor.ssh.execs - execs == 1 and executor.calls["squeue"] - squeues == 1
        assert {s.state for s in statuses.values()} == {JobState.PENDING}
        assert sorted(statuses) == sorted(ids)
        print(f"poll of 200 jobs over ssh: one exec, {took * 1000:.0f} ms")
    finally:
        for start in range(0, len(ids), 100):
            scancel(*ids[start : start + 100])


@pytest.mark.parametrize("persistent_shell", [True, False])
async def test_ssh_commands_keep_arguments_status_and_streams_apart(
    sshd: LocalSshd,  # noqa: F811
    persistent_shell: bool,
) -> None:
    """In the long-lived shell as with one exec per command: every argument arrives as it
    was given, stdout, stderr and the exit status come back apart, a command that overruns
    is stopped over there and the next one runs."""
    conn = SshConnection(sshd.settings(persistent_shell=persistent_shell, command_timeout=2.0))
    hostile = ["a b", "$(touch /tmp/pwned-ssh)", "'q'\"", "new\nline", "*", "; exit 9", ""]
    try:
        status, out, err = await conn.run(["printf", "[%s]\\n", *hostile])
        assert (status, err) == (0, "")
        assert out == "".join(f"[{value}]\n" for value in hostile)
        assert not Path("/tmp/pwned-ssh").exists()
        script = "echo out; echo err >&2; printf '\\000\\001'; exit 3"
        assert await conn.run(["sh", "-c", script]) == (3, "out\n\x00\x01", "err\n")
        started = time.monotonic()
        with pytest.raises(SshError, match="did not answer within 2 s"):
            await conn.run(["sleep", "30"])
        assert time.monotonic() - started < 10
        assert await conn.run(["echo", "next"]) == (0, "next\n", "")
        sessions_before = conn.execs
        for _ in range(5):
            await conn.run(["true"])
        assert conn.execs - sessions_before == 5 and conn.logins == 1
    finally:
        await conn.close()
