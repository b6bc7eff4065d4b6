"""HTTP pieces every service shares: an embeddable uvicorn and the ops endpoints."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import uvicorn
from fastapi import FastAPI, HTTPException, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


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


def add_ops_routes(app: FastAPI, registry: CollectorRegistry, healthy: Callable[[], bool]) -> None:
    """``/health`` (503 while the bus is down) and ``/metrics`` (Prometheus text)."""

    @app.get("/health", tags=["ops"], responses={503: {"description": "Bus disconnected"}})
    async def health() -> dict[str, str]:
        if not healthy():
            raise HTTPException(503, "bus disconnected")
        return {"status": "ok"}

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
