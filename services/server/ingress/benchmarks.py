"""``/api/v1/benchmarks``: benchmark commands to the client service, state from its KV.

The workload is validated here with the shared workload schema, so a typo answers 422
naming ``workload.<field>`` at once instead of a failed benchmark a moment later.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from faststream.nats import NatsBroker
from pydantic import BaseModel, ConfigDict, Field

from aifactory.services.server.ingress.actions import (
    NotFound,
    Rejected,
    start_benchmark,
)
from aifactory.services.server.ingress.actions import (
    cancel_benchmark as request_cancel,
)
from aifactory.services.server.ingress.errors import NOT_FOUND, unprocessable
from aifactory.shared.messages import BenchTarget
from aifactory.shared.messages.base import ID_PATTERN
from aifactory.shared.registry import BenchmarkRecord, KVRegistry, ServiceRecord
from aifactory.shared.workload import Workload

BenchmarkId = Annotated[str, Path(pattern=ID_PATTERN, description="benchmark id")]


class CreateBenchmark(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: BenchTarget
    workload: Workload = Field(
        examples=[{"profile": "poisson", "rate": 20, "duration_s": 30, "backend": "openai_chat"}],
    )


class BenchmarkAccepted(BaseModel):
    benchmark_id: str
    status_url: str


def benchmarks_router(
    broker: NatsBroker,
    benchmarks: KVRegistry[BenchmarkRecord],
    services: KVRegistry[ServiceRecord],
) -> APIRouter:
    router = APIRouter(tags=["benchmarks"])

    @router.post("/benchmarks", status_code=202, response_model=BenchmarkAccepted)
    async def create_benchmark(body: CreateBenchmark) -> Any:
        try:
            benchmark_id = await start_benchmark(
                broker, benchmarks, services, body.target, body.workload
            )
        except Rejected as exc:
            return unprocessable(((["body", *loc], r) for loc, r in exc.errors), exc.kind)
        return BenchmarkAccepted(
            benchmark_id=benchmark_id, status_url=f"/api/v1/benchmarks/{benchmark_id}"
        )

    @router.get("/benchmarks", response_model=list[BenchmarkRecord])
    async def list_benchmarks() -> list[BenchmarkRecord]:
        records = await benchmarks.all()
        # The list stays small to read: summaries are in GET /benchmarks/{id}.
        return [
            r.model_copy(update={"summary": None}) for r in sorted(records, key=lambda r: r.created)
        ]

    @router.get("/benchmarks/{benchmark_id}", response_model=BenchmarkRecord, responses=NOT_FOUND)
    async def get_benchmark(benchmark_id: BenchmarkId) -> BenchmarkRecord:
        found = await benchmarks.get(benchmark_id)
        if found is None:
            raise HTTPException(404, f"no benchmark {benchmark_id!r}")
        return found[0]

    @router.delete("/benchmarks/{benchmark_id}", status_code=202, responses=NOT_FOUND)
    async def cancel_benchmark(benchmark_id: BenchmarkId) -> dict[str, str]:
        try:
            await request_cancel(broker, benchmarks, benchmark_id)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        return {"benchmark_id": benchmark_id, "status": "cancel requested"}

    return router
