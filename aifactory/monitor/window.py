"""Reading a time window of one service's scrapes back from the monitor's stream, and the
flat rows a benchmark keeps of it (``server_metrics.jsonl``).

The stream is the record: a report or a late viewer asks for ``[start, end]`` and gets
every scrape published in it (ordered consumer from the start time; nothing durable is
left behind). Right after a benchmark its last scrapes may still be in flight, so a read
can wait (``settle_s``) until every target seen has a scrape that started after ``end``.

Each row of ``server_metrics.jsonl`` is one value: ``time`` (scrape start, seconds since
the epoch), ``target`` (the target key), ``role``, ``node``, ``metric``, ``labels``,
``value``. Every scrape also has an ``up`` row (1 or 0; a failed one carries its reason
in ``labels.error``), so gaps in the data explain themselves.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import orjson
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from aifactory.shared.channel import Channel
from aifactory.shared.messages.monitor import MonitorSamples

SERVER_METRICS_FILE = "server_metrics.jsonl"


@dataclass(frozen=True, slots=True)
class Row:
    """One value of one scrape (one line of ``server_metrics.jsonl``)."""

    time: float
    target: str
    role: str
    node: str
    metric: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)


def rows_of(messages: Iterable[MonitorSamples]) -> list[Row]:
    out: list[Row] = []
    for m in messages:
        t, key, role, node = m.time.timestamp(), m.target.key, m.target.role.value, m.target.node
        up_labels = {"error": m.error} if m.error else {}
        out.append(Row(t, key, role, node, "up", 1.0 if m.up else 0.0, up_labels))
        for group in m.groups:
            labels = group["labels"]
            out.extend(Row(t, key, role, node, n, v, labels) for n, v in group["values"].items())
    return out


def write_rows(path: Path, rows: Iterable[Row]) -> None:
    with path.open("wb") as fh:
        for row in rows:
            fh.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))


def read_rows(path: Path) -> list[Row]:
    """Rows of a ``server_metrics.jsonl`` file; a malformed line raises ``ValueError``."""
    out: list[Row] = []
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                data = orjson.loads(line)
                out.append(
                    Row(
                        time=float(data["time"]),
                        target=str(data["target"]),
                        role=str(data["role"]),
                        node=str(data["node"]),
                        metric=str(data["metric"]),
                        value=float(data["value"]),
                        labels={str(k): str(v) for k, v in data.get("labels", {}).items()},
                    )
                )
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"{path}:{number}: not a server metrics row ({exc})") from exc
    return out


async def read_window(
    js: JetStreamContext,
    channel: Channel[MonitorSamples],
    service_id: str,
    start: datetime,
    end: datetime,
    *,
    settle_s: float = 0.0,
    idle_s: float = 0.5,
) -> list[MonitorSamples]:
    """Every scrape of ``service_id`` that started in ``[start, end]``, and each target's
    first scrape after ``end`` (a counter's increase over the window needs it).

    With ``settle_s``, wait up to that long for every target seen to have that scrape
    after ``end`` (the last ones of a benchmark that just ended may still be in flight).
    A service the monitor has not scraped lately returns ``[]`` at once.
    """
    assert channel.stream is not None
    subject = channel.subject(service_id=service_id)
    try:
        last = await js.get_last_msg(channel.stream, subject)
    except NotFoundError:
        return []
    latest = _time_of(last.data)
    if latest is None or latest < start - timedelta(minutes=1):
        return []  # the monitor was not scraping it then
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_TIME,
        opt_start_time=start,
    )
    sub = await js.subscribe(subject, ordered_consumer=True, config=config)
    found: list[MonitorSamples] = []
    seen: set[str] = set()
    after_end: set[str] = set()
    deadline = time.monotonic() + settle_s
    try:
        while True:
            wait = max(idle_s, deadline - time.monotonic()) if settle_s else idle_s
            try:
                msg = await sub.next_msg(timeout=wait)
            except (TimeoutError, NatsTimeout):
                break
            try:
                sample = MonitorSamples.model_validate_json(msg.data)
            except ValidationError:
                continue  # not ours to judge here: the stream keeps it for whoever can
            if sample.time > end:
                if sample.target.key not in after_end:
                    after_end.add(sample.target.key)
                    found.append(sample)
            else:
                found.append(sample)
                seen.add(sample.target.key)
            pending = msg.metadata.num_pending if msg.metadata else 0
            if pending == 0 and (seen <= after_end or time.monotonic() >= deadline):
                break
    finally:
        await sub.unsubscribe()
    return [s for s in found if s.time >= start]


def _time_of(data: bytes | None) -> datetime | None:
    if data is None:
        return None
    try:
        return MonitorSamples.model_validate_json(data).time
    except ValidationError:
        return None
