"""Chroma's HTTP API (v2, ``chroma run`` from the ``chromadb`` package, 1.x).

Collections live under ``/api/v2/tenants/default_tenant/databases/default_database``; data
operations address a collection by its UUID, which each worker resolves from the name
before its load starts. Searches ask for ids only (``include: []``): distances, documents
and embeddings would only add bytes to every answer. Ids are the dataset's row numbers as
strings. The distance and ``ef_search`` are set when the collection is created
(``configuration.hnsw``), as Chroma takes them there and not per query.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from aifactory.loadgen.backends.vector import (
    JSON_OPTIONS,
    CollectionMissingError,
    Metadata,
    Route,
    Routes,
    VectorApiError,
    VectorBackend,
    call,
    expect_ok,
    json_object,
    row_id,
)
from aifactory.loadgen.errors import InvalidResponseError
from aifactory.loadgen.transport import HttpClient
from aifactory.shared.vectors import VectorWorkload

DATABASE = "/api/v2/tenants/default_tenant/databases/default_database"


class Chroma(VectorBackend, name="chroma"):
    health_path = "/api/v2/heartbeat"

    def __init__(self, workload: VectorWorkload) -> None:
        super().__init__(workload)
        query: dict[str, Any] = {"n_results": self.top_k, "include": []}
        if workload.filter is not None:
            query["where"] = {workload.filter.key: {"$eq": workload.filter.value}}
        # Everything but the vector, serialised once: each search only splices its vector in.
        tail = orjson.dumps(query)
        self._search_tail = b"]," + tail[1:]

    # -- control plane ----------------------------------------------------------------------

    async def routes(self, client: HttpClient) -> Routes:
        path = f"{DATABASE}/collections/{self.collection}"
        status, body = await call(client, "GET", path)
        if status == 404:
            raise CollectionMissingError(
                f"collection {self.collection!r} does not exist on {client.base_url}"
            )
        expect_ok(client, "GET", path, status, body)
        found = json_object(body, "the collection")
        cid = found.get("id")
        if not isinstance(cid, str) or not cid.replace("-", "").isalnum():
            raise VectorApiError(f"{client.url(path)}: collection without a valid id: {cid!r}")
        base = f"{DATABASE}/collections/{cid}"
        return Routes(search=Route("POST", f"{base}/query"), upsert=Route("POST", f"{base}/upsert"))

    async def create_collection(self, client: HttpClient, dimension: int) -> None:
        hnsw: dict[str, Any] = {"space": self.workload.distance.value}
        if self.workload.ef_search is not None:
            hnsw["ef_search"] = self.workload.ef_search
        path = f"{DATABASE}/collections"
        body = {"name": self.collection, "configuration": {"hnsw": hnsw}, "get_or_create": False}
        status, answer = await call(client, "POST", path, body)
        expect_ok(client, "POST", path, status, answer)

    async def drop_collection(self, client: HttpClient) -> None:
        path = f"{DATABASE}/collections/{self.collection}"
        status, body = await call(client, "DELETE", path)
        if status != 404:
            expect_ok(client, "DELETE", path, status, body)

    async def max_batch_size(self, client: HttpClient) -> int | None:
        status, body = await call(client, "GET", "/api/v2/pre-flight-checks")
        if status != 200:
            return None
        value = json_object(body, "the pre-flight checks").get("max_batch_size")
        return value if isinstance(value, int) and value > 0 else None

    # -- data plane -------------------------------------------------------------------------

    def search_body(self, vector: np.ndarray) -> bytes:
        return (
            b'{"query_embeddings":[' + orjson.dumps(vector, option=JSON_OPTIONS) + self._search_tail
        )

    def upsert_body(
        self, first_row: int, vectors: np.ndarray, metadata: Sequence[Metadata]
    ) -> bytes:
        ids = [str(i) for i in range(first_row, first_row + len(vectors))]
        body: dict[str, Any] = {"ids": ids, "embeddings": vectors}
        if any(metadata):  # rows without metadata go as null; none at all: no field
            body["metadatas"] = [m or None for m in metadata]
        return orjson.dumps(body, option=JSON_OPTIONS)

    def search_ids(self, body: bytes) -> list[int]:
        ids = json_object(body, "the query answer").get("ids")
        if not isinstance(ids, list) or len(ids) != 1 or not isinstance(ids[0], list):
            raise InvalidResponseError(f"query answer without one list of ids: {ids!r:.80}")
        return [row_id(i) for i in ids[0]]

    def check_upsert(self, body: bytes) -> None:
        answer = json_object(body, "the upsert answer")
        if "error" in answer:
            raise InvalidResponseError(f"upsert answered an error: {answer!r:.200}")
