"""Supervisor of one ``local`` job: ``python -m aifactory.shared.executors.local_runner``.

The ``local`` executor starts this module per job. It detaches (double fork, new session) so
that the job outlives the server, even a ``kill -9`` of it, and is reaped by init rather than
left a zombie of the server. The detached runner then plays slurmstepd's part:

- runs ``bash <script>`` in its own process group, with SLURM-like environment variables,
  stdout going to the job's output file and stderr to its error file (``--output`` and
  ``--error`` as the ``slurm`` executor submits them);
- enforces ``#SBATCH --time`` (to the second, where SLURM rounds up to minutes) → TIMEOUT;
- on SIGTERM (``cancel``) ends the job's process group: TERM, then KILL after a grace → CANCELLED;
- records every state change atomically in ``<jobs_dir>/<id>.json`` (the executor's only
  source of truth, so states survive restarts of both the server and the executor).

The launching process reads one line from stdout: the runner's pid, printed only once the
first record is on disk, so ``submit`` never returns a job whose state is unknown.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from pydantic import BaseModel

from aifactory.shared.executors.slurm_states import sbatch_time_limit
from aifactory.shared.states import JobState

log = logging.getLogger("aifactory.local_runner")

#: Seconds between SIGTERM and SIGKILL of the job's process group (SLURM's KillWait).
KILL_GRACE = 5.0
#: How often the supervisor checks the clock and pending signals.
TICK = 0.1


class LocalJobSpec(BaseModel):
    """Written by the executor before launch: what to run."""

    job_id: str
    name: str
    script_path: Path
    output_path: Path
    #: ``None`` (a spec written before stderr had its own file): stderr joins stdout.
    error_path: Path | None = None
    workdir: Path
    submitted_at: float


class LocalJobRecord(BaseModel):
    """Written by the runner (or by the executor once the runner is known dead)."""

    job_id: str
    name: str
    state: JobState
    reason: str | None = None
    exit_code: int | None = None
    runner_pid: int | None = None
    #: ``/proc/<pid>/stat`` start time: tells our runner from a recycled pid.
    runner_start: str | None = None
    job_pgid: int | None = None
    job_start: str | None = None
    time_limit: float | None = None
    started_at: float | None = None
    ended_at: float | None = None


def spec_path(jobs_dir: Path, job_id: str) -> Path:
    return jobs_dir / f"{job_id}.spec.json"


def record_path(jobs_dir: Path, job_id: str) -> Path:
    return jobs_dir / f"{job_id}.json"


def write_atomic(path: Path, model: BaseModel) -> None:
    """Write-then-rename: a reader sees the old record or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as fh:
        fh.write(model.model_dump_json())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (None without /proc or when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the parenthesised command name: state is field 3, starttime field 22.
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[-1].split()
    return bool(fields) and fields[0] in ("Z", "X")


def process_alive(pid: int | None, start: str | None) -> bool:
    """Is ``pid`` alive, not a zombie, and (when known) the same process that started then?"""
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if _is_zombie(pid):
        return False
    if start is not None:
        now = process_start(pid)
        if now is not None and now != start:
            return False
    return True


def slurm_env(spec: LocalJobSpec) -> dict[str, str]:
    """The SLURM variables a batch script commonly reads, for one node and one task."""
    host = socket.gethostname().split(".")[0] or "localhost"
    env = dict(os.environ)
    env.update(
        {
            "SLURM_JOB_ID": spec.job_id,
            "SLURM_JOBID": spec.job_id,
            "SLURM_JOB_NAME": spec.name,
            "SLURM_JOB_NODELIST": host,
            "SLURM_NODELIST": host,
            "SLURM_JOB_NUM_NODES": "1",
            "SLURM_NNODES": "1",
            "SLURM_NODEID": "0",
            "SLURM_PROCID": "0",
            "SLURM_NTASKS": "1",
            "SLURM_SUBMIT_DIR": str(spec.workdir),
            "SLURM_CPUS_ON_NODE": str(os.cpu_count() or 1),
            "SLURMD_NODENAME": host,
            "SLURM_CLUSTER_NAME": "local",
        }
    )
    return env


class _Supervisor:
    """Runs the job and turns signals and the clock into an end state."""

    def __init__(self, jobs_dir: Path, spec: LocalJobSpec) -> None:
        self.jobs_dir = jobs_dir
        self.spec = spec
        self.cancel_requested = False
        self.record = LocalJobRecord(
            job_id=spec.job_id,
            name=spec.name,
            state=JobState.RUNNING,
            runner_pid=os.getpid(),
            runner_start=process_start(os.getpid()),
        )

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: cancelling job %s", signal.Signals(signum).name, self.spec.job_id)
        self.cancel_requested = True

    def save(self) -> None:
        write_atomic(record_path(self.jobs_dir, self.spec.job_id), self.record)

    def start(self) -> subprocess.Popen[bytes] | None:
        """Start the job; on failure record FAILED and return None."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        self.record.started_at = time.time()
        try:
            self.record.time_limit = sbatch_time_limit(self.spec.script_path.read_text())
            error_path = self.spec.error_path
            with contextlib.ExitStack() as files:
                out = files.enter_context(self.spec.output_path.open("wb"))
                err = files.enter_context(error_path.open("wb")) if error_path else None
                proc = subprocess.Popen(
                    ["bash", str(self.spec.script_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err if err is not None else subprocess.STDOUT,
                    cwd=self.spec.workdir,
                    env=slurm_env(self.spec),
                    process_group=0,
                )
        except (OSError, ValueError) as exc:
            log.error("job %s could not start: %s", self.spec.job_id, exc)
            self.record.state = JobState.FAILED
            self.record.reason = f"could not start: {exc}"
            self.record.ended_at = time.time()
            self.save()
            return None
        self.record.job_pgid = proc.pid
        self.record.job_start = process_start(proc.pid)
        self.save()
        return proc

    def _kill_group(self, sig: int) -> None:
        assert self.record.job_pgid is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.record.job_pgid, sig)

    def _end_group(self, proc: subprocess.Popen[bytes]) -> int:
        """TERM the group, give it KILL_GRACE seconds, then KILL it."""
        self._kill_group(signal.SIGTERM)
        try:
            return proc.wait(timeout=KILL_GRACE)
        except subprocess.TimeoutExpired:
            log.warning("job %s ignored SIGTERM for %ss: killing", self.spec.job_id, KILL_GRACE)
            self._kill_group(signal.SIGKILL)
            return proc.wait()

    def supervise(self, proc: subprocess.Popen[bytes]) -> None:
        started = self.record.started_at or time.time()
        limit = self.record.time_limit
        end_state: JobState | None = None
        while True:
            try:
                returncode = proc.wait(timeout=TICK)
                break
            except subprocess.TimeoutExpired:
                pass
            if self.cancel_requested:
                end_state = JobState.CANCELLED
                returncode = self._end_group(proc)
                break
            if limit is not None and time.time() - started >= limit:
                end_state = JobState.TIMEOUT
                returncode = self._end_group(proc)
                break
        # Like SLURM at the end of a batch script: nothing of the job outlives it.
        self._kill_group(signal.SIGKILL)
        exit_code = 128 - returncode if returncode < 0 else returncode
        if end_state is None:
            end_state = JobState.COMPLETED if returncode == 0 else JobState.FAILED
        reasons = {
            JobState.CANCELLED: "cancelled",
            JobState.TIMEOUT: f"time limit of {limit:g} s reached" if limit else None,
            JobState.FAILED: (
                f"killed by signal {signal.Signals(-returncode).name}"
                if returncode < 0
                else "non-zero exit code"
            ),
        }
        self.record.state = end_state
        self.record.reason = reasons.get(end_state)
        self.record.exit_code = exit_code
        self.record.ended_at = time.time()
        self.save()
        log.info("job %s ended: %s (exit %s)", self.spec.job_id, end_state, exit_code)


def _detach(jobs_dir: Path, job_id: str) -> None:
    """Double fork: the parent prints the runner's pid once it is running and exits."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as ready:
            answer = ready.read().decode(errors="replace").strip()
        if answer != "ok":
            print(answer or "runner died before starting the job", file=sys.stderr)
            os._exit(1)
        print(pid, flush=True)
        os._exit(0)
    os.close(read_fd)
    os.setsid()
    log_path = jobs_dir / f"{job_id}.runner.log"
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(null_fd)
    os.close(log_fd)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    try:
        spec = LocalJobSpec.model_validate_json(spec_path(jobs_dir, job_id).read_text())
        supervisor = _Supervisor(jobs_dir, spec)
        proc = supervisor.start()
    except Exception as exc:  # reported to the launcher, which raises ExecutorError
        log.exception("runner for job %s failed before the job started", job_id)
        os.write(write_fd, f"runner failed: {exc}".encode())
        os.close(write_fd)
        os._exit(1)
    os.write(write_fd, b"ok")
    os.close(write_fd)
    if proc is not None:
        supervisor.supervise(proc)
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs-dir", type=Path, required=True)
    parser.add_argument("--job-id", required=True)
    args = parser.parse_args(argv)
    _detach(args.jobs_dir, args.job_id)


if __name__ == "__main__":
    main()
