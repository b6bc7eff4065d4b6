"""Small vector-database servers on loopback, for what a real one cannot show.

- :class:`FakeQdrant` speaks Qdrant's REST API as its OpenAPI document describes it (no
  Qdrant server can run here): every request body is validated against the document's
  schema, and searches are answered by exact brute force over what was upserted.
- :class:`FakeChroma` speaks Chroma's v2 API, and can misbehave on purpose: answer
  searches with the wrong ids (an index that lies), or with HTTP 200 and broken JSON.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import web

from aifactory.loadgen.vector.truth import exact_top_k
from aifactory.shared.vectors import Distance
from tests.qdrantkit import request_errors

QDRANT_DISTANCE = {"Euclid": Distance.L2, "Cosine": Distance.COSINE, "Dot": Distance.IP}


@dataclass
class Store:
    """One collection: vectors by row id, their metadata, its distance."""

    distance: Distance = Distance.L2
    dimension: int | None = None
    rows: dict[int, list[float]] = field(default_factory=dict)
    meta: dict[int, dict[str, Any]] = field(default_factory=dict)

    def search(self, vector: list[float], k: int, flt: tuple[str, Any] | None) -> list[int]:
        if not self.rows:
            return []
        ids = np.array(sorted(self.rows))
        base = np.array([self.rows[i] for i in ids], dtype=np.float32)
        mask = None
        if flt is not None:
            mask = np.array([self.meta[i].get(flt[0]) == flt[1] for i in ids])
        found = exact_top_k(base, np.array([vector], dtype=np.float32), k, self.distance, mask)
        return [int(ids[i]) for i in found[0] if i >= 0]


def answer(response: web.Response) -> Any:
    """A handler that always answers the same (a fresh copy each time)."""

    async def handler(_: web.Request) -> web.Response:
        return web.Response(
            body=response.body, status=response.status, content_type=response.content_type
        )

    return handler


class _Server:
    def __init__(self) -> None:
        self.app = web.Application(client_max_size=64 * 2**20)
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


class FakeQdrant(_Server):
    def __init__(self) -> None:
        super().__init__()
        self.collections: dict[str, Store] = {}
        self.violations: list[str] = []  # request bodies the OpenAPI document refuses
        r = self.app.router
        r.add_get("/readyz", answer(web.Response(text="all shards are ready")))
        r.add_get("/collections/{name}/exists", self.exists)
        r.add_put("/collections/{name}", self.create)
        r.add_delete("/collections/{name}", self.drop)
        r.add_get("/collections/{name}", self.info)
        r.add_put("/collections/{name}/points", self.upsert)
        r.add_post("/collections/{name}/points/query", self.query)

    @staticmethod
    def ok(result: Any) -> web.Response:
        return web.json_response({"result": result, "status": "ok", "time": 0.0001})

    async def checked(self, request: web.Request, path: str, method: str) -> Any:
        body = await request.json()
        errors = request_errors(path, method, body)
        if errors:
            self.violations.append(f"{method} {path}: {errors[0]}")
            raise web.HTTPUnprocessableEntity(text=errors[0])
        return body

    async def exists(self, request: web.Request) -> web.Response:
        return self.ok({"exists": request.match_info["name"] in self.collections})

    async def create(self, request: web.Request) -> web.Response:
        body = await self.checked(request, "/collections/{collection_name}", "put")
        params = body["vectors"]
        self.collections[request.match_info["name"]] = Store(
            distance=QDRANT_DISTANCE[params["distance"]], dimension=params["size"]
        )
        return self.ok(True)

    async def drop(self, request: web.Request) -> web.Response:
        return self.ok(self.collections.pop(request.match_info["name"], None) is not None)

    async def info(self, request: web.Request) -> web.Response:
        return self.ok({"status": "green", "points_count": len(self.store(request).rows)})

    def store(self, request: web.Request) -> Store:
        found = self.collections.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound(text='{"status": {"error": "Not found: Collection"}}')
        return found

    def dimension_error(self, store: Store, vectors: list[list[float]]) -> web.Response | None:
        for v in vectors:
            if len(v) != store.dimension:
                error = f"Wrong input: Vector dimension error: expected dim: {store.dimension}"
                return web.json_response(
                    {"status": {"error": f"{error}, got {len(v)}"}}, status=400
                )
        return None

    async def upsert(self, request: web.Request) -> web.Response:
        store = self.store(request)
        batch = (await self.checked(request, "/collections/{collection_name}/points", "put"))[
            "batch"
        ]
        refused = self.dimension_error(store, batch["vectors"])
        if refused is not None:
            return refused
        for i, vec, meta in zip(batch["ids"], batch["vectors"], batch["payloads"], strict=True):
            store.rows[i], store.meta[i] = vec, meta
        return self.ok({"operation_id": len(store.rows), "status": "completed"})

    async def query(self, request: web.Request) -> web.Response:
        store = self.store(request)
        body = await self.checked(request, "/collections/{collection_name}/points/query", "post")
        refused = self.dimension_error(store, [body["query"]])
        if refused is not None:
            return refused
        flt = None
        if body.get("filter"):
            [cond] = body["filter"]["must"]
            flt = (cond["key"], cond["match"]["value"])
        ids = store.search(body["query"], body["limit"], flt)
        return self.ok({"points": [{"id": i, "score": 1.0, "version": 0} for i in ids]})


class FakeChroma(_Server):
    """``lie``: answer every search with ids shifted by one; ``broken``: 200 + not JSON."""

    DB = "/api/v2/tenants/default_tenant/databases/default_database"

    def __init__(self, *, lie: bool = False, broken: bool = False) -> None:
        super().__init__()
        self.lie = lie
        self.broken = broken
        self.by_name: dict[str, str] = {}
        self.stores: dict[str, Store] = {}
        r = self.app.router
        r.add_get("/api/v2/heartbeat", answer(web.json_response({"nanosecond heartbeat": 1})))
        limits = web.json_response({"max_batch_size": 5461})
        r.add_get("/api/v2/pre-flight-checks", answer(limits))
        r.add_post(f"{self.DB}/collections", self.create)
        r.add_get(f"{self.DB}/collections/{{name}}", self.get)
        r.add_delete(f"{self.DB}/collections/{{name}}", self.drop)
        r.add_post(f"{self.DB}/collections/{{cid}}/upsert", self.upsert)
        r.add_post(f"{self.DB}/collections/{{cid}}/query", self.query)

    async def create(self, request: web.Request) -> web.Response:
        body = await request.json()
        cid = str(uuid.uuid4())
        self.by_name[body["name"]] = cid
        self.stores[cid] = Store(distance=Distance(body["configuration"]["hnsw"]["space"]))
        return web.json_response({"id": cid, "name": body["name"]})

    async def get(self, request: web.Request) -> web.Response:
        cid = self.by_name.get(request.match_info["name"])
        if cid is None:
            return web.json_response({"error": "NotFoundError", "message": "nope"}, status=404)
        return web.json_response({"id": cid, "name": request.match_info["name"]})

    async def drop(self, request: web.Request) -> web.Response:
        cid = self.by_name.pop(request.match_info["name"], None)
        self.stores.pop(cid or "", None)
        return web.json_response(
            {} if cid else {"error": "NotFoundError"}, status=200 if cid else 404
        )

    async def upsert(self, request: web.Request) -> web.Response:
        if self.broken:
            return web.Response(text='{"ids": [', content_type="application/json")
        store = self.stores[request.match_info["cid"]]
        body = await request.json()
        for i, vec, meta in zip(body["ids"], body["embeddings"], body["metadatas"], strict=True):
            store.rows[int(i)], store.meta[int(i)] = vec, meta
        return web.json_response({})

    async def query(self, request: web.Request) -> web.Response:
        if self.broken:
            return web.Response(text="<html>200 OK</html>", content_type="application/json")
        store = self.stores[request.match_info["cid"]]
        body = await request.json()
        flt = None
        if "where" in body:
            [(key, cond)] = body["where"].items()
            flt = (key, cond["$eq"])
        [vector] = body["query_embeddings"]
        ids = store.search(vector, body["n_results"], flt)
        if self.lie:
            ids = [i + 1 for i in ids]
        return web.json_response({"ids": [[str(i) for i in ids]], "include": []})
