"""The coordinator's exactly-once accounting and its failure reasons (no bus needed)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from aifactory.loadgen.collector import Collector
from aifactory.loadgen.messages import WorkerProgress
from aifactory.loadgen.metrics.records import RequestRecord
from aifactory.loadgen.progress import LiveProgress
from aifactory.loadgen.remote.board import Board
from aifactory.loadgen.remote.protocol import (
    WorkerDone,
    WorkerFailed,
    WorkerHeartbeat,
    WorkerHello,
    WorkerRecords,
    records_msg_id,
)
from aifactory.loadgen.remote.sink import NatsRecordSink
from aifactory.loadgen.remote.stages import (
    RemoteRun,
    RemoteTimeouts,
    RemoteWorkersError,
)
from aifactory.loadgen.results import read_records
from aifactory.loadgen.scheduler.plan import RunPlan
from aifactory.shared.executors.base import Executor, JobStatus, SubmittedJob
from aifactory.shared.results import LoopKind
from aifactory.shared.states import JobState

BID = "b1"


def record(worker: int, index: int) -> RequestRecord:
    return RequestRecord(
        run_index=0,
        worker_id=worker,
        request_index=index,
        prompt_index=index,
        warmup=False,
        scheduled_s=0.1 * index,
        t0_s=0.1 * index,
        end_s=0.1 * index + 0.05,
        ttft_ms=5.0 + index,
        e2e_ms=20.0 + index,
        output_tokens=8,
    )


def progress(worker: int) -> dict[str, Any]:
    return WorkerProgress(worker_id=worker, run_index=0, sent=1, completed=1).model_dump()


def report(worker: int, cancelled: bool = False) -> dict[str, Any]:
    return {
        "worker_id": worker,
        "run_index": 0,
        "sent": 2,
        "completed": 2,
        "cap_hits": 0,
        "max_in_flight": 1,
        "stop_reason": "stopped" if cancelled else "requests",
        "cancelled": cancelled,
        "cpu_s": 0.1,
        "wall_s": 1.0,
        "pid": 100 + worker,
    }


def batch(worker: int, seq: int, records: list[RequestRecord]) -> bytes:
    msg = WorkerRecords(
        benchmark_id=BID, stage=0, worker=worker, seq=seq, records=[], progress=progress(worker)
    ).model_dump(mode="json")
    msg["records"] = records
    return orjson.dumps(msg)


def make_board(total: int = 2) -> Board:
    collector = Collector(
        window_s=1.0,
        on_window=None,
        on_records=None,
        display=LiveProgress(enabled=False),
        records_dir=Path(tempfile.mkdtemp(prefix="aifactory-test-board-")),
    )
    board = Board(BID, total, collector)
    for w in range(total):
        hello = WorkerHello(benchmark_id=BID, worker=w, host="node1", pid=100 + w)
        board.on_stream_message(hello.model_dump_json().encode(), w + 1)
    board.begin_stage(0, {w: w for w in range(total)})
    plan = RunPlan(loop=LoopKind.CLOSED, concurrency=total, max_seconds=60, max_in_flight=8)
    collector.begin_stage(plan)
    return board


def stored(board: Board) -> int:
    """How many records the board's collector put on disk for the stage."""
    path = board.collector.end_stage()
    assert path is not None
    return read_records(path).num_rows


def done(worker: int, batches: int, records: int, cancelled: bool = False) -> bytes:
    msg = WorkerDone(
        benchmark_id=BID,
        stage=0,
        worker=worker,
        batches=batches,
        records=records,
        report=report(worker, cancelled),
    )
    return msg.model_dump_json().encode()


def test_a_batch_delivered_twice_counts_once() -> None:
    board = make_board()
    first = batch(0, 0, [record(0, 0), record(0, 1)])
    board.on_stream_message(first, 10)
    board.on_stream_message(first, 11)  # redelivered: same (stage, worker, seq)
    board.on_stream_message(batch(1, 0, [record(1, 0)]), 12)
    board.on_stream_message(done(0, 1, 2), 13)
    board.on_stream_message(done(1, 1, 1), 14)
    assert board.failure is None and board.book is not None and board.book.complete
    assert board.duplicates == 1
    assert stored(board) == 3
    assert board.last_stream_seq == 14


def test_a_lost_batch_fails_the_run_naming_the_worker() -> None:
    board = make_board()
    board.on_stream_message(batch(1, 0, [record(1, 0)]), 10)
    board.on_stream_message(batch(1, 2, [record(1, 2)]), 11)  # seq 1 never arrived
    board.on_stream_message(done(1, 3, 3), 12)
    assert board.failure is not None
    assert "worker 1 (host node1, pid 101) sent 3 records in 3 batches" in board.failure
    assert "but 2 records arrived (missing batches: [1])" in board.failure


@pytest.mark.parametrize(
    ("message", "needle"),
    [
        (
            WorkerHello(benchmark_id=BID, worker=0, host="node2", pid=7),
            "two workers claim index 0: host node1 pid 100 and host node2 pid 7",
        ),
        (
            WorkerHello(benchmark_id=BID, worker=5, host="node2", pid=7),
            "worker index 5 (host node2, pid 7) is outside 0..1",
        ),
        (
            WorkerFailed(benchmark_id=BID, worker=1, stage=0, reason="PreflightError: boom"),
            "worker 1 (host node1, pid 101) failed in stage 0: PreflightError: boom",
        ),
        (
            WorkerRecords(
                benchmark_id=BID,
                stage=3,
                worker=1,
                seq=0,
                records=[],
                progress={"worker_id": 1, "run_index": 3},
            ),
            "worker 1 (host node1, pid 101) sent records for stage 3",
        ),
    ],
)
def test_protocol_violations_are_failures_with_reasons(message: Any, needle: str) -> None:
    board = make_board()
    board.on_stream_message(message.model_dump_json().encode(), 20)
    assert board.failure is not None and needle in board.failure


def test_messages_of_other_benchmarks_are_ignored_and_garbage_fails() -> None:
    board = make_board()
    other = WorkerFailed(benchmark_id="other", worker=0, reason="x")
    board.on_stream_message(other.model_dump_json().encode(), 20)
    assert board.failure is None
    board.on_stream_message(b'{"kind": "records"}', 21)
    assert board.failure is not None and "unreadable message" in board.failure


def test_heartbeats_keep_workers_alive_and_feed_progress() -> None:
    board = make_board()
    board.last_seen[1] = time.monotonic() - 100
    beat = WorkerHeartbeat(benchmark_id=BID, worker=0, stage=0, progress=progress(0))
    board.on_heartbeat(beat.model_dump_json().encode())
    stale = board.stale(30)
    assert [w for w, _ in stale] == [1] and stale[0][1] > 99
    stranger = WorkerHeartbeat(benchmark_id=BID, worker=9, stage=0)
    board.on_heartbeat(stranger.model_dump_json().encode())  # no hello: not tracked
    assert 9 not in board.last_seen


class FakePublisher:
    benchmark_id = BID
    worker = 3
    records_subject = "bench.records.b1"

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, str]] = []

    async def publish(self, subject: str, payload: bytes, msg_id: str) -> None:
        self.sent.append((subject, payload, msg_id))


async def test_sink_splits_big_batches_and_numbers_them() -> None:
    publisher = FakePublisher()
    sink = NatsRecordSink(publisher, stage=2, max_bytes=2000)  # type: ignore[arg-type]
    records = [record(0, i) for i in range(20)]
    prog = WorkerProgress(worker_id=0, run_index=0)
    await sink.emit([], prog)  # progress only: nothing published
    await sink.emit(records, prog)
    assert sink.records == 20 and sink.batches == len(publisher.sent) > 1
    ids = [msg_id for _, _, msg_id in publisher.sent]
    assert ids == [records_msg_id(BID, 2, 3, seq) for seq in range(sink.batches)]
    assert all(len(payload) <= 2000 for _, payload, _ in publisher.sent)
    decoded = [WorkerRecords.model_validate_json(p) for _, p, _ in publisher.sent]
    assert sum(len(m.records) for m in decoded) == 20
    assert [m.seq for m in decoded] == list(range(sink.batches))


class SlowPublisher(FakePublisher):
    """Stores each batch after a delay, as a stream does after a network round trip."""

    async def publish(self, subject: str, payload: bytes, msg_id: str) -> None:
        await asyncio.sleep(0.05)
        if msg_id not in {m for _, _, m in self.sent}:  # the stream's duplicate window
            self.sent.append((subject, payload, msg_id))


async def test_a_flush_cancelled_mid_publish_is_neither_lost_nor_miscounted() -> None:
    """The engine cancels its flusher at the end of a run, possibly inside ``emit``."""
    publisher = SlowPublisher()
    sink = NatsRecordSink(publisher, stage=0)  # type: ignore[arg-type]
    prog = WorkerProgress(worker_id=0, run_index=0)
    flusher = asyncio.create_task(sink.emit([record(0, i) for i in range(19)], prog))
    await asyncio.sleep(0.01)
    flusher.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flusher
    await sink.emit([record(0, 19)], prog)  # the engine's final flush
    await sink.drain()
    decoded = [WorkerRecords.model_validate_json(p) for _, p, _ in publisher.sent]
    assert [(m.seq, len(m.records)) for m in decoded] == [(0, 19), (1, 1)]
    assert (sink.batches, sink.records) == (2, 20)


class FakeExecutor(Executor):
    kind = "fake"

    def __init__(self, status: JobStatus) -> None:
        self.status = status

    @classmethod
    def from_settings(cls, settings: Any) -> FakeExecutor:
        raise AssertionError("these tests build the fake themselves")

    async def submit(self, script: str, name: str, workdir: Path) -> SubmittedJob:
        raise AssertionError("these tests never submit")

    async def states(self, job_ids: Any) -> dict[str, JobStatus]:
        return {job_id: self.status for job_id in job_ids}

    async def find_by_name(self, name: str) -> list[str]:
        return []

    async def cancel(self, job_id: str) -> None:
        return None


def remote_run(tmp_path: Path, status: JobStatus, board: Board, **timeouts: float) -> RemoteRun:
    out = tmp_path / "job-7.out"
    out.write_text("aifactory: starting\nTraceback: something went wrong\n")
    job = SubmittedJob(job_id="7", name="aif-bench-b1", script_path=tmp_path / "s", output_path=out)
    return RemoteRun(
        benchmark_id=BID,
        config=None,  # type: ignore[arg-type]
        executor=FakeExecutor(status),
        job=job,
        board=board,
        kv=None,  # type: ignore[arg-type]
        stop=asyncio.Event(),
        timeouts=RemoteTimeouts(poll_s=0.05, **timeouts),
        purge=None,  # type: ignore[arg-type]
    )


def empty_board() -> Board:
    collector = Collector(
        window_s=1.0,
        on_window=None,
        on_records=None,
        display=LiveProgress(enabled=False),
        records_dir=Path(tempfile.mkdtemp(prefix="aifactory-test-board-")),
    )
    return Board(BID, 2, collector)


async def test_a_job_pending_too_long_fails_with_the_scheduler_reason(tmp_path: Path) -> None:
    status = JobStatus("7", JobState.PENDING, reason="Resources")
    run = remote_run(tmp_path, status, empty_board(), pending_s=0.3)
    with pytest.raises(RemoteWorkersError) as exc:
        await asyncio.wait_for(run.wait_ready(), 5)
    assert "job 7 is still pending after" in str(exc.value)
    assert "(scheduler reason: Resources)" in str(exc.value)


async def test_a_job_that_ends_before_its_workers_connect_shows_its_output(
    tmp_path: Path,
) -> None:
    status = JobStatus("7", JobState.FAILED, reason="non-zero exit code")
    run = remote_run(tmp_path, status, empty_board())
    with pytest.raises(RemoteWorkersError) as exc:
        await asyncio.wait_for(run.wait_ready(), 5)
    text = str(exc.value)
    assert "job 7 ended (failed: non-zero exit code) while waiting for workers" in text
    assert "Traceback: something went wrong" in text


async def test_a_silent_worker_is_named(tmp_path: Path) -> None:
    board = make_board()
    board.last_seen[0] = time.monotonic() - 60
    run = remote_run(tmp_path, JobStatus("7", JobState.RUNNING), board, heartbeat_s=5)
    with pytest.raises(RemoteWorkersError) as exc:
        run._check_board()
    assert "worker 0 (host node1, pid 100) has sent nothing for 60 s" in str(exc.value)


async def test_a_stop_before_the_workers_connect_returns_false(tmp_path: Path) -> None:
    run = remote_run(tmp_path, JobStatus("7", JobState.PENDING), empty_board())
    run.stop.set()
    assert await run.wait_ready() is False
