"""Job output on the bus: line batches, the end of a job's output, alerts found in it.

A batch says exactly which bytes of which file it holds (file identity, byte offset, size,
first line number), so a reader can prove it has every line once: within one file, each
batch starts where the previous one ended. Lines are text (invalid UTF-8 shows as U+FFFD)
but offsets and sizes count the file's bytes, so the arithmetic stays exact.

A "record" is one entry of ``lines``: a whole line, or a piece of one when the line was cut
(``split``: longer than the limit; ``partial``: no newline came in time). The pieces of a
cut line carry the same line number.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from aifactory.shared.messages.base import ID_PATTERN, Message, Model


class LogStream(StrEnum):
    """Which of a job's files: its stdout or its stderr."""

    OUT = "out"
    ERR = "err"


class AlertSeverity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


SERVICE_ID = Field(
    pattern=ID_PATTERN,
    description="The service (or ``bench-<benchmark id>`` for a benchmark's workers' job).",
)


class FileId(Model):
    """Which file, whatever its name is now: truncating it in place starts a new generation."""

    device: int = Field(ge=0, description="st_dev of the file.")
    inode: int = Field(ge=0, description="st_ino of the file.")
    generation: int = Field(
        default=0, ge=0, description="Times the file was seen truncated (0 for the original)."
    )


class LogLines(Message):
    """A batch of consecutive records of one job output file.

    ``id`` (the Nats-Msg-Id) is derived from the service, stream, file and ``offset``: a
    batch published again after a crash is dropped by the stream's duplicate window.
    """

    service_id: str = SERVICE_ID
    job_id: str | None = Field(default=None, description="The scheduler's job id.")
    stream: LogStream = Field(description="``out`` (stdout) or ``err`` (stderr).")
    path: str = Field(description="The file's path where the job writes it.")
    file: FileId = Field(description="The file's identity (device, inode, generation).")
    offset: int = Field(ge=0, description="Byte offset in the file of the first record.")
    size: int = Field(
        ge=0, description="Bytes of the file this batch covers; the next starts at offset+size."
    )
    first_line: int = Field(ge=1, description="Line number in the file of the first record.")
    first_index: int = Field(
        ge=0,
        description="Records published for this service and stream before this batch, over "
        "every file (rotations included): the position readers count from.",
    )
    lines: list[str] = Field(description="The records, newline removed, in file order.")
    split: list[int] = Field(
        default_factory=list,
        description="Indices of records cut at the line-length limit: the line goes on in "
        "the next record.",
    )
    partial: list[int] = Field(
        default_factory=list,
        description="Indices of records published without their newline (none came within "
        "the partial-line timeout, or the job ended): the line may go on in the next record.",
    )
    sizes: list[tuple[int, int]] = Field(
        default_factory=list,
        description="[index, bytes] for each record whose size in the file is not the UTF-8 "
        "length of its text (+1 for the newline): records with invalid UTF-8.",
    )


class StreamEnd(Model):
    """Where one of a job's files ended."""

    stream: LogStream = Field(description="``out`` or ``err``.")
    file: FileId | None = Field(description="The last file followed; none if it never existed.")
    offset: int = Field(ge=0, description="Bytes published from that file.")
    records: int = Field(
        ge=0, description="Records published for this stream in total (first_index of a next)."
    )
    problem: str | None = Field(
        default=None,
        description="Why the file was not read to its end, if it was not (it could not be "
        "opened, it never appeared).",
    )


class LogEof(Message):
    """Every line of the job's output is on the bus: the job ended and its files are read."""

    service_id: str = SERVICE_ID
    job_id: str | None = Field(default=None, description="The scheduler's job id.")
    reason: str = Field(description="Why the output is complete (the job's end state).")
    streams: list[StreamEnd] = Field(description="Where each followed file ended.")


class LogAlert(Message):
    """A known failure pattern found in a job's output (traceback, CUDA OOM, NCCL…)."""

    service_id: str = SERVICE_ID
    job_id: str | None = Field(default=None, description="The scheduler's job id.")
    stream: LogStream = Field(description="The file it was found in.")
    pattern: str = Field(description="Name of the pattern in the alert table.")
    severity: AlertSeverity = Field(description="How bad the pattern usually is.")
    summary: str = Field(description="The telling line (for a traceback: the exception).")
    line: int = Field(ge=1, description="Line number where the match starts.")
    offset: int = Field(ge=0, description="Byte offset in the file of that line.")
    file: FileId = Field(description="The file's identity.")
    context: list[str] = Field(
        default_factory=list, description="The matched lines (a whole traceback), capped."
    )
    suppressed: int = Field(
        default=0,
        ge=0,
        description="Matches of this pattern not sent just before this one (rate limit).",
    )
