"""Exactly once at the three moments a ``kill -9`` rarely hits by chance, forced here.

A follower is stopped (an exception standing for the kill) right between the stream's ack
and the checkpoint, or loses an ack and retries a batch that has grown meanwhile, or
restarts with its checkpoint gone. A fresh follower (a restarted service) must continue
exactly after the last stored byte: nothing lost, nothing doubled, alerts once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from faststream.nats import NatsBroker
from nats.js.kv import KeyValue

from aifactory.logs.bus import BusSink
from aifactory.logs.follow import FileFollower, FollowConfig
from aifactory.logs.sink import Stored
from aifactory.logs.state import checkpoint_key
from aifactory.shared.bus import ensure_topology, make_broker
from aifactory.shared.executors.local import LocalExecutor
from aifactory.shared.messages import LogLines, LogStream
from aifactory.shared.settings import Settings
from tests.integration.logkit import read_back

pytestmark = pytest.mark.nats

CONFIG = FollowConfig(poll_interval=0.05, partial_timeout=0.2, batch_bytes=4096, end_grace=0)
OUT = LogStream.OUT


class Killed(BaseException):
    """Stands for ``kill -9``: nothing after it runs."""


class FlakySink(BusSink):
    def __init__(self, broker: NatsBroker, kv: KeyValue) -> None:
        super().__init__(broker, kv)
        self.acks_left: int | None = None
        self.lose_ack = False

    async def publish_lines(self, batch: LogLines) -> Stored:
        stored = await super().publish_lines(batch)
        if self.acks_left is not None:
            if self.acks_left == 0:
                raise Killed  # right after the ack: nothing else of the follower ran
            self.acks_left -= 1
        if self.lose_ack:
            self.lose_ack = False
            raise TimeoutError("ack lost")
        return stored


@pytest.fixture
async def bus(nats_server, tmp_path: Path) -> AsyncIterator[tuple[NatsBroker, KeyValue]]:  # type: ignore[no-untyped-def]
    broker = make_broker(Settings(nats_url=nats_server.url, state_dir=tmp_path), name="t")
    await broker.connect()
    topology = await ensure_topology(broker.connection.jetstream())
    yield broker, topology.logs
    await broker.stop()


def follower(tmp: Path, sink: BusSink, path: Path) -> FileFollower:
    return FileFollower(
        files=LocalExecutor(tmp / "lx"),
        sink=sink,
        service_id="resume",
        stream=OUT,
        job_id="1",
        path=path,
        config=CONFIG,
    )


async def drain(f: FileFollower) -> None:
    while await f.step():
        pass
    while not f.done:
        await f.step(ending=True)


def lines(start: int, count: int) -> bytes:
    return b"".join(f"line {i:06d}\n".encode() for i in range(start, start + count))


TRACEBACK = b'Traceback (most recent call last):\n  File "x", line 1\nKeyError: 3\n'


async def check(broker: NatsBroker, expected: bytes) -> None:
    found = await read_back(broker.connection.jetstream(), "resume")
    found.check_contiguous()
    assert [r.text for r in found.records(OUT)] == expected.decode().splitlines()
    assert [a.pattern for a in found.alerts] == ["python_traceback"]


async def test_killed_between_the_ack_and_the_checkpoint(
    bus: tuple[NatsBroker, KeyValue], tmp_path: Path
) -> None:
    broker, kv = bus
    path = tmp_path / "job.out"
    data = lines(0, 3000) + TRACEBACK + lines(3000, 3000)
    path.write_bytes(data)
    flaky = FlakySink(broker, kv)
    first = follower(tmp_path, flaky, path)
    await first.start()
    first.saved_at = first.clock()  # a checkpoint was just written: the next is a second away
    flaky.acks_left = 8  # the ninth batch is stored, no checkpoint after it
    with pytest.raises(Killed):
        await drain(first)
    saved = await BusSink(broker, kv).load("resume", OUT)
    assert saved is not None
    stored = await read_back(broker.connection.jetstream(), "resume")
    assert stored.batches[-1][0] > saved.seq  # the stream is ahead of the checkpoint
    second = follower(tmp_path, BusSink(broker, kv), path)
    await second.start()
    last_seq, last = stored.batches[-1]
    assert second.cp.seq == last_seq  # resumed from the stream, not the older checkpoint
    assert second.cp.position.offset == last.offset + last.size
    await drain(second)
    await check(broker, data)


async def test_a_lost_ack_then_a_bigger_retry(
    bus: tuple[NatsBroker, KeyValue], tmp_path: Path
) -> None:
    broker, kv = bus
    path = tmp_path / "job.out"
    path.write_bytes(lines(0, 100))
    flaky = FlakySink(broker, kv)
    f = follower(tmp_path, flaky, path)
    await f.start()
    flaky.lose_ack = True
    with pytest.raises(TimeoutError):
        await f.step()
    await f.reset()  # what the shipper does after an error
    more = lines(100, 2000) + TRACEBACK
    with path.open("ab") as fh:
        fh.write(more)  # the retried batch at offset 0 is now bigger than the stored one
    await drain(f)
    await check(broker, lines(0, 100) + more)


async def test_a_lost_checkpoint_is_rebuilt_from_the_stream(
    bus: tuple[NatsBroker, KeyValue], tmp_path: Path
) -> None:
    broker, kv = bus
    path = tmp_path / "job.out"
    path.write_bytes(lines(0, 1500) + TRACEBACK)
    first = follower(tmp_path, BusSink(broker, kv), path)
    await first.start()
    while await first.step():
        pass
    await kv.delete(checkpoint_key("resume", OUT))
    with path.open("ab") as fh:
        fh.write(lines(1500, 1500))
    second = follower(tmp_path, BusSink(broker, kv), path)
    await second.start()  # replays every stored batch: position and alerts from the stream
    assert second.cp.position == first.cp.position and second.cp.seq == first.cp.seq
    assert second.cp.block is None
    await drain(second)
    await check(broker, lines(0, 1500) + TRACEBACK + lines(1500, 1500))
