"""The ``local`` executor: batch scripts as local process groups, no SLURM needed.

For laptops and CI. Files are named as with SLURM (``workdir/<name>.sh``, stdout in
``workdir/<name>-<id>.out``, stderr in ``.err``) so everything downstream (log following,
reports) is the same.
Job ids are increasing integers kept in ``state_dir/job-counter`` under an exclusive lock,
so they never collide between executor instances and survive restarts.

Each job is supervised by a detached ``local_runner`` process that records the job's state
in ``state_dir/local-jobs/<id>.json``; ``states`` reads those files in one directory pass.
A runner that died without an end record (killed, machine rebooted) means ``FAILED``.

``JobStatus.nodes`` is ``("127.0.0.1",)``: services started by a local job listen on this
machine, and the loopback address is what health checks and clients must use. The script
itself sees the short host name in ``SLURM_JOB_NODELIST`` as it would on a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from aifactory.shared.executors.base import (
    Executor,
    ExecutorError,
    JobStatus,
    SubmittedJob,
    check_job_name,
    submit_environment,
)
from aifactory.shared.executors.files import job_output_paths
from aifactory.shared.executors.local_runner import (
    LocalJobRecord,
    LocalJobSpec,
    process_alive,
    process_start,
    record_path,
    spec_path,
    write_atomic,
)
from aifactory.shared.settings import Settings
from aifactory.shared.states import JobState

log = logging.getLogger(__name__)

LOCAL_NODES = ("127.0.0.1",)
#: A job whose runner has not written its first record after this long never started.
LAUNCH_TIMEOUT = 60.0


class LocalExecutor(Executor, name="local"):
    """Run batch scripts on this machine with SLURM's file naming and environment."""

    runs_jobs_here = True

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalExecutor:
        """Job records live under ``state_dir/local-executor``."""
        return cls(settings.state_dir / "local-executor")

    def __init__(self, state_dir: Path, launch_timeout: float = LAUNCH_TIMEOUT) -> None:
        self.state_dir = state_dir
        self.jobs_dir = state_dir / "local-jobs"
        self.launch_timeout = launch_timeout

    # -- files ------------------------------------------------------------------------------

    def _next_job_id(self) -> str:
        """Increment the persistent counter under an exclusive lock (other executors too)."""
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_dir / "job-counter", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            text = os.read(fd, 64).decode().strip()
            try:
                current = int(text) if text else 0
            except ValueError as exc:
                raise ExecutorError(
                    f"job counter {self.state_dir / 'job-counter'} holds {text!r}, not a "
                    "number: fix or delete it (ids restart from the highest existing job)"
                ) from exc
            # Never reuse an id even if the counter file was lost: start past existing jobs.
            current = max(current, self._highest_existing_id())
            next_id = current + 1
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, f"{next_id}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)  # also releases the lock
        return str(next_id)

    def _highest_existing_id(self) -> int:
        highest = 0
        for entry in os.scandir(self.jobs_dir):
            stem = entry.name.split(".", 1)[0]
            if stem.isdigit():
                highest = max(highest, int(stem))
        return highest

    def _read_record(self, job_id: str) -> LocalJobRecord | None:
        try:
            return LocalJobRecord.model_validate_json(
                record_path(self.jobs_dir, job_id).read_text()
            )
        except FileNotFoundError:
            return None
        except ValidationError as exc:
            raise ExecutorError(
                f"local job record {record_path(self.jobs_dir, job_id)} is corrupt: {exc}"
            ) from exc

    def _write_end(self, job_id: str, name: str, state: JobState, reason: str) -> None:
        """Record an end state on behalf of a runner that can no longer do it."""
        record = self._read_record(job_id) or LocalJobRecord(job_id=job_id, name=name, state=state)
        record.state, record.reason, record.ended_at = state, reason, time.time()
        write_atomic(record_path(self.jobs_dir, job_id), record)

    # -- Executor ---------------------------------------------------------------------------

    async def submit(self, script: str, name: str, workdir: Path) -> SubmittedJob:
        workdir = workdir.resolve()
        script_path = self.write_script(script, name, workdir)
        job_id = await asyncio.to_thread(self._next_job_id)
        output_path, error_path = job_output_paths(workdir, name, job_id)
        spec = LocalJobSpec(
            job_id=job_id,
            name=name,
            script_path=script_path,
            output_path=output_path,
            error_path=error_path,
            workdir=workdir,
            submitted_at=time.time(),
        )
        write_atomic(spec_path(self.jobs_dir, job_id), spec)
        argv = [sys.executable, "-m", "aifactory.shared.executors.local_runner"]
        argv += ["--jobs-dir", str(self.jobs_dir), "--job-id", job_id]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                env=submit_environment(),  # the runner hands its environment to the job
            )
            out, err = await asyncio.wait_for(proc.communicate(), self.launch_timeout)
        except (OSError, TimeoutError) as exc:
            reason = f"runner did not start: {exc!r}"
            self._write_end(job_id, name, JobState.FAILED, reason)
            raise ExecutorError(f"local job {name!r} ({job_id}): {reason}") from exc
        if proc.returncode != 0:
            reason = f"runner failed: {err.decode(errors='replace').strip()}"
            self._write_end(job_id, name, JobState.FAILED, reason)
            raise ExecutorError(
                f"local job {name!r} ({job_id}) {reason}; see {self.jobs_dir}/{job_id}.runner.log"
            )
        log.debug("local job %s started, runner pid %s", job_id, out.decode().strip())
        return SubmittedJob(
            job_id=job_id,
            name=name,
            script_path=script_path,
            output_path=spec.output_path,
            error_path=spec.error_path,
            extra={"runner_pid": out.decode().strip()},
        )

    async def states(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        return await asyncio.to_thread(self._states, list(dict.fromkeys(job_ids)))

    def _states(self, job_ids: list[str]) -> dict[str, JobStatus]:
        try:
            names = {entry.name for entry in os.scandir(self.jobs_dir)}
        except FileNotFoundError:
            names = set()
        answer: dict[str, JobStatus] = {}
        for job_id in job_ids:
            answer[job_id] = self._status(job_id, names)
        return answer

    def _status(self, job_id: str, names: set[str]) -> JobStatus:
        if f"{job_id}.json" in names:
            try:
                record = self._read_record(job_id)
            except ExecutorError as exc:  # one damaged file must not blind the whole poll
                log.error("%s", exc)
                return JobStatus(job_id, JobState.FAILED, reason=str(exc))
            if record is not None:
                return self._from_record(record)
        if f"{job_id}.spec.json" in names:
            spec_file = spec_path(self.jobs_dir, job_id)
            try:
                age = time.time() - spec_file.stat().st_mtime
            except FileNotFoundError:
                age = 0.0
            if age > self.launch_timeout:
                return JobStatus(
                    job_id, JobState.FAILED, reason=f"runner never started ({age:.0f} s)"
                )
            return JobStatus(job_id, JobState.PENDING, reason="runner starting")
        return JobStatus(job_id, JobState.VANISHED, reason="no such local job")

    def _from_record(self, record: LocalJobRecord) -> JobStatus:
        state, reason = record.state, record.reason
        if not state.is_terminal and not process_alive(record.runner_pid, record.runner_start):
            state = JobState.FAILED
            reason = f"runner (pid {record.runner_pid}) died without recording how the job ended"
        nodes = () if state is JobState.PENDING else LOCAL_NODES
        return JobStatus(record.job_id, state, reason, nodes, record.exit_code)

    async def active_jobs(self) -> list[str]:
        """Ids of local jobs that have not ended: what must stop with the embedded stack."""
        specs = [p.name.split(".", 1)[0] for p in self.jobs_dir.glob("*.spec.json")]
        states = await self.states(specs)
        return [job_id for job_id, status in states.items() if not status.state.is_terminal]

    def endpoint_host(self, node: str) -> str:
        """Local jobs serve on this machine: loopback, whatever the host calls itself."""
        return LOCAL_NODES[0]

    async def stop_with_stack(self) -> None:
        """Local jobs are this machine's processes: they end with the stack."""
        for job_id in await self.active_jobs():
            await self.cancel(job_id)

    async def find_by_name(self, name: str) -> list[str]:
        check_job_name(name)
        return await asyncio.to_thread(self._find_by_name, name)

    def _find_by_name(self, name: str) -> list[str]:
        found = []
        for path in self.jobs_dir.glob("*.spec.json"):
            try:
                spec = LocalJobSpec.model_validate_json(path.read_text())
            except (OSError, ValidationError) as exc:
                log.warning("skipping unreadable local job spec %s: %s", path, exc)
                continue
            if spec.name == name:
                found.append(spec.job_id)
        return sorted(found, key=int)

    async def cancel(self, job_id: str) -> None:
        if not job_id.isdigit():
            raise ExecutorError(f"{job_id!r} is not a local job id (digits, e.g. '12')")
        record = self._read_record(job_id)
        if record is None or record.state.is_terminal:
            return
        if process_alive(record.runner_pid, record.runner_start):
            assert record.runner_pid is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.runner_pid, signal.SIGTERM)
            return
        # The runner is gone (killed): end what is left of the job ourselves.
        pgid = record.job_pgid
        leader_start = process_start(pgid) if pgid else None
        if pgid and (leader_start is None or leader_start == record.job_start):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        self._write_end(job_id, record.name, JobState.CANCELLED, "cancelled; its runner was dead")
