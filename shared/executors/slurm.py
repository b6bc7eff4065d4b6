"""The ``slurm`` executor: sbatch / squeue / sacct / scancel on this host.

Every scheduler command runs as an argument list (never through a shell) with a timeout, and
is counted in ``calls`` so tests and metrics can prove the poller's cost: ``states`` makes
exactly one ``squeue`` call however many jobs are tracked (the whole user's queue with
``--states=all``, filtered here), plus at most one batched ``sacct`` call for jobs squeue has
already forgotten. When squeue fails the error propagates as ``ExecutorError`` so the caller
backs off instead of reading "no jobs" as "all jobs vanished".
"""

from __future__ import annotations

import asyncio
import collections
import getpass
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from aifactory.shared.executors.base import (
    Executor,
    ExecutorError,
    JobStatus,
    SchedulerCommandError,
    SubmittedJob,
    check_job_name,
    submit_environment,
)
from aifactory.shared.executors.files import job_output_paths
from aifactory.shared.executors.slurm_states import (
    SACCT_FORMAT,
    SQUEUE_FORMAT,
    SlurmParseError,
    is_job_id,
    parse_sacct_line,
    parse_squeue_line,
)
from aifactory.shared.settings import Settings
from aifactory.shared.states import JobState

log = logging.getLogger(__name__)

#: scancel's answers that mean "nothing left to cancel": not an error for ``cancel``.
_ALREADY_GONE = ("already completing or completed", "invalid job id", "job has already finished")
#: sacct's answers that mean accounting is off for good on this cluster.
_NO_ACCOUNTING = ("accounting storage is disabled", "accounting_storage/none")


class SlurmExecutor(Executor, name="slurm"):
    """Submit and watch batch jobs with the SLURM commands found on this host.

    Subclasses run the same commands elsewhere by overriding :meth:`_program`,
    :meth:`_exec`, :meth:`_store_script` and :meth:`_queue_user` (``slurm+ssh``).
    """

    has_srun = True

    @classmethod
    def from_settings(cls, settings: Settings) -> SlurmExecutor:
        """Commands from ``settings.slurm.bin_dir`` first, then PATH."""
        return cls(settings.slurm.bin_dir)

    def __init__(
        self,
        bin_dir: Path | None = None,
        user: str | None = None,
        command_timeout: float = 30.0,
    ) -> None:
        #: Searched before PATH for every SLURM command (``Settings.slurm.bin_dir``).
        self.bin_dir = bin_dir
        self.user = user or getpass.getuser()
        self.command_timeout = command_timeout
        #: Scheduler commands run so far, by name (``{"squeue": 3, "sbatch": 2}``).
        self.calls: collections.Counter[str] = collections.Counter()
        #: None until the first sacct call tells whether accounting works here.
        self.sacct_available: bool | None = None
        self._resolved: dict[str, str] = {}

    # -- commands ---------------------------------------------------------------------------

    def _resolve(self, name: str) -> str:
        cached = self._resolved.get(name)
        if cached is not None:
            return cached
        search = os.environ.get("PATH", os.defpath)
        if self.bin_dir is not None:
            search = f"{self.bin_dir}{os.pathsep}{search}"
        found = shutil.which(name, path=search)
        if found is None:
            where = f"{self.bin_dir} or PATH" if self.bin_dir else "PATH"
            raise ExecutorError(
                f"SLURM command {name!r} not found in {where}: install slurm-wlm, or set "
                "AIFACTORY_SLURM__BIN_DIR to the directory holding sbatch/squeue/scancel"
            )
        self._resolved[name] = found
        return found

    async def _call(self, name: str, *args: str) -> str:
        """Run one scheduler command (argument list, no shell, with a timeout): its stdout.

        Every scheduler command goes through here. A non-zero exit raises
        :class:`SchedulerCommandError` with the command, exit code, stdout and stderr; a
        command that does not answer in time is killed and raises :class:`ExecutorError`.
        Where and how it runs is :meth:`_exec`'s business (here, or on a login node).
        """
        argv = [self._program(name), *args]
        self.calls[name] += 1
        returncode, stdout, stderr = await self._exec(name, argv)
        if returncode:
            raise SchedulerCommandError([name, *args], returncode, stdout, stderr)
        return stdout

    def _program(self, name: str) -> str:
        """The path ``_exec`` runs for the SLURM command ``name``."""
        return self._resolve(name)

    async def _exec(self, name: str, argv: list[str]) -> tuple[int, str, str]:
        """Run ``argv`` on this host: exit code, stdout, stderr (killed after the timeout)."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=submit_environment(),  # sbatch exports it into the job
            )
        except OSError as exc:
            raise ExecutorError(f"cannot run {argv[0]}: {exc}") from exc
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.command_timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise ExecutorError(
                f"{name} did not answer within {self.command_timeout:g} s (killed); "
                "is slurmctld up? (`sinfo`, the slurmctld log)"
            ) from None
        assert proc.returncode is not None
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    async def _store_script(self, script: str, name: str, workdir: Path) -> tuple[Path, Path]:
        """Save the script where the job runs: the absolute job folder and the script's path."""
        workdir = workdir.resolve()
        return workdir, self.write_script(script, name, workdir)

    async def _queue_user(self) -> str:
        """Whose jobs ``squeue`` lists: this process's user here."""
        return self.user

    # -- Executor ---------------------------------------------------------------------------

    async def submit(self, script: str, name: str, workdir: Path) -> SubmittedJob:
        workdir, script_path = await self._store_script(script, name, workdir)
        # sbatch expands %-patterns in file names: a literal % in the directory is %%.
        pattern_dir = str(workdir).replace("%", "%%")
        stdout = await self._call(
            "sbatch",
            "--parsable",
            f"--job-name={name}",
            f"--output={pattern_dir}/%x-%j.out",
            f"--error={pattern_dir}/%x-%j.err",
            f"--chdir={workdir}",
            str(script_path),
        )
        lines = [line.strip() for line in stdout.splitlines() if line.strip()]
        job_id, _, cluster = (lines[-1] if lines else "").partition(";")
        if not is_job_id(job_id):
            raise ExecutorError(f"sbatch accepted job {name!r} but printed no job id: {stdout!r}")
        extra = {"cluster": cluster} if cluster else {}
        output_path, error_path = job_output_paths(workdir, name, job_id)
        return SubmittedJob(
            job_id=job_id,
            name=name,
            script_path=script_path,
            output_path=output_path,
            error_path=error_path,
            extra=extra,
        )

    async def states(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        wanted = list(dict.fromkeys(job_ids))
        if not wanted:
            return {}
        # A failure raises: "no answer" must never read as "every job vanished".
        stdout = await self._call(
            "squeue",
            "--noheader",
            "--states=all",
            f"--user={await self._queue_user()}",
            "-O",
            SQUEUE_FORMAT,
        )
        wanted_set = set(wanted)
        found: dict[str, JobStatus] = {}
        for line in stdout.splitlines():
            if not line.strip():
                continue
            try:
                status = parse_squeue_line(line)
            except SlurmParseError as exc:
                log.warning("ignoring squeue output line: %s", exc)
                continue
            if status.job_id in wanted_set:
                found[status.job_id] = status
        missing = [job_id for job_id in wanted if job_id not in found]
        if missing:
            found.update(await self._resolve_forgotten(missing))
        return {job_id: found[job_id] for job_id in wanted}

    async def _resolve_forgotten(self, job_ids: list[str]) -> dict[str, JobStatus]:
        """Jobs squeue no longer lists: ask accounting once, else report them vanished."""
        resolved: dict[str, JobStatus] = {}
        why = "not in squeue and no accounting record"
        valid = [job_id for job_id in job_ids if is_job_id(job_id)]
        if valid and self.sacct_available is not False:
            try:
                stdout = await self._call(
                    "sacct", "-X", "-n", "-P", "-o", SACCT_FORMAT, "-j", ",".join(valid)
                )
            except SchedulerCommandError as exc:
                if any(text in exc.stderr.lower() for text in _NO_ACCOUNTING):
                    self.sacct_available = False
                    log.info("SLURM accounting is disabled: forgotten jobs become vanished")
                    why = "not in squeue and accounting is disabled"
                else:
                    why = f"not in squeue; sacct failed: {exc.stderr.strip()}"
                    log.warning("%s", exc)
            except ExecutorError as exc:
                # sacct missing (not installed) counts as "no accounting"; a timeout does not.
                if "not found" in str(exc):
                    self.sacct_available = False
                log.warning("sacct unavailable: %s", exc)
                why = f"not in squeue; sacct failed: {exc}"
            else:
                self.sacct_available = True
                for line in stdout.splitlines():
                    if not line.strip():
                        continue
                    try:
                        status = parse_sacct_line(line)
                    except SlurmParseError as exc:
                        log.warning("ignoring sacct output line: %s", exc)
                        continue
                    resolved.setdefault(status.job_id, status)
        elif self.sacct_available is False:
            why = "not in squeue and accounting is disabled"
        for job_id in job_ids:
            if job_id not in resolved:
                resolved[job_id] = JobStatus(job_id=job_id, state=JobState.VANISHED, reason=why)
        return resolved

    async def find_by_name(self, name: str) -> list[str]:
        check_job_name(name)
        stdout = await self._call(
            "squeue",
            "--noheader",
            "--states=all",
            f"--user={await self._queue_user()}",
            f"--name={name}",
            "--format=%i",
        )
        ids = [line.strip() for line in stdout.splitlines() if is_job_id(line.strip())]
        return sorted(ids, key=int)

    async def cancel(self, job_id: str) -> None:
        if not is_job_id(job_id):
            raise ExecutorError(f"{job_id!r} is not a SLURM job id (digits, e.g. '1234')")
        try:
            await self._call("scancel", job_id)
        except SchedulerCommandError as exc:
            if not any(text in exc.stderr.lower() for text in _ALREADY_GONE):
                raise
            log.debug("scancel %s: job already gone (%s)", job_id, exc.stderr.strip())
