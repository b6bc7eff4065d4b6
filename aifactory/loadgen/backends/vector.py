"""What a vector-database backend provides: collection control, request bodies, parsers.

Two planes. The control plane (create, drop, resolve a collection; health; limits) runs in
the pre-flight and while a worker loads, never timed. The data plane is the hot path: a
search body per query (built once and reused), an upsert body per batch, and a parser per
response that returns the hit ids (as dataset row numbers) or checks the write. Rows are
identified by their position in the dataset's indexed set, so recall@k is a set
intersection with the ground truth. ``class Mine(VectorBackend, name="mine")`` registers one.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np
import orjson

from aifactory.loadgen.backends.base import Backend, RequestKind
from aifactory.loadgen.errors import InvalidResponseError, LoadgenError
from aifactory.loadgen.transport import HttpClient
from aifactory.shared.results import ErrorType
from aifactory.shared.vectors import VectorWorkload

#: Vectors go out as JSON numbers straight from numpy arrays (no Python float lists).
JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY

#: One row's metadata (Chroma metadatas, Qdrant payloads): flat, scalar values.
Metadata = Mapping[str, int | float | str | bool]


class Route(NamedTuple):
    """Method and path of one data-plane operation on one endpoint."""

    method: str
    path: str


class Routes(NamedTuple):
    search: Route
    upsert: Route


class VectorApiError(LoadgenError):
    """A control-plane call failed (the message names the URL, status and answer)."""


class CollectionMissingError(VectorApiError):
    """The workload's collection does not exist on this endpoint."""


def json_object(body: bytes, what: str) -> dict[str, Any]:
    """``body`` parsed as a JSON object; anything else is an :class:`InvalidResponseError`."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        snippet = body[:120].decode("utf-8", "replace")
        raise InvalidResponseError(f"{what} is not JSON ({exc}): {snippet!r}") from exc
    if not isinstance(obj, dict):
        raise InvalidResponseError(f"{what} is not a JSON object but {type(obj).__name__}")
    return obj


async def call(
    client: HttpClient, method: str, path: str, body: object = None
) -> tuple[int, bytes]:
    """One control-plane request; returns status and body (transport errors propagate)."""
    if body is None:
        payload = client.bodiless_payload(method, path)
    else:
        data = orjson.dumps(body, option=JSON_OPTIONS)
        payload = HttpClient.post_payload(client.json_head(method, path), data)
    resp = await client.request(payload)
    return resp.status, resp.body


def expect_ok(client: HttpClient, method: str, path: str, status: int, body: bytes) -> None:
    if status >= 400:
        text = body[:300].decode("utf-8", "replace").strip()
        raise VectorApiError(f"{method} {client.url(path)} answered HTTP {status}: {text}")


class VectorBackend(Backend):
    """One vector database's HTTP API, driven by a :class:`VectorWorkload`."""

    kind = RequestKind.VECTOR
    #: A GET that answers 200 when the server is up.
    health_path: ClassVar[str]

    def __init__(self, workload: VectorWorkload) -> None:
        self.workload = workload
        self.collection = workload.collection
        self.top_k = workload.top_k

    # -- control plane (pre-flight, worker start: not timed) --------------------------------

    @abstractmethod
    async def routes(self, client: HttpClient) -> Routes:
        """Where searches and upserts of the collection go on this endpoint; raises
        :class:`CollectionMissingError` when it does not exist."""

    @abstractmethod
    async def create_collection(self, client: HttpClient, dimension: int) -> None:
        """Create the (absent) collection for ``dimension``-long vectors, with the
        workload's distance and index settings."""

    @abstractmethod
    async def drop_collection(self, client: HttpClient) -> None:
        """Delete the collection and its data; nothing to do when it does not exist."""

    async def max_batch_size(self, client: HttpClient) -> int | None:
        """The most rows the server takes in one write (``None``: no stated limit)."""
        return None

    async def index_ready(self, client: HttpClient) -> bool | None:
        """Whether the server says its index is built (``None``: it does not say)."""
        return None

    # -- data plane (the hot path) ----------------------------------------------------------

    @abstractmethod
    def search_body(self, vector: np.ndarray) -> bytes:
        """A top-``top_k`` search for ``vector`` (with the workload's filter, if any)."""

    @abstractmethod
    def upsert_body(
        self, first_row: int, vectors: np.ndarray, metadata: Sequence[Metadata]
    ) -> bytes:
        """Write rows ``first_row``, ``first_row + 1``… with their vectors and metadata."""

    @abstractmethod
    def search_ids(self, body: bytes) -> list[int]:
        """The hit ids of a search response, best first, as dataset row numbers."""

    @abstractmethod
    def check_upsert(self, body: bytes) -> None:
        """Raise :class:`InvalidResponseError` unless ``body`` says the write succeeded."""

    def error_type(self, status: int, body: bytes) -> ErrorType | None:
        """A more precise type than ``http_4xx``/``http_5xx`` for an error answer, if any.

        Both Chroma and Qdrant refuse vectors of the wrong length with a 4xx naming the
        dimension ("Collection expecting embedding with dimension of 3, got 2"; "Vector
        dimension error: expected dim: 4, got 3").
        """
        if 400 <= status < 500 and b"dimension" in body[:1000].lower():
            return ErrorType.DIMENSION_MISMATCH
        return None


def row_id(value: object) -> int:
    """A hit's id as a row number: an int, or a string of one (Chroma ids are strings)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise InvalidResponseError(f"hit id {value!r:.40} is not a row number of the dataset")
