"""Test helpers for the logs service: read a job's output back from a real stream and
check it is complete, in order and gap-free by its own arithmetic."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from nats.js import JetStreamContext

from aifactory.logs.read import LogReader, Record, records
from aifactory.shared import subjects
from aifactory.shared.messages import LogAlert, LogEof, LogLines, LogStream


@dataclass
class Readback:
    """Everything the bus holds for one job."""

    batches: list[tuple[int, LogLines]] = field(default_factory=list)
    alerts: list[LogAlert] = field(default_factory=list)
    eofs: list[LogEof] = field(default_factory=list)

    def records(self, stream: LogStream) -> list[Record]:
        out: list[Record] = []
        for seq, batch in self.batches:
            if batch.stream is stream:
                out += records(seq, batch)
        return out

    def lines(self, stream: LogStream) -> list[str]:
        """Whole lines, cut records joined again (a file's last cut line ends with it)."""
        joined: list[str] = []
        pending, file = "", None
        for seq, batch in self.batches:
            if batch.stream is not stream:
                continue
            if batch.file != file and pending:
                joined.append(pending)
                pending = ""
            file = batch.file
            for record in records(seq, batch):
                pending += record.text
                if record.cut is None:
                    joined.append(pending)
                    pending = ""
        if pending:
            joined.append(pending)
        return joined

    def check_contiguous(self) -> None:
        """Each batch starts where the previous one of its file ended; indices and line
        numbers follow on: the proof that nothing is missing or doubled."""
        for stream in LogStream:
            previous: LogLines | None = None
            index = 0
            for _, batch in self.batches:
                if batch.stream is not stream:
                    continue
                assert batch.first_index == index, (stream, batch.first_index, index)
                index += len(batch.lines)
                if previous is not None and previous.file == batch.file:
                    cut = set(previous.split) | set(previous.partial)
                    assert batch.offset == previous.offset + previous.size
                    assert batch.first_line == previous.first_line + len(previous.lines) - len(cut)
                else:
                    assert batch.offset == 0 and batch.first_line == 1, batch
                previous = batch


async def read_back(js: JetStreamContext, service_id: str) -> Readback:
    reader = LogReader(js, subjects.LOGS, subjects.LOGS_EOF, subjects.LOG_ALERT, service_id)
    found = Readback()
    async for seq, event in reader.events():
        if isinstance(event, LogLines):
            found.batches.append((seq, event))
        elif isinstance(event, LogAlert):
            found.alerts.append(event)
        else:
            found.eofs.append(event)
    return found


async def wait_eof(js: JetStreamContext, service_id: str, timeout: float = 30) -> Readback:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await read_back(js, service_id)
        if found.eofs:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"no end of output for {service_id} within {timeout} s")


async def wait_records(
    js: JetStreamContext, service_id: str, stream: LogStream, count: int, timeout: float = 20
) -> Readback:
    deadline = time.monotonic() + timeout
    found = Readback()
    while time.monotonic() < deadline:
        found = await read_back(js, service_id)
        if len(found.records(stream)) >= count:
            return found
        await asyncio.sleep(0.1)
    have = len(found.records(stream))
    raise AssertionError(f"{service_id}/{stream}: {have} of {count} records")
