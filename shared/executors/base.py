"""The executor interface: how a rendered batch script becomes a job somewhere.

Modelled on submitit/dask-jobqueue: one small abstract class, one short module per
scheduler. Every method is async because the remote variant (SLURM over SSH) does I/O.
A scheduler is one module: ``class Mine(Executor, name="mine")`` registers it, and
``from_settings`` builds it; ``AIFACTORY_EXECUTOR=mine`` then selects it everywhere.
``states`` takes *all* tracked job ids and must cost one scheduler query, however many ids:
a poller with 200 jobs must not run 200 ``squeue`` calls.
"""

from __future__ import annotations

import abc
import os
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import SecretStr

from aifactory.shared.credentials import write_private
from aifactory.shared.executors.files import (
    FileStat,
    JobFile,
    local_open,
    local_read_range,
    local_stat,
)
from aifactory.shared.plugins import Registry
from aifactory.shared.states import JobState

if TYPE_CHECKING:
    from aifactory.shared.settings import Settings

#: Job names become file names and ``--job-name`` values: keep them boring.
JOB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class ExecutorError(RuntimeError):
    """A scheduler command failed; the message says which command and what it printed."""


class SchedulerCommandError(ExecutorError):
    """A scheduler command exited non-zero: the command, its exit code and what it printed.

    The message carries all four so the log line alone says what to fix; the attributes let
    a caller tell "already gone" from a real failure without parsing the message.
    """

    def __init__(self, cmd: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.cmd = list(cmd)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(
            f"command {' '.join(self.cmd)!r} failed with exit code {returncode}\n"
            f"stdout: {stdout.strip()[:2000]}\nstderr: {stderr.strip()[:2000]}"
        )


class InvalidJobName(ExecutorError, ValueError):
    """A job name that could escape its directory or confuse the scheduler."""


def check_job_name(name: str) -> str:
    if not JOB_NAME_RE.fullmatch(name) or ".." in name:
        raise InvalidJobName(
            f"job name {name!r} is not allowed: use 1-128 letters, digits, '_', '-', '.', "
            "starting with a letter or digit, and no '..'"
        )
    return name


def stack_secret_variables() -> frozenset[str]:
    """``AIFACTORY_*`` variables that hold a secret setting (API token, NATS password…)."""
    from aifactory.shared.settings import Settings  # settings imports the executor registry

    return frozenset(
        f"AIFACTORY_{name.upper()}"
        for name, info in Settings.model_fields.items()
        if info.annotation is SecretStr or SecretStr in typing.get_args(info.annotation)
    )


def submit_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment jobs are submitted with: ours, minus the stack's own secrets.

    A job inherits the environment it is submitted from (SLURM exports it, and slurmctld
    keeps a copy in its state directory). A recipe's ``secrets_env`` is meant to go
    through; the ingress token and the bus credentials are not: a job runs third-party
    code (vLLM, Ollama), and load workers get the bus password from their secrets file.
    """
    hidden = stack_secret_variables()
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if k.upper() not in hidden}


@dataclass(frozen=True, slots=True)
class JobStatus:
    """One job as the scheduler sees it at one moment."""

    job_id: str
    state: JobState
    #: SLURM's reason for PENDING (``Resources``, ``Priority``…) or for the end state.
    reason: str | None = None
    nodes: tuple[str, ...] = ()
    exit_code: int | None = None


@dataclass(frozen=True, slots=True)
class SubmittedJob:
    job_id: str
    name: str
    script_path: Path
    #: Where the job's stdout goes (SLURM's ``%x-%j.out`` naming, also for ``local``).
    output_path: Path
    extra: dict[str, str] = field(default_factory=dict)
    #: Where its stderr goes (``%x-%j.err``); ``None``: into ``output_path`` too.
    error_path: Path | None = None


class Executor(abc.ABC):
    """Submit, observe and cancel batch jobs."""

    #: The name settings and the CLI select this executor by (``AIFACTORY_EXECUTOR``).
    kind: ClassVar[str]
    #: Job files live on another machine (``slurm+ssh``): the paths this executor takes and
    #: hands out are the cluster's, reachable only through its file methods.
    remote_files: ClassVar[bool] = False
    #: Jobs start their tasks with ``srun`` (SLURM); otherwise the script forks them.
    has_srun: ClassVar[bool] = False
    #: Jobs run on this very machine (``local``): its loopback addresses reach them.
    runs_jobs_here: ClassVar[bool] = False

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.kind = name
            EXECUTORS.register(name, cls, origin=cls.__module__)

    @classmethod
    @abc.abstractmethod
    def from_settings(cls, settings: Settings) -> Self:
        """Build the executor from the site settings (``aifactory up``, services, CLI)."""

    @abc.abstractmethod
    async def submit(self, script: str, name: str, workdir: Path) -> SubmittedJob:
        """Save ``script`` as ``workdir/<name>.sh`` (kept for debugging) and submit it.

        Output goes to ``workdir/<name>-<job_id>.out`` (stdout) and ``.err`` (stderr), see
        :func:`~aifactory.shared.executors.files.job_output_paths`. Raises ``ExecutorError``
        with the scheduler's message when submission is refused.
        """

    @staticmethod
    def write_script(script: str, name: str, workdir: Path) -> Path:
        """The first step of every ``submit``: check the name, save ``workdir/<name>.sh``.

        The file stays beside the job's output, so what ran can always be read back.
        """
        check_job_name(name)
        workdir.mkdir(parents=True, exist_ok=True)
        script_path = workdir / f"{name}.sh"
        script_path.write_text(script)
        script_path.chmod(0o700)
        return script_path

    @abc.abstractmethod
    async def states(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """The status of every given job, in one scheduler query.

        Every requested id is in the answer: a job the scheduler has forgotten is resolved
        (accounting, exit-code file) or reported as ``JobState.VANISHED``, never omitted.
        """

    @abc.abstractmethod
    async def find_by_name(self, name: str) -> list[str]:
        """Ids of the jobs the scheduler still knows under ``name``, oldest first.

        This is how a server that crashed between ``sbatch`` and recording the job id finds
        the job again instead of submitting a second one.
        """

    @abc.abstractmethod
    async def cancel(self, job_id: str) -> None:
        """Ask the scheduler to end the job; cancelling an ended job is not an error."""

    def endpoint_host(self, node: str) -> str:
        """The address to dial a server on ``node`` at (the node name, for a scheduler)."""
        return node

    async def nodes(self, job_id: str) -> list[str]:
        """Host names the job runs on (empty until it runs)."""
        status = (await self.states([job_id]))[job_id]
        return list(status.nodes)

    async def read(self, path: Path) -> str:
        """Read a job file (output, script) from wherever the jobs run."""
        return path.read_text(errors="replace")

    async def tail(self, path: Path, offset: int = 0) -> tuple[bytes, int]:
        """Bytes appended to ``path`` since ``offset`` and the new offset (for log streaming)."""
        try:
            with path.open("rb") as fh:
                fh.seek(offset)
                data = fh.read()
        except FileNotFoundError:
            return b"", offset
        return data, offset + len(data)

    # -- following job files (the logs service) ---------------------------------------------
    # These read this host's file system. An executor whose job files live elsewhere (SFTP)
    # overrides all three; the logs service uses nothing else to reach them.

    async def stat(self, path: Path) -> FileStat | None:
        """Identity (device, inode), size and mtime of a job file; ``None`` if absent."""
        return local_stat(path)

    async def read_range(self, path: Path, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes of ``path`` from ``offset`` (fewer at its end)."""
        return local_read_range(path, offset, length)

    async def open_file(self, path: Path) -> JobFile | None:
        """An open handle on a job file (``None`` if absent): reads through it stay on
        that file after a rename, so a rotated log can be finished."""
        return local_open(path)

    async def write_secret(self, path: Path, text: str) -> None:
        """Write a file only its owner can read (mode 0600, created so) where jobs run: how
        a job receives credentials without them entering its script or command line."""
        write_private(path, text)

    async def remove_file(self, path: Path) -> None:
        """Delete a job file; a file already gone is not an error."""
        path.unlink(missing_ok=True)

    async def expose(
        self, host: str, port: int, *, prefer_port: int | None = None
    ) -> tuple[str, int] | None:
        """Make ``host:port`` (a service on a compute node) reachable from this machine.

        Returns the local address that now leads there, or ``None`` when ``host:port`` is
        reachable as it is (this base, ``local`` and ``slurm``, which run on the cluster).
        ``slurm+ssh`` opens a port forward, on ``prefer_port`` when it is free (so a URL
        stays the same across reconnects and restarts). Repeating the call is cheap and
        re-opens a forward that dropped.
        """
        return None

    async def unexpose(self, host: str, port: int) -> None:  # noqa: B027 - nothing exposed
        """Close what :meth:`expose` opened for ``host:port``; nothing open is not an error."""

    async def stop_with_stack(self) -> None:  # noqa: B027 - a scheduler's jobs outlive us
        """Cancel the jobs that must not outlive ``aifactory up`` (the ``local`` executor's
        processes). A real scheduler's jobs are the cluster's: the next start reconciles."""

    async def close(self) -> None:  # noqa: B027 - optional hook, most executors hold nothing
        """Release connections (the SSH executor keeps one open)."""


#: Every executor by name: the built-ins in this package, then ``aifactory.executors``
#: entry points of installed distributions.
EXECUTORS: Registry[type[Executor]] = Registry("executors", "aifactory.shared.executors")
