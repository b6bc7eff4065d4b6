"""Job files on the cluster, followed from a laptop: the ``slurm+ssh`` executor's file calls.

SFTP (version 3, what OpenSSH speaks) reports a file's size and times but not its device
and inode, and the logs service needs that identity to tell a rotated log from a grown one.
So the path's identity comes from coreutils ``stat`` run on the login node (one short
command on the already open connection), while the bytes come over SFTP through a handle
opened on the file itself: the server keeps that descriptor, so reads stay on the opened
file after a rename, exactly as :class:`~aifactory.shared.executors.files.LocalJobFile` does.
"""

from __future__ import annotations

import asyncio
import logging

import asyncssh

from aifactory.shared.executors.files import FileStat, JobFile

log = logging.getLogger(__name__)

#: ``stat`` output: device, inode, size, mtime (seconds); ``-L`` follows a link as open does.
STAT_ARGS = ("stat", "-L", "--format=%d %i %s %Y", "--")


def parse_stat(out: str) -> FileStat:
    """One line of :data:`STAT_ARGS` output; ``ValueError`` for anything else."""
    fields = out.split()
    if len(fields) != 4:
        raise ValueError(f"unexpected stat output {out.strip()[:80]!r}")
    device, inode, size, mtime = (int(f) for f in fields)
    return FileStat(device=device, inode=inode, size=size, mtime=float(mtime))


def missing(stderr: str) -> bool:
    """Whether a failed ``stat`` said the file is not there (yet)."""
    return "No such file" in stderr


class SftpJobFile(JobFile):
    """An SFTP handle on a job file, with the identity learnt when it was opened."""

    def __init__(self, handle: asyncssh.SFTPClientFile, identity: FileStat, timeout: float):
        self._handle: asyncssh.SFTPClientFile | None = handle
        self._identity = identity
        self._timeout = timeout

    def _open_handle(self) -> asyncssh.SFTPClientFile:
        if self._handle is None:
            raise ValueError("the job file is closed")
        return self._handle

    async def stat(self) -> FileStat:
        attrs = await asyncio.wait_for(self._open_handle().stat(), self._timeout)
        return FileStat(
            device=self._identity.device,
            inode=self._identity.inode,
            size=attrs.size or 0,
            mtime=float(attrs.mtime or self._identity.mtime),
        )

    async def read(self, offset: int, length: int) -> bytes:
        data = await asyncio.wait_for(self._open_handle().read(length, offset), self._timeout)
        return data if isinstance(data, bytes) else data.encode()

    async def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            try:
                await asyncio.wait_for(handle.close(), self._timeout)
            except (asyncssh.Error, OSError, TimeoutError) as exc:
                # The connection is gone, and the server closed the handle with it.
                log.debug("closing an SFTP handle: %s", exc)
