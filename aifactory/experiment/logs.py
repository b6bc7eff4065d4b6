"""The experiment's job logs, read from the logs stream into the report folder.

For each job (the service, and each benchmark's workers' job when it had one) the folder
gets ``logs/<id>.out.log`` and ``logs/<id>.err.log`` as the bus holds them, and
``logs/alerts.json`` with every alert found in them. A job that has ended is read until
its end of output (``logs.<id>.eof``, waited for up to a timeout); a job still running
(``teardown: never``) is read up to now. When the bus holds nothing for a job (no logs
service on this stack) its file is copied if this machine can read it, and the copy is
labelled as such.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from nats.js import JetStreamContext

from aifactory.logs.read import LogReader, records
from aifactory.shared import subjects
from aifactory.shared.messages import LogAlert, LogEof, LogLines, LogStream

LOGS_DIR = "logs"


@dataclass
class SavedLog:
    """One job file as saved in the folder."""

    job: str
    stream: LogStream
    path: Path
    records: int = 0
    bytes: int = 0
    #: Where it came from: ``bus`` (complete), ``bus (incomplete)`` or ``file copy``.
    source: str = "bus"


@dataclass
class SavedLogs:
    files: list[SavedLog] = field(default_factory=list)
    alerts: list[LogAlert] = field(default_factory=list)


async def save_job_log(
    js: JetStreamContext,
    folder: Path,
    job: str,
    *,
    wait_eof: float,
    fallback: dict[LogStream, str | None] | None = None,
) -> SavedLogs:
    """Write ``job``'s files from the bus; wait up to ``wait_eof`` s for its end (0: read
    what is there now)."""
    target = folder / LOGS_DIR
    target.mkdir(parents=True, exist_ok=True)
    reader = LogReader(js, subjects.LOGS, subjects.LOGS_EOF, subjects.LOG_ALERT, job)
    saved = SavedLogs()
    handles: dict[LogStream, tuple[SavedLog, IO[str]]] = {}
    ended: LogEof | None = None
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_eof if wait_eof > 0 else None):
                async for seq, event in reader.events(follow=wait_eof > 0):
                    if isinstance(event, LogAlert):
                        saved.alerts.append(event)
                    elif isinstance(event, LogEof):
                        ended = event
                    elif isinstance(event, LogLines):
                        entry, out = _handle(handles, target, job, event.stream)
                        for record in records(seq, event):
                            out.write(record.text if record.cut else record.text + "\n")
                        entry.records += len(event.lines)
                        entry.bytes += event.size
    finally:
        for entry, out in handles.values():
            out.close()
            if ended is None and wait_eof > 0:
                entry.source = "bus (incomplete: no end of output within the wait)"
            saved.files.append(entry)
    if not handles and fallback:
        saved.files += _copy_files(target, job, fallback)
    return saved


def _handle(
    handles: dict[LogStream, tuple[SavedLog, IO[str]]], target: Path, job: str, stream: LogStream
) -> tuple[SavedLog, IO[str]]:
    if stream not in handles:
        path = target / f"{job}.{stream.value}.log"
        handles[stream] = (SavedLog(job, stream, path), path.open("w", encoding="utf-8"))
    return handles[stream]


def _copy_files(target: Path, job: str, files: dict[LogStream, str | None]) -> list[SavedLog]:
    copied = []
    for stream, name in files.items():
        if name and Path(name).is_file():
            path = target / f"{job}.{stream.value}.log"
            shutil.copyfile(name, path)
            size = path.stat().st_size
            copied.append(SavedLog(job, stream, path, bytes=size, source="file copy"))
    return copied


def write_alerts(folder: Path, alerts: list[LogAlert]) -> Path:
    path = folder / LOGS_DIR / "alerts.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([a.model_dump(mode="json") for a in alerts], indent=2))
    return path
