"""The file side of garbage collection: what a folder holds, and removing it, never leaving
the root it was found in.

Nothing here follows a symbolic link: sizes are ``lstat`` sizes, a link in a job folder is
counted as the link and removed as the link, and a link directly in the root is neither
measured nor removed (it may point at anything: the user's home, a shared results area).
Removal goes through ``shutil.rmtree``'s file-descriptor walk, which refuses to descend
into a directory swapped for a link between the check and the removal.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


class RefusedPath(ValueError):
    """A path gc must not touch: outside its root, the root itself, or a link."""


@dataclass(frozen=True, slots=True)
class Usage:
    """What a folder holds, its own entry and every file below it counted once."""

    #: Space on disk (allocated blocks, as ``du`` counts): what removing it frees.
    bytes: int
    files: int
    #: The newest modification time in the tree (epoch seconds): when it last changed.
    last_change: float


def checked_root(path: Path) -> Path:
    """The root, resolved once (a jobs folder that is itself a link to scratch space is the
    user's configuration); ``/`` and the home directory are refused outright."""
    root = path.expanduser().resolve()
    if root == Path(root.anchor) or root == Path.home().resolve():
        raise RefusedPath(f"refusing to collect in {root}: set a dedicated folder")
    return root


def child(root: Path, name: str) -> Path:
    """``root / name`` for a plain entry name, never a path that could climb out."""
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise RefusedPath(f"{name!r} is not a plain entry name inside {root}")
    return root / name


def folders(root: Path) -> Iterator[os.DirEntry[str]]:
    """Entries directly in ``root``, sorted by name (links and files included: the caller
    says why it skips them)."""
    with os.scandir(root) as it:
        entries = list(it)
    yield from sorted(entries, key=lambda e: e.name)


def usage(path: Path) -> Usage:
    """Walk ``path`` without following links; raises ``OSError`` on an unreadable part (a
    folder gc cannot fully read is a folder it cannot fully remove either)."""
    own = os.lstat(path)
    total, files, newest = own.st_blocks * 512, 0, own.st_mtime
    pending = [path]
    while pending:
        with os.scandir(pending.pop()) as it:
            for entry in it:
                info = entry.stat(follow_symlinks=False)
                total += info.st_blocks * 512
                newest = max(newest, info.st_mtime)
                if stat.S_ISDIR(info.st_mode):
                    pending.append(Path(entry.path))
                else:
                    files += 1
    return Usage(bytes=total, files=files, last_change=newest)


def job_ids(folder: Path) -> tuple[list[str], list[str]]:
    """Job names (``<name>.sh``) and job ids (``<name>-<id>.out``) a job folder records.

    Every executor names files so (SLURM's ``%x-%j.out``, imitated by ``local``). A job
    still queued has a script and no output yet: its id is only in the registry.
    """
    names: list[str] = []
    ids: list[str] = []
    with os.scandir(folder) as it:
        entries = [e.name for e in it if e.is_file(follow_symlinks=False)]
    for entry in sorted(entries):
        if entry.endswith(".sh"):
            names.append(entry[: -len(".sh")])
    for name in names:
        pattern = re.compile(re.escape(name) + r"-(\d+)\.out")
        ids += [m.group(1) for e in sorted(entries) if (m := pattern.fullmatch(e))]
    return names, list(dict.fromkeys(ids))


def remove_folder(root: Path, path: Path) -> None:
    """Delete ``path``, which must be a real directory directly inside ``root``."""
    if path.parent != root or path.name in ("", ".", ".."):
        raise RefusedPath(f"{path} is not a folder directly inside {root}")
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise RefusedPath(f"{path} is a symbolic link: never followed, never removed")
    if not stat.S_ISDIR(info.st_mode):
        raise RefusedPath(f"{path} is not a folder")
    if not shutil.rmtree.avoids_symlink_attacks:
        raise RefusedPath("this platform's rmtree could follow links swapped in meanwhile")
    shutil.rmtree(path)
