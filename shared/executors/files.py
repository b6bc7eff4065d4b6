"""Reading job files where the jobs write them: the executor-level file interface.

The logs service follows job output through these calls only, never through ``open()``, so
that one follower serves every executor: ``local`` and ``slurm`` read this host's (shared)
file system with the implementations below; an executor whose files live elsewhere
(``slurm+ssh``: over SFTP) overrides ``Executor.stat``, ``read_range`` and ``open_file``.

Why an open handle as well as path calls: a log rotated by rename keeps its old inode, which
the path no longer names. Reading through the handle opened before the rename finishes the
old file; the path's new identity then says a new file starts (as ``tail -F`` does).
"""

from __future__ import annotations

import abc
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class FileStat:
    """What a follower needs to know about a file: who it is, and how long."""

    #: File identity: the same (device, inode) is the same file, whatever its name now.
    device: int
    inode: int
    size: int
    #: Modification time, seconds since the epoch.
    mtime: float

    @property
    def identity(self) -> tuple[int, int]:
        return (self.device, self.inode)

    @classmethod
    def from_os(cls, st: os.stat_result) -> FileStat:
        return cls(device=st.st_dev, inode=st.st_ino, size=st.st_size, mtime=st.st_mtime)


class JobFile(abc.ABC):
    """An open job file: reads stay on the file that was opened, even once renamed or
    deleted (the job's own descriptor keeps it alive)."""

    @abc.abstractmethod
    async def stat(self) -> FileStat:
        """The open file's identity and current size (``fstat``)."""

    @abc.abstractmethod
    async def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset``; fewer at the end of the file."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the handle; closing twice is not an error."""


class LocalJobFile(JobFile):
    """A descriptor on this host. ``pread`` does not move a shared position, and on a
    local or network file system it costs microseconds: no thread hop."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def _open_fd(self) -> int:
        if self._fd is None:
            raise ValueError("the job file is closed")
        return self._fd

    async def stat(self) -> FileStat:
        return FileStat.from_os(os.fstat(self._open_fd()))

    async def read(self, offset: int, length: int) -> bytes:
        return os.pread(self._open_fd(), length, offset)

    async def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def local_stat(path: Path) -> FileStat | None:
    """``stat`` of a path on this host; ``None`` when it does not exist (yet)."""
    try:
        return FileStat.from_os(os.stat(path))
    except FileNotFoundError:
        return None


def local_read_range(path: Path, offset: int, length: int) -> bytes:
    with path.open("rb") as fh:
        fh.seek(offset)
        return fh.read(length)


def local_open(path: Path) -> LocalJobFile | None:
    """Open for reading; ``None`` when the file does not exist (yet)."""
    try:
        return LocalJobFile(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
    except FileNotFoundError:
        return None


def job_output_paths(workdir: Path, name: str, job_id: str) -> tuple[Path, Path]:
    """Where a job's stdout and stderr go: SLURM's ``%x-%j.out`` / ``%x-%j.err`` naming,
    used by every executor so that everything downstream finds them the same way."""
    return workdir / f"{name}-{job_id}.out", workdir / f"{name}-{job_id}.err"
