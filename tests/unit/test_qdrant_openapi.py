"""The Qdrant backend against Qdrant's published OpenAPI document (no live Qdrant here).

Every body the backend sends is validated against the document's request schema (made
strict: an undeclared field fails), and every answer it parses is one the document gives:
the examples of its description, or instances built from its schemas' examples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from aifactory.loadgen.backends import qdrant as qdrant_module
from aifactory.loadgen.backends.qdrant import Qdrant
from aifactory.loadgen.backends.vector import CollectionMissingError
from aifactory.loadgen.errors import InvalidResponseError, ServerStreamError
from aifactory.loadgen.transport import HttpClient
from aifactory.shared.results import ErrorType
from aifactory.shared.vectors import VectorWorkload
from tests.qdrantkit import (
    SCHEMAS,
    description_examples,
    example_of,
    request_errors,
    response_errors,
)

COLLECTION = "/collections/{collection_name}"
POINTS = "/collections/{collection_name}/points"
QUERY = "/collections/{collection_name}/points/query"
VEC = np.array([0.25, -1.5, 3.0, 0.125], dtype=np.float32)


@pytest.mark.parametrize(
    "workload",
    [
        VectorWorkload(),
        VectorWorkload(top_k=3, ef_search=64, filter={"key": "category", "value": 2}),
        VectorWorkload(filter={"key": "city", "value": "London"}, distance="cosine"),
    ],
)
def test_search_bodies_are_valid_query_requests(workload: VectorWorkload) -> None:
    body = orjson.loads(Qdrant(workload).search_body(VEC))
    assert request_errors(QUERY, "post", body) == []
    assert body["query"] == VEC.tolist() and body["limit"] == workload.top_k
    assert body["with_payload"] is False and body["with_vector"] is False


def test_upsert_bodies_are_valid_point_batches() -> None:
    vectors = np.arange(8, dtype=np.float32).reshape(2, 4)
    raw = Qdrant(VectorWorkload()).upsert_body(40, vectors, [{"category": 0}, {"category": 1}])
    body = orjson.loads(raw)
    assert request_errors(POINTS, "put", body) == []
    assert body["batch"]["ids"] == [40, 41]
    assert body["batch"]["vectors"] == vectors.tolist()


def test_a_misspelt_field_is_caught_by_the_strict_schema() -> None:
    """The oracle itself: an undeclared field (or a wrong type) fails validation."""
    body = orjson.loads(Qdrant(VectorWorkload()).search_body(VEC))
    assert request_errors(QUERY, "post", {**body, "with_vectors": False})
    assert request_errors(QUERY, "post", {**body, "limit": "ten"})
    assert request_errors(COLLECTION, "put", {"vectors": {"size": 4, "distance": "L2"}})


def test_answers_from_the_document_parse() -> None:
    created, _info, upserted, searched, _filtered = description_examples()
    assert response_errors(POINTS, "put", upserted) == []
    Qdrant(VectorWorkload()).check_upsert(orjson.dumps(upserted))
    # The description's search answers list scored points; /points/query wraps them.
    points = {**searched, "result": {"points": searched["result"]}}
    assert response_errors(QUERY, "post", points) == []
    assert Qdrant(VectorWorkload()).search_ids(orjson.dumps(points)) == [4, 1, 3]
    built = {"result": {"points": [example_of("ScoredPoint")]}, "status": "ok", "time": 0.002}
    assert response_errors(QUERY, "post", built) == []
    assert Qdrant(VectorWorkload()).search_ids(orjson.dumps(built)) == [42]
    assert response_errors(COLLECTION, "put", created) == []


def test_answers_the_document_does_not_promise_are_typed_failures() -> None:
    api = Qdrant(VectorWorkload())
    error = {"status": {"error": "Wrong input: Vector dimension error: expected dim: 4, got 3"}}
    assert response_errors(QUERY, "post", {**error, "time": 0.1}, status="4XX") == []
    assert api.error_type(400, orjson.dumps(error)) is ErrorType.DIMENSION_MISMATCH
    with pytest.raises(InvalidResponseError):
        api.search_ids(b"<html>oops</html>")
    with pytest.raises(InvalidResponseError):
        api.search_ids(b'{"result": {"points": [{"score": 1.0}]}, "status": "ok"}')
    with pytest.raises(ServerStreamError):
        api.search_ids(orjson.dumps({**error, "result": None}))
    with pytest.raises(InvalidResponseError):
        api.check_upsert(b'{"result": {"status": "wait_timeout"}, "status": "ok"}')


class Recorder:
    """Stands in for the network in control-plane calls: answers from the document."""

    def __init__(self, answers: dict[tuple[str, str], tuple[int, Any]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, Any]] = []

    async def __call__(
        self, client: HttpClient, method: str, path: str, body: object = None
    ) -> tuple[int, bytes]:
        sent = orjson.loads(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY))
        self.calls.append((method, path, sent))
        status, answer = self.answers[(method, path)]
        return status, orjson.dumps(answer)


async def test_control_plane_requests_follow_the_document(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created, info, *_ = description_examples()
    ok_true = {"result": {"exists": True}, "status": "ok", "time": 0.001}
    assert response_errors(COLLECTION + "/exists", "get", ok_true) == []
    # The description's collection-info example predates the schema's optimizer_status;
    # what the backend reads of it, result.status, is a required field of the schema.
    assert "status" in SCHEMAS["CollectionInfo"]["required"] and info["result"]["status"]
    recorder = Recorder(
        {
            ("PUT", "/collections/bench-1"): (200, created),
            ("DELETE", "/collections/bench-1"): (200, created),
            ("GET", "/collections/bench-1/exists"): (200, ok_true),
            ("GET", "/collections/bench-1"): (200, info),
        }
    )
    monkeypatch.setattr(qdrant_module, "call", recorder)
    api = Qdrant(VectorWorkload(collection="bench-1", distance="ip"))
    client = HttpClient("http://127.0.0.1:1", timeout_s=1)
    await api.create_collection(client, 4)
    _method, _path, body = recorder.calls[-1]
    assert request_errors(COLLECTION, "put", body) == []
    assert body == {"vectors": {"size": 4, "distance": "Dot"}}
    await api.drop_collection(client)
    routes = await api.routes(client)
    assert routes.search == ("POST", "/collections/bench-1/points/query")
    assert routes.upsert == ("PUT", "/collections/bench-1/points?wait=true")
    assert await api.index_ready(client) is True  # the example collection is green
    recorder.answers[("GET", "/collections/bench-1/exists")] = (
        200,
        {"result": {"exists": False}, "status": "ok", "time": 0.001},
    )
    with pytest.raises(CollectionMissingError):
        await api.routes(client)
