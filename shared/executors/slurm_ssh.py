"""The ``slurm+ssh`` executor: the ``slurm`` executor's commands on a login node over SSH.

For a laptop (or any machine outside the cluster): everything ``slurm`` does, with every
scheduler command run on the login node through one persistent connection
(:mod:`~aifactory.shared.executors.ssh_connection`), every job file moved over SFTP, and
services on compute nodes made reachable through local port forwards (:meth:`expose`).

The SLURM logic itself (the state map, one ``squeue`` per poll, ``sacct`` for forgotten
jobs, "already gone" cancels) is inherited unchanged: only where commands run and where
files live differ. Job folders are paths on the cluster (``AIFACTORY_JOBS_DIR`` on its
shared file system), created 0700 with their script 0700.

A submission cut off by a lost connection may or may not have reached the scheduler, and
the remote ``sbatch`` may even still be running. It is never repeated blindly: ``sbatch``
runs under coreutils' ``timeout`` (so it cannot land after ``command_timeout``), and after
reconnecting the job is looked up by its (deterministic) name and adopted when it exists;
only when it has not appeared once that time has passed is it submitted again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import posixpath
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import asyncssh

from aifactory.shared.executors.base import ExecutorError, SubmittedJob, check_job_name
from aifactory.shared.executors.files import FileStat, JobFile
from aifactory.shared.executors.sftp_files import STAT_ARGS, SftpJobFile, missing, parse_stat
from aifactory.shared.executors.slurm import SlurmExecutor
from aifactory.shared.executors.ssh_connection import SshConnection
from aifactory.shared.executors.ssh_hosts import SshConnectionLost, SshError
from aifactory.shared.executors.ssh_shell import KILL_AFTER_S
from aifactory.shared.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
#: SLURM commands whose repetition after a lost connection could make a second job.
_NOT_REPEATABLE = frozenset({"sbatch"})


class SlurmSshExecutor(SlurmExecutor, name="slurm+ssh"):
    """SLURM on a login node reached over SSH; files over SFTP; tunnels to services."""

    remote_files = True

    @classmethod
    def from_settings(cls, settings: Settings) -> SlurmSshExecutor:
        """The login node from ``settings.ssh``; job folders under ``AIFACTORY_JOBS_DIR``,
        which must be given: this machine's default folder means nothing on the cluster."""
        if settings.jobs_dir is None or not settings.jobs_dir.is_absolute():
            raise ExecutorError(
                "the slurm+ssh executor needs AIFACTORY_JOBS_DIR: an absolute path on the "
                "cluster's shared file system (e.g. /project/scratch/p200000/you/aifactory-jobs)"
            )
        return cls(
            SshConnection(settings.ssh),
            bin_dir=settings.slurm.bin_dir,
            private=settings.private_job_files,
        )

    def __init__(
        self, ssh: SshConnection, bin_dir: Path | None = None, *, private: bool = True
    ) -> None:
        super().__init__(bin_dir, user="", command_timeout=ssh.settings.command_timeout)
        self.ssh = ssh
        #: Mode of the job folders and scripts made here (0700, or 0750 for a group site).
        self.dir_mode = 0o700 if private else 0o750

    # -- where commands run ----------------------------------------------------------------

    def _program(self, name: str) -> str:
        """``bin_dir/name`` on the cluster, else the login shell's PATH finds it there."""
        return posixpath.join(str(self.bin_dir), name) if self.bin_dir is not None else name

    async def _exec(self, name: str, argv: list[str]) -> tuple[int, str, str]:
        # Every remote command runs under ``timeout`` over there: cut off by a drop, an
        # sbatch can no longer land once that has passed (see ``submit``).
        returncode, stdout, stderr = await self.ssh.run(argv, retry=name not in _NOT_REPEATABLE)
        if returncode == 127:
            where = f"{self.bin_dir}" if self.bin_dir else "the login shell's PATH"
            raise ExecutorError(
                f"SLURM command {name!r} (or coreutils' timeout) not found in {where} on "
                f"{self.ssh.target.label}: set AIFACTORY_SLURM__BIN_DIR to its directory "
                f"there ({stderr.strip()})"
            )
        return returncode, stdout, stderr

    async def _queue_user(self) -> str:
        """The user we log in as (from settings or ~/.ssh/config): whose queue we read."""
        await self.ssh.connection()
        return self.ssh.username

    async def submit(self, script: str, name: str, workdir: Path) -> SubmittedJob:
        started = time.monotonic()
        try:
            return await super().submit(script, name, workdir)
        except SshConnectionLost as exc:
            log.warning("%s; looking for job %s before submitting again", exc, name)
        # sbatch may have landed, or may still land until its remote timeout has passed.
        deadline = started + self.command_timeout + KILL_AFTER_S + 1
        while True:
            try:
                found: list[str] | None = await self.find_by_name(name)  # reconnects
            except SshError as exc:
                if time.monotonic() > deadline + self.command_timeout:
                    raise SshError(
                        f"cannot tell whether job {name} was submitted ({exc}); look for it "
                        f"with `squeue --name={name}` on {self.ssh.target.label}"
                    ) from exc
                found = None
            if found:
                log.warning("adopting job %s found under the name %s", found[0], name)
                folder = Path(posixpath.normpath(str(workdir)))
                return SubmittedJob(
                    job_id=found[0],
                    name=name,
                    script_path=folder / f"{name}.sh",
                    output_path=folder / f"{name}-{found[0]}.out",
                )
            if found is not None and time.monotonic() > deadline:
                log.warning("no job %s appeared: submitting it again", name)
                return await super().submit(script, name, workdir)
            await asyncio.sleep(0.5)

    # -- files, over SFTP ---------------------------------------------------------------------

    async def _sftp(
        self, what: str, path: Path, op: Callable[[asyncssh.SFTPClient], Awaitable[T]]
    ) -> T:
        """One SFTP operation with the command timeout, repeated once on a new connection
        when the old one dropped (every file operation here is safe to repeat).

        A missing file raises ``FileNotFoundError`` and other refusals ``OSError``, as the
        local file methods do, so callers need not know where the file is.
        """
        for attempt in (1, 2):
            sftp = await self.ssh.sftp()
            try:
                return await asyncio.wait_for(op(sftp), self.command_timeout)
            except asyncssh.SFTPNoSuchFile as exc:
                raise FileNotFoundError(
                    f"{path} on {self.ssh.target.label}: {exc.reason}"
                ) from None
            except (asyncssh.SFTPConnectionLost, asyncssh.SFTPNoConnection, asyncssh.Error) as exc:
                if isinstance(exc, asyncssh.SFTPError) and not isinstance(
                    exc, asyncssh.SFTPConnectionLost | asyncssh.SFTPNoConnection
                ):
                    raise OSError(
                        f"{what} {path} on {self.ssh.target.label}: {exc.reason}"
                    ) from exc
                self.ssh.forget_sftp(sftp)
                if attempt == 2:
                    raise SshError(f"{what} {path} on {self.ssh.target.label}: {exc}") from exc
            except TimeoutError:
                self.ssh.forget_sftp(sftp)
                raise SshError(
                    f"{what} {path}: no answer within {self.command_timeout:g} s"
                ) from None
        raise AssertionError("unreachable")

    async def _ensure_dir(self, sftp: asyncssh.SFTPClient, path: str) -> None:
        """``mkdir -p`` with one round trip when only the last folder is missing."""
        attrs = asyncssh.SFTPAttrs(permissions=self.dir_mode)
        try:
            await sftp.mkdir(path, attrs)
        except asyncssh.SFTPNoSuchFile:
            parent = posixpath.dirname(path)
            if parent == path:
                raise
            await self._ensure_dir(sftp, parent)
            await sftp.mkdir(path, attrs)
        except (asyncssh.SFTPFileAlreadyExists, asyncssh.SFTPFailure):
            if not await sftp.isdir(path):
                raise

    async def _store_script(self, script: str, name: str, workdir: Path) -> tuple[Path, Path]:
        check_job_name(name)
        if not workdir.is_absolute():
            raise ExecutorError(f"job folder {workdir} must be an absolute path on the cluster")
        folder = posixpath.normpath(str(workdir))
        target = posixpath.join(folder, f"{name}.sh")

        async def upload(sftp: asyncssh.SFTPClient) -> None:
            await self._ensure_dir(sftp, folder)
            attrs = asyncssh.SFTPAttrs(permissions=self.dir_mode)
            async with sftp.open(target, "wb", attrs) as fh:
                await fh.write(script.encode())
            await sftp.chmod(target, self.dir_mode)  # an older script keeps its old mode

        await self._sftp("upload", Path(target), upload)
        return Path(folder), Path(target)

    async def read(self, path: Path) -> str:
        async def get(sftp: asyncssh.SFTPClient) -> bytes:
            async with sftp.open(str(path), "rb") as fh:
                return _as_bytes(await fh.read())

        return (await self._sftp("read", path, get)).decode(errors="replace")

    async def tail(self, path: Path, offset: int = 0) -> tuple[bytes, int]:
        async def get(sftp: asyncssh.SFTPClient) -> bytes:
            async with sftp.open(str(path), "rb") as fh:
                return _as_bytes(await fh.read(-1, offset))

        try:
            data = await self._sftp("read", path, get)
        except FileNotFoundError:
            return b"", offset
        return data, offset + len(data)

    async def write_secret(self, path: Path, text: str) -> None:
        """Created 0600 under a temporary name, then renamed: never readable by others."""
        folder = posixpath.dirname(str(path))
        tmp = posixpath.join(folder, f".{path.name}.{id(self):x}.tmp")

        async def put(sftp: asyncssh.SFTPClient) -> None:
            await self._ensure_dir(sftp, folder)
            try:
                async with sftp.open(tmp, "xb", asyncssh.SFTPAttrs(permissions=0o600)) as fh:
                    await fh.write(text.encode())
                await sftp.chmod(tmp, 0o600)  # in case the server's umask widened nothing
                await sftp.posix_rename(tmp, str(path))
            finally:
                if await sftp.exists(tmp):
                    await sftp.remove(tmp)

        await self._sftp("write", path, put)

    # -- following job files (the logs service) ---------------------------------------------

    async def stat(self, path: Path) -> FileStat | None:
        returncode, stdout, stderr = await self._exec("stat", [*STAT_ARGS, str(path)])
        if returncode != 0:
            if missing(stderr):
                return None
            raise OSError(f"stat {path} on {self.ssh.target.label}: {stderr.strip()[:200]}")
        try:
            return parse_stat(stdout)
        except ValueError as exc:
            raise OSError(f"stat {path} on {self.ssh.target.label}: {exc}") from None

    async def read_range(self, path: Path, offset: int, length: int) -> bytes:
        async def get(sftp: asyncssh.SFTPClient) -> bytes:
            async with sftp.open(str(path), "rb") as fh:
                return _as_bytes(await fh.read(length, offset))

        return await self._sftp("read", path, get)

    async def open_file(self, path: Path) -> JobFile | None:
        identity = await self.stat(path)
        if identity is None:
            return None
        try:
            handle = await self._sftp("open", path, lambda sftp: sftp.open(str(path), "rb"))
        except FileNotFoundError:
            return None
        # Renamed between the two calls (a rotation just then): the handle is the new file,
        # whose identity we do not know; close it and let the next step open it again.
        opened = SftpJobFile(handle, identity, self.command_timeout)
        now = await self.stat(path)
        if now is None or now.identity != identity.identity:
            await opened.close()
            return None
        return opened

    async def remove_file(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            await self._sftp("remove", path, lambda sftp: sftp.remove(str(path)))

    async def check(self, jobs_dir: Path) -> list[tuple[str, str]]:
        """Log in and try what the services will do: ``(what, answer)`` rows for a person.

        Raises on the first thing that fails, with the message that says how to fix it.
        """
        conn = await self.ssh.connection()
        key = conn.get_server_host_key()
        rows = [
            ("login node", f"{self.ssh.target.label} as {self.ssh.username}"),
            ("host key", f"{key.get_algorithm()} {key.get_fingerprint('sha256')}" if key else "-"),
        ]
        if self.ssh.jumps:
            rows.append(("through", ", ".join(hop.label for hop in self.ssh.jumps)))
        rows.append(("SLURM", (await self._call("sinfo", "--version")).strip()))
        queued = await self._call("squeue", "--noheader", f"--user={self.ssh.username}")
        rows.append(("your jobs", str(len(queued.splitlines()))))
        folder = posixpath.normpath(str(jobs_dir))
        await self._sftp("create", jobs_dir, lambda sftp: self._ensure_dir(sftp, folder))
        rows.append(("jobs folder", f"{folder} (writable over SFTP)"))
        return rows

    # -- tunnels and lifetime ------------------------------------------------------------------

    async def expose(
        self, host: str, port: int, *, prefer_port: int | None = None
    ) -> tuple[str, int] | None:
        """A forward from 127.0.0.1 here to ``host:port`` through the login node."""
        return "127.0.0.1", await self.ssh.forward(host, port, prefer_port)

    async def unexpose(self, host: str, port: int) -> None:
        await self.ssh.unforward(host, port)

    async def close(self) -> None:
        await self.ssh.close()


def _as_bytes(data: str | bytes) -> bytes:
    """SFTP files opened in binary mode read bytes; asyncssh's types allow either."""
    return data if isinstance(data, bytes) else data.encode()
