"""The vector hot path: send a search or an upsert, record latency, recall@k or rows.

Recall@k of a search = |first k returned ids ∩ true top-k| / |true top-k| (the true set is
smaller than k only when a filter leaves fewer matching rows). A search answered with no
hit at all where the truth has some is a failure (``empty_collection``), not a recall of
0: it means the collection is empty or gone, which no index setting explains. An error
answer naming the vector dimension is ``dimension_mismatch``; an answer that is not the
JSON the API documents is ``invalid_response``. Nothing a response contains can crash the
worker: every case ends as a record.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine

from aifactory.loadgen.backends.vector import Routes, VectorBackend
from aifactory.loadgen.client import CAUGHT, Requester, classify
from aifactory.loadgen.metrics.records import RequestRecord
from aifactory.loadgen.transport import HttpClient, Response
from aifactory.loadgen.vector.source import VectorCall
from aifactory.shared.results import ErrorType, Operation

_NS_PER_MS = 1_000_000.0


class VectorRequester(Requester[VectorCall]):
    """Sends vector operations to one endpoint's collection."""

    def __init__(
        self,
        client: HttpClient,
        backend: VectorBackend,
        routes: Routes,
        *,
        start_ns: int,
        run_index: int,
        worker_id: int,
        deliver: Callable[[RequestRecord], None],
        endpoint: int = 0,
    ) -> None:
        super().__init__(
            client,
            start_ns=start_ns,
            run_index=run_index,
            worker_id=worker_id,
            deliver=deliver,
            endpoint=endpoint,
        )
        self._backend = backend
        self._k = backend.top_k
        self._heads = {
            Operation.SEARCH: client.json_head(*routes.search),
            Operation.UPSERT: client.json_head(*routes.upsert),
        }

    def start(
        self, item: VectorCall, body: bytes, *, request_index: int, scheduled_ns: int, warmup: bool
    ) -> Coroutine[None, None, None]:
        payload = HttpClient.post_payload(self._heads[item.op], body)
        rec = RequestRecord(
            run_index=self._run_index,
            worker_id=self._worker_id,
            request_index=request_index,
            prompt_index=item.index,
            warmup=warmup,
            scheduled_s=self._rel_s(scheduled_ns),
            t0_s=0.0,
            end_s=0.0,
            endpoint=self._endpoint,
            operation=item.op,
            bytes_sent=len(payload),
        )
        t0 = time.perf_counter_ns()
        rec.t0_s = self._rel_s(t0)
        self._open[id(rec)] = rec
        return self._complete(rec, item, t0, self._client.start(payload))

    async def _complete(
        self, rec: RequestRecord, item: VectorCall, t0: int, response: Awaitable[Response]
    ) -> None:
        ids: list[int] = []
        try:
            resp = await response
            if resp.status >= 400:
                self._fail_http(rec, resp, self._backend.error_type(resp.status, resp.body))
                return
            if item.op is Operation.SEARCH:
                ids = self._backend.search_ids(resp.body)
            else:
                self._backend.check_upsert(resp.body)
        except asyncio.CancelledError:
            self._fail(rec, ErrorType.CANCELLED, "still in flight when the run stopped")
            raise
        except CAUGHT as exc:
            self._fail(rec, classify(exc), f"{type(exc).__name__}: {exc}")
            return
        rec.http_status = resp.status
        rec.bytes_received = resp.received
        if item.op is Operation.UPSERT:
            rec.rows = item.rows
        else:
            rec.results = len(ids)
            truth = item.truth
            if truth:
                if not ids:
                    self._fail(
                        rec,
                        ErrorType.EMPTY_COLLECTION,
                        f"no hits for query {item.index}, which has {len(truth)} true "
                        "neighbours: is the collection ingested?",
                    )
                    return
                rec.recall = len(truth.intersection(ids[: self._k])) / len(truth)
        rec.end_s = self._rel_s(resp.end_ns)
        rec.e2e_ms = (resp.end_ns - t0) / _NS_PER_MS
        self._deliver(rec)
