"""Look for secrets where they must not be: in files, and in every process's command line
and (our own processes') environment.

A secret is a random *sentinel* string, so a hit cannot be a coincidence. Each is searched
for as raw bytes, as base64 (at the three byte alignments, so it is found inside a longer
encoded value such as a Basic-auth header) and as hex. The value itself only holds
``[A-Za-z0-9-]``, so its JSON, shell-quoted and URL-encoded forms are the raw bytes.
"""

from __future__ import annotations

import base64
import fnmatch
import os
import secrets
import stat
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: Files larger than this are read in chunks (JetStream blocks, Parquet files).
CHUNK = 4 << 20


@dataclass(frozen=True)
class Sentinel:
    """One secret: what it is (``label``) and its random value."""

    label: str
    value: str

    @classmethod
    def make(cls, label: str) -> Sentinel:
        return cls(label, f"sntl-{label.replace(' ', '-')}-{secrets.token_hex(12)}")

    def forms(self) -> dict[str, bytes]:
        raw = self.value.encode()
        found = {"raw": raw, "hex": raw.hex().encode()}
        for shift in range(3):
            encoded = base64.b64encode(b"\0" * shift + raw)
            start = -(-8 * shift // 6)  # the first character made of sentinel bits only
            end = 8 * (shift + len(raw)) // 6  # the last one
            found[f"base64+{shift}"] = encoded[start:end]
        return found


@dataclass(frozen=True, order=True)
class Hit:
    """Where a sentinel was seen, in which form."""

    where: str
    label: str
    form: str


Needles = list[tuple[str, str, bytes]]


def needles(sentinels: Iterable[Sentinel]) -> Needles:
    """(label, form, bytes) of every form of every sentinel, computed once."""
    return [(s.label, form, needle) for s in sentinels for form, needle in s.forms().items()]


def search(data: bytes, where: str, wanted: Needles) -> set[Hit]:
    return {Hit(where, label, form) for label, form, needle in wanted if needle in data}


def _regular_files(root: Path) -> Iterator[Path]:
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            if path.is_file() and not path.is_symlink():
                yield path


def scan_files(roots: Iterable[Path], sentinels: list[Sentinel], since: float = 0.0) -> set[Hit]:
    """Every hit in every regular file under ``roots`` modified at or after ``since``.

    Files are read in overlapping chunks, so a sentinel across a chunk border is found.
    """
    wanted = needles(sentinels)
    overlap = max(len(needle) for _, _, needle in wanted)
    hits: set[Hit] = set()
    for root in roots:
        for path in _regular_files(root):
            try:
                info = path.stat()
                if info.st_uid != os.getuid() or info.st_mtime < since:
                    continue
                with path.open("rb") as fh:
                    tail = b""
                    while chunk := fh.read(CHUNK):
                        hits |= search(tail + chunk, str(path), wanted)
                        tail = chunk[-overlap:]
            except (FileNotFoundError, PermissionError):
                continue  # another process's file that went away, or is not ours to read
    return hits


@dataclass
class ProcessWatch:
    """Samples ``/proc`` in a thread: every process's command line, and the environment of
    those this user owns (the kernel shows no one else's), while the experiment runs."""

    sentinels: list[Sentinel]
    #: Also record the mode of every file matching ``glob`` under ``files_root`` (secret
    #: files that only exist while a job runs).
    files_root: Path | None = None
    glob: str = "*"
    #: One sample reads two files per process (~15 ms for 150 processes): every 0.2 s
    #: sees each of our processes (they live for seconds) at a small CPU cost.
    interval_s: float = 0.2
    #: path → the modes it was seen with.
    files: dict[Path, set[int]] = field(default_factory=dict)
    #: pid → its command line.
    commands: dict[int, str] = field(default_factory=dict)
    #: pid → its parent's pid (helpers a library spawns take their parent's side).
    parents: dict[int, int] = field(default_factory=dict)
    cmdline_hits: set[Hit] = field(default_factory=set)
    environ_hits: set[Hit] = field(default_factory=set)
    samples: int = 0
    error: Exception | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _wanted: Needles = field(default_factory=list)

    def __post_init__(self) -> None:
        self._wanted = needles(self.sentinels)

    def __enter__(self) -> ProcessWatch:
        self._thread = threading.Thread(target=self._run, name="proc-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=10)
        if self.error is not None:
            raise AssertionError("the /proc watch broke off") from self.error

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.sample()
                self._stop.wait(self.interval_s)
        except Exception as exc:  # handed to the test by __exit__
            self.error = exc

    def sample(self) -> None:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            cmdline = _read(f"/proc/{pid}/cmdline")
            if not cmdline:  # gone, a kernel thread, or a zombie (whose cmdline is empty)
                continue
            shown = cmdline.replace(b"\0", b" ").decode(errors="replace")
            self.commands[pid] = shown  # the latest: a pid can be reused
            parent = _ppid(pid)
            if parent is not None:
                self.parents[pid] = parent
            label = f"pid {pid} ({shown[:160]})"
            self.cmdline_hits |= search(cmdline, label, self._wanted)
            environ = _read(f"/proc/{pid}/environ")
            if environ is not None:
                self.environ_hits |= search(environ, label, self._wanted)
        if self.files_root is not None:
            self._sample_files(self.files_root)
        self.samples += 1

    def _sample_files(self, root: Path) -> None:
        for folder, _dirs, names in os.walk(root):  # os.walk skips folders that vanish
            for name in fnmatch.filter(names, self.glob):
                path = Path(folder, name)
                try:
                    mode = stat.S_IMODE(path.lstat().st_mode)
                except FileNotFoundError:
                    continue
                self.files.setdefault(path, set()).add(mode)


def _ppid(pid: int) -> int | None:
    stat_line = _read(f"/proc/{pid}/stat")
    if not stat_line:
        return None
    # "pid (comm) state ppid …": comm may hold spaces and parentheses; split after the last ')'
    return int(stat_line.rsplit(b")", 1)[1].split()[1])


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None  # the process ended, or is another user's
