"""Qdrant's REST API, written from its published OpenAPI document (``docs/redoc/master/
openapi.json`` of github.com/qdrant/qdrant, API 1.19) and not yet run against a live Qdrant:
no package here provides its server. ``tests/unit/test_qdrant_openapi.py`` checks every body
this module sends against that document's schemas and parses answers taken from it.

Searches use the universal query API (``POST /collections/{name}/points/query``, Qdrant
1.10 and later) with ``with_payload``/``with_vector`` off, so an answer carries ids and
scores only; point ids are the dataset's row numbers. Upserts are column batches
(``PUT /collections/{name}/points?wait=true``, ``{"batch": {ids, vectors, payloads}}``) and
wait until applied, so an upsert's latency includes the write. ``ef_search`` is sent per
query (``params.hnsw_ef``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import numpy as np
import orjson

from aifactory.loadgen.backends.vector import (
    JSON_OPTIONS,
    CollectionMissingError,
    Metadata,
    Route,
    Routes,
    VectorBackend,
    call,
    expect_ok,
    json_object,
    row_id,
)
from aifactory.loadgen.errors import InvalidResponseError, ServerStreamError
from aifactory.loadgen.transport import HttpClient
from aifactory.shared.vectors import Distance, VectorWorkload

#: Our distance names → Qdrant's ``Distance`` enum.
DISTANCES = {Distance.L2: "Euclid", Distance.COSINE: "Cosine", Distance.IP: "Dot"}


def _result(body: bytes, what: str) -> Any:
    """The ``result`` of a Qdrant answer (``{"result": ..., "status": "ok", "time": ...}``)."""
    answer = json_object(body, what)
    status = answer.get("status")
    if status != "ok":
        error = status.get("error") if isinstance(status, dict) else status
        raise ServerStreamError(f"{what}: status {error!r:.200}")
    if "result" not in answer:
        raise InvalidResponseError(f"{what} has no 'result'")
    return answer["result"]


class Qdrant(VectorBackend, name="qdrant"):
    health_path = "/readyz"

    def __init__(self, workload: VectorWorkload) -> None:
        super().__init__(workload)
        self._base = f"/collections/{quote(self.collection, safe='')}"
        query: dict[str, Any] = {"limit": self.top_k, "with_payload": False, "with_vector": False}
        if workload.filter is not None:
            condition = {"key": workload.filter.key, "match": {"value": workload.filter.value}}
            query["filter"] = {"must": [condition]}
        if workload.ef_search is not None:
            query["params"] = {"hnsw_ef": workload.ef_search}
        # Everything but the vector, serialised once: each search only splices its vector in.
        self._search_tail = b"," + orjson.dumps(query)[1:]

    # -- control plane ----------------------------------------------------------------------

    async def routes(self, client: HttpClient) -> Routes:
        path = f"{self._base}/exists"
        status, body = await call(client, "GET", path)
        expect_ok(client, "GET", path, status, body)
        found = _result(body, "the collection check")
        if not isinstance(found, dict) or found.get("exists") is not True:
            raise CollectionMissingError(
                f"collection {self.collection!r} does not exist on {client.base_url}"
            )
        return Routes(
            search=Route("POST", f"{self._base}/points/query"),
            upsert=Route("PUT", f"{self._base}/points?wait=true"),
        )

    async def create_collection(self, client: HttpClient, dimension: int) -> None:
        body = {"vectors": {"size": dimension, "distance": DISTANCES[self.workload.distance]}}
        status, answer = await call(client, "PUT", self._base, body)
        expect_ok(client, "PUT", self._base, status, answer)

    async def drop_collection(self, client: HttpClient) -> None:
        status, body = await call(client, "DELETE", self._base)
        if status != 404:
            expect_ok(client, "DELETE", self._base, status, body)

    async def index_ready(self, client: HttpClient) -> bool | None:
        """Green: every segment indexed and no optimisation running (yellow meanwhile)."""
        status, body = await call(client, "GET", self._base)
        expect_ok(client, "GET", self._base, status, body)
        info = _result(body, "the collection info")
        return isinstance(info, dict) and info.get("status") == "green"

    # -- data plane -------------------------------------------------------------------------

    def search_body(self, vector: np.ndarray) -> bytes:
        return b'{"query":' + orjson.dumps(vector, option=JSON_OPTIONS) + self._search_tail

    def upsert_body(
        self, first_row: int, vectors: np.ndarray, metadata: Sequence[Metadata]
    ) -> bytes:
        ids = list(range(first_row, first_row + len(vectors)))
        body = {"batch": {"ids": ids, "vectors": vectors, "payloads": metadata}}
        return orjson.dumps(body, option=JSON_OPTIONS)

    def search_ids(self, body: bytes) -> list[int]:
        result = _result(body, "the query answer")
        points = result.get("points") if isinstance(result, dict) else None
        if not isinstance(points, list):
            raise InvalidResponseError(f"query answer without 'points': {result!r:.80}")
        try:
            return [row_id(p["id"]) for p in points]
        except (TypeError, KeyError) as exc:
            raise InvalidResponseError(f"a scored point without an id: {points!r:.80}") from exc

    def check_upsert(self, body: bytes) -> None:
        result = _result(body, "the upsert answer")
        state = result.get("status") if isinstance(result, dict) else None
        if state not in ("completed", "acknowledged"):
            raise InvalidResponseError(f"upsert not applied: status {state!r}")
