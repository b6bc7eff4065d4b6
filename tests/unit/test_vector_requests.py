"""Vector requests: who sends what, Chroma's bodies, per-operation figures and SLOs."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from aifactory.loadgen.backends import RequestKind, backend_class
from aifactory.loadgen.backends.chroma import Chroma
from aifactory.loadgen.errors import InvalidResponseError
from aifactory.loadgen.metrics.operations import operation_csv, operation_summaries
from aifactory.loadgen.metrics.records import RequestRecord, load_records
from aifactory.loadgen.metrics.summary import meets_slo
from aifactory.loadgen.vector.data import load_vectors
from aifactory.loadgen.vector.source import VectorSource, batch_count
from aifactory.loadgen.vector.truth import ground_truth
from aifactory.shared.results import ErrorType, Operation
from aifactory.shared.vectors import VectorDataset, VectorWorkload
from aifactory.shared.workload import BenchConfig, SloConfig

DATA = VectorDataset(count=1050, queries=7, dimension=3)


def source(workload: VectorWorkload, worker: int = 0, workers: int = 1) -> VectorSource:
    data = load_vectors(workload.dataset)
    return VectorSource(
        Chroma(workload),
        data,
        ground_truth(data, workload),
        workload,
        seed=0,
        worker_id=worker,
        n_workers=workers,
    )


def test_chroma_and_qdrant_are_registered_vector_backends() -> None:
    assert backend_class("chroma").kind is RequestKind.VECTOR
    assert backend_class("qdrant").kind is RequestKind.VECTOR
    assert backend_class("openai_chat").kind is RequestKind.GENERATION


def test_an_ingest_over_workers_writes_every_row_exactly_once() -> None:
    workload = VectorWorkload(mode="ingest", batch_size=100, dataset=DATA)
    batches = batch_count(1050, 100)
    assert batches == 11
    shares = [6, 5]  # split_plan's split of 11 requests over 2 workers
    rows: list[int] = []
    for worker, share in enumerate(shares):
        src = source(workload, worker, 2)
        for _ in range(share):
            call, body = src.next()
            assert call.op is Operation.UPSERT
            sent = orjson.loads(body)
            assert len(sent["ids"]) == call.rows == len(sent["embeddings"])
            rows.extend(int(i) for i in sent["ids"])
    assert sorted(rows) == list(range(1050))


def test_searches_cycle_through_the_queries_and_reuse_their_bodies() -> None:
    src = source(VectorWorkload(dataset=DATA))
    calls = [src.next() for _ in range(9)]
    assert [c.index for c, _ in calls] == [0, 1, 2, 3, 4, 5, 6, 0, 1]
    assert calls[7][1] is calls[0][1]  # built once per query
    body = orjson.loads(calls[0][1])
    assert body == {
        "query_embeddings": [pytest.approx(list(load_vectors(DATA).queries[0]), rel=1e-6)],
        "n_results": 10,
        "include": [],
    }
    assert calls[0][0].truth is not None and len(calls[0][0].truth) == 10


def test_a_mixed_load_follows_its_ratio_and_is_repeatable() -> None:
    workload = VectorWorkload(mode="mixed", search_fraction=0.8, dataset=DATA)
    src_a, src_b = source(workload), source(workload)
    ops = [src_a.next()[0].op for _ in range(2000)]
    assert ops == [src_b.next()[0].op for _ in range(2000)]
    assert 0.77 < ops.count(Operation.SEARCH) / 2000 < 0.83


def test_chroma_filter_and_answers() -> None:
    flt = {"key": "category", "value": 4}
    api = Chroma(VectorWorkload(filter=flt, top_k=3))
    body = orjson.loads(api.search_body(np.array([0.5, 1.0], dtype=np.float32)))
    assert body["where"] == {"category": {"$eq": 4}} and body["n_results"] == 3
    assert api.search_ids(b'{"ids": [["4", "14", "24"]], "include": []}') == [4, 14, 24]
    for bad in (b"not json", b'{"ids": "x"}', b'{"ids": [["a"]]}', b"[1]", b'{"ids": [[], []]}'):
        with pytest.raises(InvalidResponseError):
            api.search_ids(bad)
    api.check_upsert(b"{}")
    with pytest.raises(InvalidResponseError):
        api.check_upsert(b"<html>")
    mismatch = (
        b'{"error":"InvalidArgumentError",'
        b'"message":"Collection expecting embedding with dimension of 3, got 2"}'
    )
    assert api.error_type(400, mismatch) is ErrorType.DIMENSION_MISMATCH
    assert api.error_type(404, b'{"error":"NotFoundError"}') is None


def record(op: Operation, i: int, **fields: object) -> RequestRecord:
    base: dict[str, object] = {
        "run_index": 0,
        "worker_id": 0,
        "request_index": i,
        "prompt_index": i,
        "warmup": False,
        "scheduled_s": i * 0.1,
        "t0_s": i * 0.1,
        "end_s": i * 0.1 + 0.05,
        "operation": op,
        "bytes_sent": 100,
        "bytes_received": 40,
    }
    return RequestRecord(**(base | fields))  # type: ignore[arg-type]


def test_operation_summaries_split_searches_and_upserts() -> None:
    records = [
        record(Operation.SEARCH, 0, e2e_ms=2.0, recall=1.0, results=10),
        record(Operation.SEARCH, 1, e2e_ms=4.0, recall=0.5, results=10),
        record(Operation.SEARCH, 2, error=ErrorType.EMPTY_COLLECTION),
        record(Operation.UPSERT, 3, e2e_ms=50.0, rows=100),
        record(Operation.UPSERT, 4, e2e_ms=70.0, rows=100, end_s=0.5),
    ]
    slo = SloConfig(e2el_ms=60, recall=0.9)
    [search, upsert] = operation_summaries(records, 2.0, slo, meets_slo, top_k=10)
    assert (search.operation, search.requests_ok, search.requests_failed) == ("search", 2, 1)
    assert search.failures == {ErrorType.EMPTY_COLLECTION: 1}
    assert search.recall.mean == 0.75 and search.recall.min == 0.5 and search.top_k == 10
    assert search.latency_ms.p50 == 3.0 and search.request_throughput == 1.0
    assert search.goodput == 0.5  # only the recall-1.0 one meets recall >= 0.9
    assert search.bytes_sent == 300 and search.bytes_received == 120
    assert upsert.rows == 200 and upsert.top_k is None and upsert.recall.count == 0
    assert upsert.rows_per_s == pytest.approx(200 / (0.5 - 0.3))  # first send, last response
    assert upsert.goodput == 0.5  # the 50 ms one; upserts have no recall to miss
    columns = operation_csv([search, upsert])
    assert columns["search_recall_mean"] == 0.75 and columns["upsert_rows"] == 200
    assert columns["search_latency_ms_p50"] == 3.0 and columns["search_top_k"] == 10
    # A run of LLM generations only has no breakdown: the run is its one operation.
    assert (
        operation_summaries([record(Operation.GENERATE, 0, e2e_ms=1.0)], 1.0, slo, meets_slo) == []
    )


def test_records_round_trip_with_their_vector_fields() -> None:
    rec = record(Operation.SEARCH, 0, e2e_ms=1.5, recall=0.9, results=10)
    [back] = load_records(orjson.dumps([rec]))
    assert back == rec and back.operation is Operation.SEARCH
    legacy = {k: v for k, v in orjson.loads(orjson.dumps(rec)).items() if k != "operation"}
    assert load_records(orjson.dumps([legacy]))[0].operation is Operation.GENERATE


def test_workload_validation_for_vectors() -> None:
    url = "http://127.0.0.1:1"
    ingest = BenchConfig(target=url, backend="chroma", vector={"mode": "ingest"})
    assert ingest.requests is None and ingest.duration_s is None  # ingest stops by itself
    with pytest.raises(ValueError, match="'duration_s' or 'requests'"):
        BenchConfig(target=url, backend="chroma", vector={"mode": "search"})
    with pytest.raises(ValueError, match="collection"):
        VectorWorkload(collection="a b")
    with pytest.raises(ValueError, match="search_fraction"):
        VectorWorkload(search_fraction=1.5)
    assert VectorWorkload(mode="ingest").recreates and not VectorWorkload().recreates
    assert VectorWorkload(mode="mixed", search_fraction=1.0).writes is False
