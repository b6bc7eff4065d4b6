"""Statistics from the records file on disk equal, to the last bit, the in-memory ones."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

import aifactory.loadgen.metrics.exact as exact
from aifactory.loadgen.messages import WorkerReport
from aifactory.loadgen.metrics.columns import summarize_file
from aifactory.loadgen.metrics.records import RequestRecord
from aifactory.loadgen.metrics.stats import describe
from aifactory.loadgen.metrics.summary import summarize_run
from aifactory.loadgen.scheduler.plan import RunPlan
from aifactory.loadgen.store import RecordWriter, iter_records
from aifactory.shared.results import ErrorType, LoopKind, Operation, TokenSource
from aifactory.shared.states import BenchState
from aifactory.shared.workload import SloConfig


def fake_records(n: int, seed: int = 7) -> list[RequestRecord]:
    """Records with every shape a run produces: warmup, failures, cancellations, streams of
    any length, missing usage, several endpoints."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t0 = i * 0.001 + rng.random() * 1e-4
        rec = RequestRecord(
            run_index=0,
            worker_id=i % 3,
            request_index=i // 3,
            prompt_index=rng.randrange(100),
            warmup=i < n // 20,
            scheduled_s=t0 - rng.random() * 1e-4,
            t0_s=t0,
            end_s=t0 + rng.random(),
            prompt_tokens=rng.randrange(1, 300),
            prompt_tokens_source=TokenSource.ESTIMATE,
            endpoint=i % 2,
        )
        roll = rng.random()
        if roll < 0.05:
            rec.error = rng.choice(list(ErrorType))
            rec.error_message = "boom"
        else:
            tokens = rng.randrange(0, 40)
            gaps = [round(rng.expovariate(200.0) * 1e6) / 1000 for _ in range(max(0, tokens - 1))]
            rec.chunks = tokens
            rec.ttft_ms = rng.lognormvariate(3, 0.5) if tokens else None
            rec.e2e_ms = (rec.ttft_ms or 0) + sum(gaps)
            rec.tpot_ms = (rec.e2e_ms - rec.ttft_ms) / (tokens - 1) if tokens >= 2 else None
            rec.itl_ms = gaps
            if roll > 0.1:
                rec.output_tokens = tokens
                rec.output_tokens_source = TokenSource.USAGE
        out.append(rec)
    return out


def report(worker: int) -> WorkerReport:
    return WorkerReport(
        worker_id=worker, run_index=0, sent=1, completed=1, cap_hits=2, max_in_flight=4,
        stop_reason="requests", cancelled=False, cpu_s=1.5, wall_s=3.0, pid=100 + worker,
    )  # fmt: skip


@pytest.mark.parametrize(
    "slo", [SloConfig(), SloConfig(ttft_ms=30, tpot_ms=6, e2el_ms=200)], ids=["none", "all"]
)
def test_the_file_path_gives_the_numbers_of_the_memory_path(
    tmp_path: Path, slo: SloConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = fake_records(5000)
    writer = RecordWriter(tmp_path / "records.parquet")
    for i in range(0, len(records), 777):  # several row groups' worth of batches
        writer.add(records[i : i + 777])
    writer.close()
    plan = RunPlan(loop=LoopKind.CLOSED, concurrency=8, max_seconds=60, max_in_flight=8)
    reports = [report(w) for w in range(3)]
    targets = ["http://a:1", "http://b:2"]
    memory = summarize_run(plan, records, reports, slo, state=BenchState.COMPLETED, targets=targets)
    disk = summarize_file(
        tmp_path / "records.parquet", plan, reports, slo, state=BenchState.COMPLETED,
        targets=targets,
    )  # fmt: skip
    assert disk == memory
    # The same again with the selection passes (as for values that do not fit in memory).
    monkeypatch.setattr(exact, "IN_MEMORY", 100)
    monkeypatch.setattr(exact, "GATHER", 50)
    selected = summarize_file(
        tmp_path / "records.parquet", plan, reports, slo, state=BenchState.COMPLETED,
        targets=targets,
    )  # fmt: skip
    assert selected == memory
    assert list(iter_records(tmp_path / "records.parquet")) == records


def fake_vector_records(n: int, *, truth: bool, seed: int = 11) -> list[RequestRecord]:
    """A mixed vector load: searches (with recall when there is ground truth) and upserts,
    warmup, typed failures and cancellations, bytes each way; the upserts of the warmup
    only are an operation the measured run does not have."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        warmup = i < n // 10
        if warmup and i % 2:
            op = Operation.GENERATE  # warmup only: never a measured operation
        else:
            op = Operation.SEARCH if rng.random() < 0.7 else Operation.UPSERT
        t0 = i * 0.002 + rng.random() * 1e-4
        rec = RequestRecord(
            run_index=0,
            worker_id=i % 2,
            request_index=i // 2,
            prompt_index=rng.randrange(50),
            warmup=warmup,
            scheduled_s=t0 - rng.random() * 1e-4,
            t0_s=t0,
            end_s=t0 + rng.random() * (0.2 if op is Operation.UPSERT else 0.02),
            endpoint=i % 2,
            operation=op,
            bytes_sent=rng.randrange(200, 40_000),
            # a failed upsert wrote nothing: the summary must not count its rows
            rows=rng.choice([64, 100, 128]) if op is Operation.UPSERT else None,
        )
        if rng.random() < 0.08:
            rec.error = rng.choice(
                [ErrorType.DIMENSION_MISMATCH, ErrorType.EMPTY_COLLECTION, ErrorType.TIMEOUT,
                 ErrorType.CANCELLED, ErrorType.INVALID_RESPONSE]
            )  # fmt: skip
            rec.error_message = "boom"
            if rec.error is ErrorType.CANCELLED:
                rec.bytes_sent = None
        else:
            rec.e2e_ms = (rec.end_s - rec.t0_s) * 1000
            rec.bytes_received = rng.randrange(100, 5000)
            if op is Operation.SEARCH:
                rec.results = 10
                rec.recall = rng.choice([1.0, 0.9, 0.8, 0.5]) if truth else None
        out.append(rec)
    return out


@pytest.mark.parametrize("truth", [True, False], ids=["recall", "no-truth"])
@pytest.mark.parametrize(
    "slo",
    [SloConfig(), SloConfig(e2el_ms=12, recall=0.85), SloConfig(recall=0.95)],
    ids=["none", "latency+recall", "recall"],
)
def test_the_file_path_gives_the_per_operation_numbers_of_the_memory_path(
    tmp_path: Path, slo: SloConfig, truth: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = fake_vector_records(3000, truth=truth)
    path = tmp_path / "records.parquet"
    writer = RecordWriter(path)
    for i in range(0, len(records), 500):
        writer.add(records[i : i + 500])
    writer.close()
    plan = RunPlan(loop=LoopKind.POISSON, rate=400, burstiness=1, max_seconds=60, max_in_flight=8)
    reports = [report(w) for w in range(2)]
    targets = ["http://a:1", "http://b:2"]
    kw = {"state": BenchState.COMPLETED, "targets": targets, "top_k": 10}
    memory = summarize_run(plan, records, reports, slo, **kw)  # type: ignore[arg-type]
    assert [o.operation for o in memory.operations] == [Operation.SEARCH, Operation.UPSERT]
    search, upsert = memory.operations
    assert search.failures and upsert.rows > 0 and memory.bytes_sent > 0
    assert (search.recall.count > 0) is truth and search.top_k == 10
    if slo.e2el_ms is not None or (slo.recall is not None and truth):  # some miss it
        assert 0 < (search.goodput or 0) < (search.request_throughput or 0)
    assert (search.goodput is not None) is slo.any
    assert summarize_file(path, plan, reports, slo, **kw) == memory  # type: ignore[arg-type]
    monkeypatch.setattr(exact, "IN_MEMORY", 50)
    monkeypatch.setattr(exact, "GATHER", 20)
    assert summarize_file(path, plan, reports, slo, **kw) == memory  # type: ignore[arg-type]
    assert list(iter_records(path)) == records  # the vector fields round-trip


def test_selection_equals_sorting_on_heavy_duplicates(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    data = np.concatenate(
        [
            np.full(5000, 1.0),
            np.full(3000, 1.0 + 2**-40),
            rng.normal(1, 1e-9, 4000),
            rng.normal(5, 1, 999),
        ]
    )
    rng.shuffle(data)
    monkeypatch.setattr(exact, "GATHER", 100)
    monkeypatch.setattr(exact, "BINS", 16)
    chunks = lambda: iter(np.array_split(data, 13))  # noqa: E731
    assert exact.describe_chunks(chunks, in_memory=10) == describe(data.tolist())
    assert exact.describe_chunks(lambda: iter([])) == describe([])


def test_exact_sum_is_fsum_to_the_last_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    import math

    rng = np.random.default_rng(3)
    cases = [
        rng.lognormal(size=5000),
        rng.normal(size=3000) * 1e300,
        rng.normal(size=3000) * 1e-300,
        np.concatenate([rng.normal(size=999), -rng.normal(size=999), [1e16, 1.0, -1e16]]),
        rng.choice([0.0, 5e-324, -5e-324, 1e-310, 2.5, -0.0], size=4000),
        np.empty(0),
    ]
    monkeypatch.setattr(exact, "_BINCOUNT_SLICE", 64)  # many slices per chunk too
    for values in cases:
        chunks = [values[i : i + 97] for i in range(0, values.size, 97)]
        assert exact.exact_sum(iter(chunks)) == math.fsum(values.tolist())
    # Where fsum gives up ("intermediate overflow"), the integers still hold the exact sum.
    assert exact.exact_sum([np.array([1e308, 1e308, -1e308])]) == 1e308
    assert exact.exact_sum([np.array([1.0, np.inf])]) == math.inf
    assert math.isnan(exact.exact_sum([np.array([2.0]), np.array([np.nan])]))
    with pytest.raises(ValueError):
        exact.exact_sum([np.array([np.inf]), np.array([-np.inf])])
