"""What each vector request is: which query to search, which batch of rows to write.

Worker ``w`` of ``n`` takes queries ``w, w+n, w+2n…`` and batches ``w, w+n…`` in turn, so
workers never repeat each other's work: an ``ingest`` split over workers writes every
row exactly once. Search bodies are built once per query and reused (the request is the
same every time that query comes round); upsert bodies are built per request, because a
large dataset's batches would not fit in memory as JSON. A ``mixed`` load draws each
request's operation from a seeded stream, so a run is repeatable.
"""

from __future__ import annotations

import random

import numpy as np

from aifactory.loadgen.backends.vector import VectorBackend
from aifactory.loadgen.vector.data import VectorData
from aifactory.loadgen.vector.truth import recall_sets
from aifactory.shared.results import Operation
from aifactory.shared.vectors import VectorMode, VectorWorkload


class VectorCall:
    """One prepared request: its operation, dataset index and what checks its answer."""

    __slots__ = ("index", "op", "rows", "truth")

    def __init__(
        self, op: Operation, index: int, *, rows: int = 0, truth: frozenset[int] | None = None
    ) -> None:
        self.op = op
        self.index = index  # query number, or batch number
        self.rows = rows  # upsert: rows in the batch
        self.truth = truth  # search: the true top-k ids (None: unknown)


def batch_count(rows: int, batch_size: int) -> int:
    return -(-rows // batch_size)


class VectorSource:
    """An endless, deterministic sequence of vector requests for one worker."""

    def __init__(
        self,
        backend: VectorBackend,
        data: VectorData,
        truth: np.ndarray | None,
        workload: VectorWorkload,
        *,
        seed: int,
        worker_id: int,
        n_workers: int,
    ) -> None:
        self._backend = backend
        self._data = data
        self._mode = workload.mode
        self._fraction = workload.search_fraction
        self._batch = workload.batch_size
        self._batches = batch_count(data.rows, workload.batch_size)
        self._stride = n_workers
        n_queries = data.queries.shape[0]
        sets = recall_sets(truth) if truth is not None else [None] * n_queries
        self._searches = [VectorCall(Operation.SEARCH, q, truth=sets[q]) for q in range(n_queries)]
        self._bodies: list[bytes | None] = [None] * n_queries
        self._query = worker_id % n_queries
        self._next_batch = worker_id % self._batches
        self._rng = random.Random(f"vector:{seed}:{worker_id}")

    def next(self) -> tuple[VectorCall, bytes]:
        mode = self._mode
        if mode is VectorMode.SEARCH or (
            mode is VectorMode.MIXED and self._rng.random() < self._fraction
        ):
            return self._search()
        return self._upsert()

    def _search(self) -> tuple[VectorCall, bytes]:
        q = self._query
        self._query = (q + self._stride) % len(self._searches)
        body = self._bodies[q]
        if body is None:
            body = self._bodies[q] = self._backend.search_body(self._data.queries[q])
        return self._searches[q], body

    def _upsert(self) -> tuple[VectorCall, bytes]:
        b = self._next_batch
        self._next_batch = (b + self._stride) % self._batches
        lo = b * self._batch
        hi = min(lo + self._batch, self._data.rows)
        body = self._backend.upsert_body(
            lo, self._data.base[lo:hi], self._data.metadata_rows(lo, hi)
        )
        return VectorCall(Operation.UPSERT, b, rows=hi - lo), body
