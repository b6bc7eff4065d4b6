"""Where a followed file stands, what is persisted of it, and the ids that make
re-publishing harmless.

The position of a (service, stream) is what the bus holds, never more: it advances only
after the stream acknowledged a batch. It is saved in the logs KV bucket after each ack; the
last stored batch of the subject says the same (and more recently, if the process died
between the ack and the save), so a restart resumes from whichever is newer.
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field

from aifactory.logs.alerts import OpenBlock
from aifactory.shared.messages import FileId, LogLines, LogStream


class Position(BaseModel):
    """The end of what is published for one (service, stream)."""

    model_config = ConfigDict(extra="forbid")

    #: The file being followed (``None``: none seen yet).
    file: FileId | None = None
    #: Bytes of ``file`` published.
    offset: int = 0
    #: Line number of the next record.
    line: int = 1
    #: Records published for this (service, stream) so far, over every file.
    index: int = 0
    #: The next record continues a line cut in the last one (split or partial).
    continues: bool = False

    def after(self, batch: LogLines) -> Position:
        """The position once ``batch`` is stored."""
        cut = set(batch.split) | set(batch.partial)
        complete = len(batch.lines) - len(cut)
        last = len(batch.lines) - 1
        return Position(
            file=batch.file,
            offset=batch.offset + batch.size,
            line=batch.first_line + complete,
            index=batch.first_index + len(batch.lines),
            continues=last in cut if batch.lines else self.continues,
        )

    def new_file(self, file: FileId) -> Position:
        """A new file (rotation) or generation (truncation) starts from its first byte."""
        return Position(file=file, offset=0, line=1, index=self.index, continues=False)


class Checkpoint(BaseModel):
    """The KV value of ``<service_id>.<stream>`` in the logs bucket."""

    model_config = ConfigDict(extra="forbid")

    service_id: str
    stream: LogStream
    job_id: str | None = None
    path: str | None = None
    position: Position = Field(default_factory=Position)
    #: Stream sequence of the batch that brought the position here (0: none yet).
    seq: int = 0
    #: A multi-line alert (traceback) opened before the position and not ended yet.
    block: OpenBlock | None = None
    #: The job's end is published: nothing more will come.
    eof: bool = False


def checkpoint_key(service_id: str, stream: LogStream) -> str:
    return f"{service_id}.{stream.value}"


def _digest(*parts: object) -> str:
    text = "/".join(str(p) for p in parts)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def batch_id(service_id: str, stream: LogStream, file: FileId, offset: int) -> str:
    """The Nats-Msg-Id of the batch starting at ``offset`` of ``file``: the same bytes
    published twice carry the same id, and the stream drops the second."""
    return _digest(
        "lines", service_id, stream.value, file.device, file.inode, file.generation, offset
    )


def alert_id(service_id: str, stream: LogStream, file: FileId, offset: int, pattern: str) -> str:
    return _digest(
        "alert", service_id, stream.value, file.device, file.inode, file.generation, offset, pattern
    )


def eof_id(service_id: str, job_id: str | None) -> str:
    return _digest("eof", service_id, job_id)
