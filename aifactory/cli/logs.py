"""``aifactory services logs ID``: a job's output, read from the bus.

Works from any machine that reaches NATS: the lines come from the logs stream, not from
the job's files. stdout lines go to stdout and stderr lines to stderr (as ``docker logs``
does), so ``2>/dev/null`` keeps one of them.
"""

from __future__ import annotations

import re
import sys
from collections import deque
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated

import typer

from aifactory.cli.busclient import BusUnavailable, bus
from aifactory.cli.common import fail, run, settings
from aifactory.logs.read import LogReader, Record, Start, records
from aifactory.shared import subjects
from aifactory.shared.messages import LogEof, LogLines, LogStream
from aifactory.shared.registry import KVRegistry, ServiceRecord

DEFAULT_LINES = 50
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class StreamChoice(StrEnum):
    out = "out"
    err = "err"


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``90s``, ``10m``, ``2h``, ``1d`` ago, or an ISO 8601 time (local time if no zone)."""
    match = _DURATION.fullmatch(text.strip())
    now = now or datetime.now(UTC)
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(
            f"--since {text!r}: give a duration (90s, 10m, 2h, 1d) or an ISO time"
        ) from exc
    return when if when.tzinfo else when.astimezone()


def _write(record: Record) -> None:
    out = sys.stdout if record.stream is LogStream.OUT else sys.stderr
    out.write(record.text if record.cut else record.text + "\n")


async def _show(
    service_id: str,
    follow: bool,
    lines: int | None,
    since: datetime | None,
    streams: tuple[LogStream, ...],
) -> None:
    async with bus(settings()) as (broker, topology):
        reader = LogReader(
            broker.connection.jetstream(),
            subjects.LOGS,
            subjects.LOGS_EOF,
            subjects.LOG_ALERT,
            service_id,
        )
        last = await reader.last()
        if last is None:
            known = await KVRegistry(topology.services, ServiceRecord).get(service_id)
            if known is None and not service_id.startswith("bench-"):
                raise fail(f"no service {service_id!r} and no output of it on the bus")
            if not follow:
                typer.echo(
                    f"{service_id}: no output on the bus yet (job pending, or the logs "
                    "service not running: 'aifactory status')",
                    err=True,
                )
                return
        # The last N lines by default; with --since every line since then, unless -n says.
        wanted = lines if lines is not None or since is not None else DEFAULT_LINES
        start: Start | None = None
        if since is None and last is not None and wanted is not None:
            start = await reader.tail_start(streams, wanted)
        keep: deque[Record] = deque(maxlen=wanted)
        seen: int | None = None
        ended: LogEof | None = None
        if last is not None:
            async for seq, event in reader.events(start=start, since=since, streams=streams):
                seen = seq
                if isinstance(event, LogLines):
                    wanted = start.from_index.get(event.stream, 0) if start else 0
                    keep.extend(records(seq, event, from_index=wanted))
                elif isinstance(event, LogEof):
                    ended = event
        for record in keep:
            _write(record)
        sys.stdout.flush()
        if not follow or ended is not None:
            return
        async for seq, event in reader.events(
            after_seq=seen, since=since if seen is None else None, follow=True, streams=streams
        ):
            if isinstance(event, LogLines):
                for record in records(seq, event):
                    _write(record)
                sys.stdout.flush()
                sys.stderr.flush()
            elif isinstance(event, LogEof):
                typer.echo(f"-- end of output: {event.reason} --", err=True)


def logs(
    service_id: Annotated[str, typer.Argument(help="A service id, or bench-<benchmark id>.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until the job ends.")
    ] = False,
    lines: Annotated[
        int | None,
        typer.Option("--lines", "-n", min=0, help=f"Last lines to show (default {DEFAULT_LINES})."),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only lines published since: 10m, 2h, 1d or an ISO time.")
    ] = None,
    stream: Annotated[
        StreamChoice | None, typer.Option(help="Only stdout (out) or stderr (err).")
    ] = None,
) -> None:
    """Print a job's output (stdout and stderr) from the bus; -f follows it."""
    try:
        start = parse_since(since) if since else None
    except ValueError as exc:
        raise fail(str(exc)) from exc
    streams = (LogStream(stream.value),) if stream else (LogStream.OUT, LogStream.ERR)
    try:
        run(_show(service_id, follow, lines, start, streams))
    except BusUnavailable as exc:
        raise fail(str(exc)) from exc
    except KeyboardInterrupt:
        return
