"""The vector load path end to end against servers that show what a real one cannot.

Qdrant: the whole engine (pre-flight, ingest, searches, records, summary) against a server
that validates every body against Qdrant's published OpenAPI document. Chroma: an index
that returns the wrong ids must fail the recall check; a 200 with broken JSON must become
``invalid_response`` records, never a crash.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from aifactory.loadgen import BenchConfig, run_benchmark
from aifactory.shared.results import BenchSummary, ErrorType, Operation, OperationSummary
from tests.vectorkit import FakeChroma, FakeQdrant

DATASET = {"count": 600, "queries": 20, "dimension": 8, "seed": 5}


def config(url: str, backend: str, **vector: Any) -> BenchConfig:
    extra = {k: vector.pop(k) for k in ("requests", "slo", "profile", "concurrency") if k in vector}
    return BenchConfig.model_validate(
        {
            "target": url,
            "backend": backend,
            "workers": 1,
            "profile": "concurrency",
            "concurrency": 4,
            "vector": {"dataset": DATASET, **vector},
            **extra,
        }
    )


def op(summary: BenchSummary, which: Operation) -> OperationSummary:
    return next(o for o in summary.runs[0].operations if o.operation is which)


def assert_recall(summary: BenchSummary, at_least: float) -> None:
    """The recall check a benchmark of a correct index passes."""
    search = op(summary, Operation.SEARCH)
    assert search.requests_failed == 0, search.failures
    assert search.recall.count == search.requests_ok > 0
    assert search.recall.mean is not None and search.recall.mean >= at_least, search.recall


@pytest.fixture
async def qdrant() -> AsyncIterator[FakeQdrant]:
    server = FakeQdrant()
    await server.start()
    yield server
    await server.stop()


async def test_qdrant_ingest_then_search_follows_the_document(qdrant: FakeQdrant) -> None:
    ingest = await run_benchmark(config(qdrant.url, "qdrant", mode="ingest"), progress=False)
    upsert = op(ingest.summary, Operation.UPSERT)
    assert (upsert.requests_ok, upsert.rows, upsert.requests_failed) == (6, 600, 0)
    assert ingest.summary.runs[0].index_ready_s is not None  # the collection reports green
    assert len(qdrant.collections["aifactory-bench"].rows) == 600
    search = await run_benchmark(
        config(qdrant.url, "qdrant", requests=60, filter={"key": "category", "value": 2}),
        progress=False,
    )
    assert_recall(search.summary, 1.0)  # the fake answers exactly
    assert all(r.results == 10 for r in search.records)
    assert qdrant.violations == []  # every body we sent is valid by Qdrant's OpenAPI
    # A dimension mismatch is a typed failure, not a crash.
    other = {**DATASET, "dimension": 5}
    wrong = config(qdrant.url, "qdrant", requests=10, dataset=other)
    result = await run_benchmark(wrong, progress=False)
    assert result.summary.runs[0].failures == {ErrorType.DIMENSION_MISMATCH: 10}


async def test_an_index_returning_wrong_ids_fails_the_recall_check() -> None:
    honest, liar = FakeChroma(), FakeChroma(lie=True)
    for server in (honest, liar):
        await server.start()
    try:
        results = []
        for server in (honest, liar):
            await run_benchmark(config(server.url, "chroma", mode="ingest"), progress=False)
            slo = {"recall": 0.9}
            searches = config(server.url, "chroma", requests=40, slo=slo)
            results.append(await run_benchmark(searches, progress=False))
        good, bad = (r.summary for r in results)
        assert_recall(good, 1.0)
        with pytest.raises(AssertionError):
            assert_recall(bad, 0.9)
        lying = op(bad, Operation.SEARCH)
        assert lying.requests_ok == 40 and lying.recall.mean is not None
        assert lying.recall.mean <= 0.1  # off by one: at most the neighbour next door
        assert lying.goodput == 0 and op(good, Operation.SEARCH).goodput
    finally:
        for server in (honest, liar):
            await server.stop()


async def test_a_200_with_broken_json_is_a_typed_failure() -> None:
    server = FakeChroma(broken=True)
    await server.start()
    try:
        mixed = config(server.url, "chroma", mode="mixed", search_fraction=0.5, requests=30)
        result = await run_benchmark(mixed, progress=False)
    finally:
        await server.stop()
    run = result.summary.runs[0]
    assert run.requests_ok == 0 and run.failures == {ErrorType.INVALID_RESPONSE: 30}
    assert {r.operation for r in result.records} == {Operation.SEARCH, Operation.UPSERT}
    assert all("not JSON" in (r.error_message or "") for r in result.records)
