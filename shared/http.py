"""HTTP pieces every service shares: an embeddable uvicorn and the ops endpoints."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from enum import StrEnum

import uvicorn
from fastapi import FastAPI, HTTPException, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, Field

from aifactory.shared.parts import PartStatus, StackParts


class HealthStatus(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"


class EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the service process owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


#: On stop, open responses (a followed log stream, SSE) get this long, then are cancelled.
GRACEFUL_SHUTDOWN_S = 3


def embedded_server(app: FastAPI, host: str, port: int) -> EmbeddedUvicorn:
    return EmbeddedUvicorn(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
    )


class Health(BaseModel):
    status: HealthStatus = Field(description="ok, or degraded when some part is not well.")
    bus: str = Field(description="This process's bus connection: connected.")
    parts: list[PartStatus] = Field(
        default_factory=list,
        description="Each part of the stack as its supervisor sees it (empty when this "
        "process was not started by 'aifactory up').",
    )


def add_ops_routes(
    app: FastAPI,
    registry: CollectorRegistry,
    healthy: Callable[[], bool],
    parts: Callable[[], StackParts | None] | None = None,
) -> None:
    """``/health`` and ``/metrics`` (Prometheus text).

    ``/health`` is 503 while this process's bus is down (it cannot work), and 200 with
    ``degraded`` when it can but another part of the stack crash-loops or just restarted
    (``parts``: the supervisor's view): a load balancer keeps it, a person is told.
    """

    @app.get(
        "/health",
        tags=["ops"],
        response_model=Health,
        responses={503: {"description": "Bus disconnected"}},
    )
    async def health() -> Health:
        if not healthy():
            raise HTTPException(503, "bus disconnected")
        found = parts() if parts is not None else None
        listed = found.parts if found is not None else []
        degraded = found is not None and bool(found.degraded)
        return Health(
            status=HealthStatus.DEGRADED if degraded else HealthStatus.OK,
            bus="connected",
            parts=listed,
        )

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
