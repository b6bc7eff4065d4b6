"""Following one job file: read what was appended, cut it into records, publish them in
batches, and only then move the position on.

The file is reached through the executor (:class:`~aifactory.shared.executors.files.JobFile`),
so the same code reads a local file, a shared file system and (``slurm+ssh``) SFTP. Files
as they really are:

- **not there yet** (a pending job): nothing happens until it appears;
- **rotated** (the path names a new inode): the old file is read to its end through the
  handle opened before, its last line flushed, then the new one is read from byte 0;
- **truncated in place** (smaller than what was read): a new *generation* of the same
  inode starts at byte 0 (the generation keeps batch ids distinct);
- **moved or deleted** with the job still writing: the open handle keeps following it;
- **a last line without newline**: held for ``partial_timeout``, then published as partial
  (the rest follows as the next record, with the same line number);
- **giant lines, invalid UTF-8**: see :mod:`aifactory.logs.lines`.

Exactly once: a batch's Nats-Msg-Id is its file identity + offset; the position moves only
on the stream's ack and is checkpointed after it (at most every second while a file
streams, at once when it is caught up); at start the follower replays what the stream
holds beyond the checkpoint (a crash between ack and checkpoint), so it continues exactly
after the last stored byte.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from nats.errors import MaxPayloadError

from aifactory.logs.alerts import AlertScanner, Found
from aifactory.logs.lines import Cut, Records, cut_records, irregular_sizes, record_sizes
from aifactory.logs.sink import LogSink, Stored
from aifactory.logs.state import Checkpoint, alert_id, batch_id
from aifactory.shared.bus.publish import PublishRefused
from aifactory.shared.executors.base import Executor
from aifactory.shared.executors.files import JobFile
from aifactory.shared.messages import FileId, LogAlert, LogLines, LogStream
from aifactory.shared.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FollowConfig:
    poll_interval: float = 0.5
    partial_timeout: float = 2.0
    max_line_bytes: int = 64 * 1024
    batch_bytes: int = 128 * 1024
    batch_lines: int = 5000
    end_grace: float = 5.0
    #: Bytes read from a file per step (what one step may publish).
    read_bytes: int = 1024 * 1024

    @classmethod
    def from_settings(cls, s: Settings) -> FollowConfig:
        return cls(
            poll_interval=s.logs_poll_interval,
            partial_timeout=s.logs_partial_timeout,
            max_line_bytes=s.logs_max_line_bytes,
            batch_bytes=s.logs_batch_bytes,
            batch_lines=s.logs_batch_lines,
            end_grace=s.logs_end_grace,
        )


#: Seconds between checkpoint writes while a file keeps streaming.
CHECKPOINT_INTERVAL = 1.0


class Observer(Protocol):
    """Where followers report what they did (the service turns it into Prometheus)."""

    def batch(self, stream: LogStream, records: int, size: int, lag: float) -> None: ...

    def alert(self, pattern: str) -> None: ...


class NullObserver:
    def batch(self, stream: LogStream, records: int, size: int, lag: float) -> None:
        return None

    def alert(self, pattern: str) -> None:
        return None


class Resync(Exception):
    """The stream held a different batch at our offset: continue from what it holds."""


class FileFollower:
    """One (service, stream): the file at ``path`` and whatever replaces it there."""

    def __init__(
        self,
        *,
        files: Executor,
        sink: LogSink,
        service_id: str,
        stream: LogStream,
        job_id: str | None,
        path: Path,
        config: FollowConfig,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.files, self.sink, self.config = files, sink, config
        self.path = path
        self.observer = observer or NullObserver()
        self.clock = clock
        self.cp = Checkpoint(service_id=service_id, stream=stream, job_id=job_id, path=str(path))
        self.scanner = AlertScanner()
        self.handle: JobFile | None = None
        self.current: FileId | None = None
        self.read_offset = 0
        self.buf = b""
        self.held_since: float | None = None
        self.read_at = 0.0
        self.done = False
        self._warned: str | None = None
        #: Why the file was not read to its end, once ``done`` (``None``: it was).
        self.problem: str | None = None
        #: What the KV holds: the checkpoint is saved at most every CHECKPOINT_INTERVAL
        #: while a file streams, and as soon as it is caught up (the stream itself holds
        #: the newer batches, which ``start`` replays after a crash).
        self.saved_seq = 0
        self.saved_at = 0.0

    @property
    def service_id(self) -> str:
        return self.cp.service_id

    @property
    def stream(self) -> LogStream:
        return self.cp.stream

    # -- start: checkpoint, then whatever the stream holds beyond it -------------------------

    async def start(self) -> None:
        saved = await self.sink.load(self.service_id, self.stream)
        if saved is not None:
            self.cp = saved.model_copy(update={"job_id": self.cp.job_id, "path": self.cp.path})
        self.scanner = AlertScanner(block=self.cp.block)
        replayed = 0
        async for stored in self.sink.stored_after(self.service_id, self.stream, self.cp.seq):
            await self._committed(stored)  # re-scan for alerts: ids dedupe what was sent
            replayed += 1
        if replayed:
            log.info("%s/%s: %d stored batch(es) beyond the checkpoint", *self._name(), replayed)
            await self.save()
        self.saved_seq = self.cp.seq

    # -- one step ------------------------------------------------------------------------

    async def step(self, *, ending: bool = False) -> bool:
        """Read and publish what there is; returns whether anything happened. ``ending``:
        the job is over, so a held partial line goes out and, once nothing is left, the
        follower is ``done``."""
        if self.done:
            return False
        if self.handle is None and not await self._open():
            if ending:
                self.done = True
                self.problem = self._warned or f"{self.path} never appeared"
            return False
        assert self.handle is not None and self.current is not None
        now = self.clock()
        # One stat of the path says most: same file, and its size. Only when the path names
        # another file, or none, is the open handle asked (rotated, moved or deleted).
        st = await self.files.stat(self.path)
        same = st is not None and st.identity == (self.current.device, self.current.inode)
        size = st.size if st is not None and same else (await self.handle.stat()).size
        if size < self.read_offset:  # truncated in place: a new generation from byte 0
            await self._emit(flush_tail=True)
            log.info("%s/%s: %s was truncated", *self._name(), self.path)
            await self._switch(
                self.current.model_copy(update={"generation": self.current.generation + 1})
            )
            return True
        if size > self.read_offset:
            length = min(self.config.read_bytes, size - self.read_offset)
            data = await self.handle.read(self.read_offset, length)
            if data:
                self.read_at = now
                self.read_offset += len(data)
                self.buf += data
                await self._emit(flush_tail=False)
                return True
        if st is not None and not same:  # the old file is read to its end: rotation
            await self._emit(flush_tail=True)
            log.info("%s/%s: %s was replaced (rotation)", *self._name(), self.path)
            await self._close()
            await self._open()
            return True
        held = self.held_since is not None and now - self.held_since >= self.config.partial_timeout
        if self.buf and (ending or held):
            await self._emit(flush_tail=True)
            return True
        if self.unsaved:  # caught up: the checkpoint says so too
            await self.save()
        if ending:
            self.done = True
            await self._close()
        return False

    @property
    def unsaved(self) -> bool:
        return self.cp.seq != self.saved_seq

    async def save(self) -> None:
        await self.sink.save(self.cp)
        self.saved_seq, self.saved_at = self.cp.seq, self.clock()

    async def reset(self) -> None:
        """After an error: forget what was read and not published; re-read from the position."""
        await self._close()

    async def close(self) -> None:
        await self._close()

    # -- files ----------------------------------------------------------------------------

    async def _open(self) -> bool:
        try:
            handle = await self.files.open_file(self.path)
        except PermissionError as exc:
            self._warn_once(f"cannot read {self.path}: {exc}")
            return False
        if handle is None:
            return False
        fst = await handle.stat()
        pos = self.cp.position
        same = pos.file is not None and (pos.file.device, pos.file.inode) == fst.identity
        self.handle = handle
        if same and fst.size >= pos.offset:
            assert pos.file is not None
            self.current = pos.file
        elif same:
            assert pos.file is not None  # truncated while nobody watched
            await self._switch(pos.file.model_copy(update={"generation": pos.file.generation + 1}))
        else:
            await self._switch(FileId(device=fst.device, inode=fst.inode))
        self.read_offset, self.buf, self.held_since = self.cp.position.offset, b"", None
        self._warned = None
        self.problem = None
        return True

    async def _switch(self, file: FileId) -> None:
        """Start ``file`` from byte 0; saved at once so a restart knows the old one is done."""
        self.current = file
        self.cp = self.cp.model_copy(update={"position": self.cp.position.new_file(file)})
        self.read_offset, self.buf, self.held_since = 0, b"", None
        await self.save()

    async def _close(self) -> None:
        handle, self.handle = self.handle, None
        self.current, self.buf, self.held_since = None, b"", None
        if handle is not None:
            await handle.close()

    # -- publishing -----------------------------------------------------------------------

    async def _emit(self, *, flush_tail: bool) -> None:
        records, consumed = cut_records(self.buf, self.config.max_line_bytes, flush_tail=flush_tail)
        if records:
            try:
                await self._publish(records)
            except Resync:
                await self._close()  # re-open and re-read from the stored position
                return
        self.buf = self.buf[consumed:]
        if not self.buf:
            self.held_since = None
        elif consumed or self.held_since is None:
            self.held_since = self.clock()

    async def _publish(self, records: Records) -> None:
        for start, stop in records.batches(self.config.batch_bytes, self.config.batch_lines):
            await self._publish_part(records.slice(start, stop))

    async def _publish_part(self, part: Records) -> None:
        assert self.current is not None
        pos = self.cp.position
        batch = LogLines(
            id=batch_id(self.service_id, self.stream, self.current, pos.offset),
            service_id=self.service_id,
            job_id=self.cp.job_id,
            stream=self.stream,
            path=str(self.path),
            file=self.current,
            offset=pos.offset,
            size=part.size,
            first_line=pos.line,
            first_index=pos.index,
            lines=part.texts,
            split=[i for i, c in part.cuts.items() if c is Cut.SPLIT],
            partial=[i for i, c in part.cuts.items() if c is Cut.PARTIAL],
            sizes=irregular_sizes(part),
        )
        try:
            stored = await self.sink.publish_lines(batch)
        except PublishRefused as exc:
            if not isinstance(exc.__cause__, MaxPayloadError) or len(part) < 2:
                raise
            half = len(part) // 2  # the server's max_payload is smaller than our batches
            await self._publish_part(part.slice(0, half))
            await self._publish_part(part.slice(half, len(part)))
            return
        await self._committed(stored)
        self.observer.batch(
            self.stream, len(stored.batch.lines), stored.batch.size, self.clock() - self.read_at
        )
        if self.clock() - self.saved_at >= CHECKPOINT_INTERVAL:
            await self.save()
        if stored.batch is not batch and (
            stored.batch.size != batch.size or stored.batch.lines != batch.lines
        ):
            raise Resync

    async def _committed(self, stored: Stored) -> None:
        """The stream holds ``stored``: scan it for alerts, move the position after it."""
        batch = stored.batch
        for found in self._scan(batch):
            await self._alert(batch, found)
        self.cp = self.cp.model_copy(
            update={
                "position": self.cp.position.after(batch),
                "seq": stored.seq,
                "block": self.scanner.block.model_copy(deep=True) if self.scanner.block else None,
            }
        )

    def _scan(self, batch: LogLines) -> list[Found]:
        cuts = set(batch.split) | set(batch.partial)
        sizes: list[int] = []

        def locate(i: int) -> tuple[int, int]:
            if not sizes:
                sizes.extend(record_sizes(batch.lines, cuts, batch.sizes))
            line = batch.first_line + i - sum(1 for c in cuts if c < i)
            return line, batch.offset + sum(sizes[:i])

        first_continues = self.cp.position.continues and self.cp.position.file == batch.file
        return self.scanner.scan(batch.lines, cuts, locate, first_continues=first_continues)

    async def _alert(self, batch: LogLines, found: Found) -> None:
        alert = LogAlert(
            id=alert_id(self.service_id, self.stream, batch.file, found.offset, found.pattern.name),
            service_id=self.service_id,
            job_id=self.cp.job_id,
            stream=self.stream,
            pattern=found.pattern.name,
            severity=found.pattern.severity,
            summary=found.summary,
            line=found.line,
            offset=found.offset,
            file=batch.file,
            context=found.context,
            suppressed=found.suppressed,
        )
        await self.sink.publish_alert(alert)
        self.observer.alert(found.pattern.name)

    def _name(self) -> tuple[str, str]:
        return self.service_id, self.stream.value

    def _warn_once(self, message: str) -> None:
        if message != self._warned:
            log.warning("%s/%s: %s", *self._name(), message)
            self._warned = message
