"""The web page the ingress serves at ``/``: run and watch experiments in a browser.

Server-rendered Jinja2 pages (autoescaped), a little JavaScript in static files (htmx for
the script preview, uPlot for live charts, ``app.js`` for live updates), live data over
Server-Sent Events fed by the bus. Same security as the API: a login (a form, or a
one-click link from ``aifactory up`` / ``aifactory web``) sets a signed, HttpOnly,
SameSite=Strict session cookie; API clients keep the bearer header.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from faststream.nats import NatsBroker
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException

from aifactory.services.server.ingress.auth import FailedLogins
from aifactory.services.server.ingress.web.benchmark_pages import benchmarks_router
from aifactory.services.server.ingress.web.experiments import Experiments, experiments_router
from aifactory.services.server.ingress.web.feeds import Feeds
from aifactory.services.server.ingress.web.guard import (
    NOT_PAGES,
    LoginRequired,
    SecurityHeaders,
    WebGuard,
    login_location,
)
from aifactory.services.server.ingress.web.live import live_router
from aifactory.services.server.ingress.web.login import login_router
from aifactory.services.server.ingress.web.monitor_feed import MonitorFeed
from aifactory.services.server.ingress.web.recipe_pages import recipes_router
from aifactory.services.server.ingress.web.render import STATIC, page
from aifactory.services.server.ingress.web.results import results_router
from aifactory.services.server.ingress.web.services_pages import services_router
from aifactory.services.server.ingress.web.sessions import Sessions
from aifactory.services.server.ingress.web.state import WebState, stream_gauge
from aifactory.shared.registry import BenchmarkRecord, KVRegistry, ServiceRecord
from aifactory.shared.registry_view import RegistryView
from aifactory.shared.settings import Settings

__all__ = ["WebState", "mount_web", "stop_live"]


def mount_web(
    app: FastAPI,
    *,
    settings: Settings,
    token: str | None,
    broker: NatsBroker,
    services: KVRegistry[ServiceRecord],
    benchmarks: KVRegistry[BenchmarkRecord],
    services_view: RegistryView,
    metrics: CollectorRegistry,
    failures: FailedLogins,
    logs: bool = False,
    monitor: bool = False,
) -> WebState:
    """Add the page's routes, static files, headers and live feeds to the ingress."""
    sessions = Sessions(token) if token else None
    state = WebState(
        settings=settings,
        broker=broker,
        services=services,
        benchmarks=benchmarks,
        services_view=services_view,
        benchmarks_view=RegistryView(benchmarks.kv),
        guard=WebGuard(sessions, settings.ingress_host),
        sessions=sessions,
        failures=failures,
        logs=logs,
        monitor=monitor,
    )
    stream_gauge(metrics, state.hub)
    experiments = Experiments(state)
    feeds: list[Feeds | MonitorFeed] = []

    async def start() -> None:
        await state.benchmarks_view.start()
        feed = Feeds(state.hub, broker.connection, services_view, state.benchmarks_view)
        await feed.start()
        feeds.append(feed)
        if monitor:
            charts = MonitorFeed(state.hub, broker.connection, services_view)
            await charts.start()
            feeds.append(charts)
            state.want_monitor = charts.want

    async def stop() -> None:
        state.hub.close()
        await experiments.stop()
        for feed in feeds:
            await feed.stop()
        await state.benchmarks_view.stop()

    app.router.on_startup.append(start)
    app.router.on_shutdown.append(stop)
    app.state.web = state
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    async def login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        return RedirectResponse(login_location(exc.next_path), status_code=303)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        path = request.url.path
        wants_html = "text/html" in request.headers.get("accept", "")
        if path.startswith(NOT_PAGES) or not wants_html or exc.status_code == 401:
            return await http_exception_handler(request, exc)
        return page(
            request,
            "error.html",
            status_code=exc.status_code,
            open_mode=state.open_mode,
            title="Not found" if exc.status_code == 404 else f"Error {exc.status_code}",
            message=str(exc.detail),
            back="/",
        )

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(HTTPException, http_error)
    for router in (
        login_router(state),
        live_router(state),
        services_router(state),
        benchmarks_router(state),
        results_router(state),
        experiments_router(state, experiments),
        recipes_router(state),
    ):
        app.include_router(router)
    return state


def stop_live(app: FastAPI) -> None:
    """End every open live stream now (the ingress is stopping): uvicorn waits for open
    responses before it stops, and a page's stream never ends by itself."""
    state = getattr(app.state, "web", None)
    if isinstance(state, WebState):
        state.hub.close()
