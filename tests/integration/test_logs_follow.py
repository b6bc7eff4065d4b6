"""The follower on real files and a real JetStream: files as they really are.

Each test writes a file the way jobs and log tools do (bursts, rotation by rename,
copytruncate, binary garbage, a 1 MB line, a last line without newline), lets the shipper
follow it to the job's end, reads the stream back and checks count, order, content and the
batches' own offset arithmetic.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from faststream.nats import NatsBroker

from aifactory.logs.bus import BusSink
from aifactory.logs.follow import FollowConfig
from aifactory.logs.shipper import JobSpec, LogShipper
from aifactory.shared.bus import ensure_topology, make_broker
from aifactory.shared.executors.base import Executor
from aifactory.shared.executors.local import LocalExecutor
from aifactory.shared.executors.slurm_ssh import SlurmSshExecutor
from aifactory.shared.executors.ssh_connection import SshConnection
from aifactory.shared.messages import LogStream
from aifactory.shared.settings import Settings
from tests.integration.logkit import Readback, wait_eof, wait_records
from tests.integration.sshd import LocalSshd, module_sshd  # noqa: F401 - fixture

pytestmark = pytest.mark.nats

CONFIG = FollowConfig(
    poll_interval=0.05,
    partial_timeout=0.4,
    max_line_bytes=64 * 1024,
    batch_bytes=128 * 1024,
    batch_lines=5000,
    end_grace=0.2,
)
OUT, ERR = LogStream.OUT, LogStream.ERR


@dataclass
class Rig:
    broker: NatsBroker
    shipper: LogShipper
    tmp: Path

    @property
    def js(self):  # type: ignore[no-untyped-def]
        return self.broker.connection.jetstream()

    async def follow(self, service_id: str, **paths: Path) -> JobSpec:
        spec = JobSpec(service_id, "1", {LogStream(k): v for k, v in paths.items()})
        await self.shipper.track(spec)
        return spec

    async def end(self, spec: JobSpec) -> Readback:
        await self.shipper.track(JobSpec(spec.service_id, spec.job_id, spec.paths, "completed"))
        found = await wait_eof(self.js, spec.service_id)
        found.check_contiguous()
        return found


@pytest.fixture(params=["local", "slurm+ssh"])
async def rig(
    request: pytest.FixtureRequest,
    nats_server,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> AsyncIterator[Rig]:
    """Each test twice: files read here, and the same files read over SSH (stat on the
    login node, bytes over SFTP) as the logs service does on a laptop with ``slurm+ssh``."""
    settings = Settings(nats_url=nats_server.url, state_dir=tmp_path / "state")
    executor: Executor
    if request.param == "local":
        executor = LocalExecutor(tmp_path / "lx")
    else:
        sshd: LocalSshd = request.getfixturevalue("module_sshd")
        executor = SlurmSshExecutor(SshConnection(sshd.settings()))
    broker = make_broker(settings, name="test-logs")
    await broker.connect()
    topology = await ensure_topology(broker.connection.jetstream())
    shipper = LogShipper(executor, BusSink(broker, topology.logs), CONFIG)
    task = asyncio.create_task(shipper.run())
    try:
        yield Rig(broker, shipper, tmp_path)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await shipper.close()
        await executor.close()
        await broker.stop()


def numbered(start: int, count: int, width: int = 90) -> bytes:
    return b"".join(
        f"seq {i:08d} ".encode().ljust(width, b".") + b"\n" for i in range(start, start + count)
    )


async def test_a_pending_job_then_bursts_arrive_complete_and_in_order(rig: Rig) -> None:
    out = rig.tmp / "job.out"
    spec = await rig.follow("burst", out=out, err=rig.tmp / "job.err")
    await asyncio.sleep(0.3)  # nothing yet: the job is pending, its files do not exist
    written = 0
    with out.open("ab") as fh:
        for size in (1, 20_000, 3, 50_000, 7):
            fh.write(numbered(written, size))
            fh.flush()
            written += size
            await asyncio.sleep(0.05)
    found = await rig.end(spec)
    lines = found.lines(OUT)
    assert lines == [line.decode() for line in numbered(0, written).splitlines()]
    assert len(found.batches) > 3  # bursts are batched, and batches stay under their limits
    assert all(b.size <= CONFIG.batch_bytes for _, b in found.batches)
    (eof,) = found.eofs
    ends = {e.stream: e for e in eof.streams}
    assert ends[OUT].offset == out.stat().st_size and ends[OUT].records == written
    assert ends[ERR].file is None and ends[ERR].records == 0  # never written: never existed
    assert ends[ERR].problem is not None and "never appeared" in ends[ERR].problem
    assert ends[OUT].problem is None


async def test_rotation_finishes_the_old_file_then_starts_the_new(rig: Rig) -> None:
    out = rig.tmp / "rot.out"
    out.write_bytes(numbered(0, 100))
    spec = await rig.follow("rot", out=out)
    await wait_records(rig.js, "rot", OUT, 100)
    with out.open("ab") as old:
        os.rename(out, rig.tmp / "rot.out.1")
        old.write(numbered(100, 50))  # the writer still holds the old file
        old.write(b"old tail without newline")
        old.flush()
        out.write_bytes(numbered(150, 10))
    found = await rig.end(spec)
    lines = found.lines(OUT)
    expected = [x.decode() for x in numbered(0, 150).splitlines()]
    assert lines[:151] == [*expected, "old tail without newline"]
    assert lines[151:] == [x.decode() for x in numbered(150, 10).splitlines()]
    files = [b.file for _, b in found.batches]
    assert len(set(map(str, files))) == 2 and files[-1].inode == out.stat().st_ino
    assert found.records(OUT)[150].cut is not None  # the old file's last line: partial


async def test_truncation_starts_a_new_generation(rig: Rig) -> None:
    out = rig.tmp / "trunc.out"
    out.write_bytes(numbered(0, 40))
    spec = await rig.follow("trunc", out=out)
    await wait_records(rig.js, "trunc", OUT, 40)
    with out.open("r+b") as fh:  # copytruncate
        fh.truncate(0)
    await asyncio.sleep(0.3)
    with out.open("ab") as fh:
        fh.write(numbered(1000, 5))
    found = await rig.end(spec)
    assert found.lines(OUT) == [
        x.decode() for x in (numbered(0, 40) + numbered(1000, 5)).splitlines()
    ]
    generations = [b.file.generation for _, b in found.batches]
    assert generations[0] == 0 and generations[-1] == 1
    assert found.records(OUT)[40].line == 1 and found.records(OUT)[40].offset == 0


async def test_binary_garbage_keeps_exact_byte_counts(rig: Rig) -> None:
    out = rig.tmp / "bin.out"
    garbage = bytes(range(256)) * 40 + os.urandom(100_000) + b"\xe2\x82" + b"\n"
    out.write_bytes(b"before\n" + garbage + "après ünïcode\n".encode())
    spec = await rig.follow("bin", out=out)
    found = await rig.end(spec)
    recs = found.records(OUT)
    assert recs[0].text == "before" and recs[-1].text == "après ünïcode"
    # Offsets are file offsets: every record starts where the bytes say it does.
    data = out.read_bytes()
    assert sum(b.size for _, b in found.batches) == len(data)
    for r in recs:
        assert r.offset == 0 or data[r.offset - 1 : r.offset] == b"\n" or recs[0].cut is not None
    assert "\ufffd" in "".join(r.text for r in recs)  # invalid bytes shown as U+FFFD


async def test_a_1mb_line_is_split_flagged_and_whole_again(rig: Rig) -> None:
    out = rig.tmp / "big.out"
    big = ("0123456789abcdef" * 65536).encode()  # 1 MiB, one line
    out.write_bytes(b"small\n" + big + b"\nafter\n")
    spec = await rig.follow("big", out=out)
    found = await rig.end(spec)
    recs = found.records(OUT)
    pieces = [r for r in recs if r.line == 2]
    assert len(pieces) == 16 and all(r.cut is not None for r in pieces[:-1])
    assert pieces[-1].cut is None and all(len(r.text) <= CONFIG.max_line_bytes for r in pieces)
    assert found.lines(OUT) == ["small", big.decode(), "after"]
    assert recs[-1].line == 3


async def test_a_giant_line_splits_at_a_character_boundary(rig: Rig) -> None:
    out = rig.tmp / "utf.out"
    line = "é" * 40_000  # 80,000 bytes of two-byte characters, limit 65,536 (even)
    odd = "x" + "€" * 30_000  # three-byte characters from an odd offset
    out.write_text(line + "\n" + odd + "\n")
    spec = await rig.follow("utf", out=out)
    found = await rig.end(spec)
    assert "\ufffd" not in "".join(r.text for r in found.records(OUT))
    assert found.lines(OUT) == [line, odd]


async def test_a_partial_line_is_held_then_flushed_and_continued(rig: Rig) -> None:
    out = rig.tmp / "part.out"
    out.write_bytes(b"one\npartial ")
    spec = await rig.follow("part", out=out)
    await wait_records(rig.js, "part", OUT, 2)  # "partial " goes out after the timeout
    with out.open("ab") as fh:
        fh.write(b"rest\nthree\n")
    found = await rig.end(spec)
    recs = found.records(OUT)
    assert [(r.text, r.line, r.cut) for r in recs] == [
        ("one", 1, None),
        ("partial ", 2, "partial"),
        ("rest", 2, None),
        ("three", 3, None),
    ]
    assert found.lines(OUT) == ["one", "partial rest", "three"]


async def test_a_moved_file_is_still_followed_through_its_handle(rig: Rig) -> None:
    out = rig.tmp / "moved.out"
    fh = out.open("ab")
    fh.write(numbered(0, 10))
    fh.flush()
    spec = await rig.follow("moved", out=out)
    await wait_records(rig.js, "moved", OUT, 10)
    os.rename(out, rig.tmp / "elsewhere.out")  # out of reach by its path
    fh.write(numbered(10, 10))
    fh.close()
    found = await rig.end(spec)
    assert found.lines(OUT) == [x.decode() for x in numbered(0, 20).splitlines()]


async def test_a_traceback_becomes_an_alert_with_line_and_offset(rig: Rig) -> None:
    err = rig.tmp / "tb.err"
    head = b"starting\n\xff garbage\n"
    traceback = (
        b"Traceback (most recent call last):\n"
        b'  File "serve.py", line 3, in <module>\n'
        b"    load()\n"
        b"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB\n"
    )
    err.write_bytes(head + traceback + b"slurmstepd: error: Detected 1 oom_kill event\n")
    spec = await rig.follow("tb", err=err)
    found = await rig.end(spec)
    by_pattern = {a.pattern: a for a in found.alerts}
    assert set(by_pattern) == {"python_traceback", "cuda_oom", "oom_kill"}
    tb = by_pattern["python_traceback"]
    assert (tb.line, tb.offset, tb.stream) == (3, len(head), ERR)
    assert tb.summary.startswith("torch.OutOfMemoryError: CUDA out of memory")
    assert len(tb.context) == 4
    assert by_pattern["cuda_oom"].line == 6 and by_pattern["oom_kill"].line == 7
