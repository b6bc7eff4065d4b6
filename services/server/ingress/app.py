"""The HTTP edge: REST calls become bus commands; reads come from the KV registry.

The ingress never touches the scheduler itself: it publishes ``deploy.requested`` /
``deploy.cancel`` and answers 202 with the service id, exactly as the CLI does, so HTTP and
CLI users see the same behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request, Response
from fastapi.responses import JSONResponse
from faststream.nats import NatsBroker
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from aifactory.contract import bus_document as make_bus_document
from aifactory.loadgen.backends import backend_names
from aifactory.services.server.ingress.accept import registered
from aifactory.services.server.ingress.auth import BearerAuth, FailedLogins
from aifactory.services.server.ingress.benchmarks import benchmarks_router
from aifactory.services.server.ingress.counting import RequestCounter
from aifactory.services.server.ingress.edge import Edge
from aifactory.services.server.ingress.errors import (
    EDGE_RESPONSES,
    NOT_FOUND,
    PROMPT_ERRORS,
    PROXY_ERRORS,
    UNAUTHORIZED,
    document_names,
    path_parts,
    unprocessable,
)
from aifactory.services.server.ingress.logs import logs_router
from aifactory.services.server.ingress.proxy import (
    NoHealthyReplica,
    ReplicaBalancer,
    forward,
    relay,
)
from aifactory.services.server.ingress.sd import sd_router
from aifactory.services.server.metrics import ServerMetrics
from aifactory.shared import subjects
from aifactory.shared.bus import PublishRefused, bus_connected, publish
from aifactory.shared.http import add_ops_routes
from aifactory.shared.messages import DeployCancel, DeployRequested, new_id
from aifactory.shared.messages.base import ID_PATTERN
from aifactory.shared.messages.deploy import RECIPE_REF_PATTERN, RecipeOverrides
from aifactory.shared.parts import PartsCollector, read_parts
from aifactory.shared.recipes import RecipeError, list_recipes, load_recipe, load_service_recipe
from aifactory.shared.registry import BenchmarkRecord, KVRegistry, ServiceRecord
from aifactory.shared.registry_view import RegistryView
from aifactory.shared.settings import Settings
from aifactory.shared.states import ServiceState

ServiceId = Annotated[str, Path(pattern=ID_PATTERN, description="service id")]
RecipePart = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._-]*$")]


@dataclass
class IngressContext:
    settings: Settings
    broker: NatsBroker
    services: KVRegistry[ServiceRecord]
    benchmarks: KVRegistry[BenchmarkRecord]
    metrics: ServerMetrics
    #: Live copy of the services bucket: the read routes answer from it.
    services_view: RegistryView
    #: Live copy of the monitor's targets bucket: Prometheus HTTP SD answers from it.
    targets_view: RegistryView


class CreateService(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipe: str = Field(pattern=RECIPE_REF_PATTERN, examples=["inference/simulator"])
    overrides: RecipeOverrides = Field(default_factory=dict)


class Accepted(BaseModel):
    service_id: str
    status_url: str


class ServiceStatus(BaseModel):
    service_id: str
    state: ServiceState
    job_id: str | None
    job_state: str | None
    reason: str | None
    endpoints: list[dict[str, Any]]


def _integral(value: object) -> object:
    """JSON Schema's ``integer`` includes ``204.0``; strict pydantic alone would refuse it."""
    return int(value) if type(value) is float and value.is_integer() else value


class PromptRequest(BaseModel):
    #: Strict: ``"chat": 0``, ``"temperature": false`` or ``"max_tokens": "64"`` are type
    #: errors (422), as the document says, not silently converted.
    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(min_length=1, max_length=200_000)
    max_tokens: Annotated[int, BeforeValidator(_integral)] = Field(default=64, ge=1, le=32_768)
    temperature: float = Field(default=0.0, ge=0, le=2)
    model: str | None = Field(default=None, max_length=256)
    chat: bool = False


def recipe_error_response(exc: RecipeError) -> JSONResponse:
    return unprocessable(((path_parts(e.path), e.reason) for e in exc.errors), "recipe")


def create_ingress(ctx: IngressContext) -> FastAPI:
    token = ctx.settings.api_token.get_secret_value() if ctx.settings.api_token else None
    failures_per_minute = ctx.settings.ingress_auth_failures_per_minute
    app = FastAPI(
        title="aifactory ingress",
        version="1",
        description="Deploy AI services from recipes and follow them.",
        responses=EDGE_RESPONSES,
    )
    api = APIRouter(
        prefix="/api/v1",
        dependencies=[Depends(BearerAuth(token, FailedLogins(limit=failures_per_minute)))],
        responses=UNAUTHORIZED,
    )
    balancer = ReplicaBalancer()
    http = httpx.AsyncClient()

    app.add_middleware(Edge, openapi=lambda: app.openapi())
    app.add_middleware(RequestCounter, counter=ctx.metrics.http_requests)

    @app.exception_handler(PublishRefused)
    async def bus_refused(request: Request, exc: PublishRefused) -> JSONResponse:
        """Nothing was done: the command never reached the bus (storage full, bus down)."""
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    bus_document = make_bus_document(ctx.settings.nats_url)

    @app.get("/asyncapi.json", tags=["ops"])
    async def asyncapi() -> dict[str, Any]:
        """The bus contract (AsyncAPI 3), for clients that talk to NATS directly."""
        return bus_document

    state_dir = ctx.settings.state_dir
    ctx.metrics.registry.register(PartsCollector(state_dir))
    add_ops_routes(
        app,
        ctx.metrics.registry,
        lambda: bus_connected(ctx.broker),
        parts=lambda: read_parts(state_dir),
    )

    async def get_json(service_id: str) -> bytes:
        data = await ctx.services_view.get_json(service_id)
        if data is None:
            raise HTTPException(404, f"no service {service_id!r}")
        return data

    async def get_record(service_id: str) -> ServiceRecord:
        return ServiceRecord.model_validate_json(await get_json(service_id))

    @api.post("/services", status_code=202, response_model=Accepted, tags=["services"])
    async def create_service(body: CreateService) -> Any:
        try:
            load_service_recipe(body.recipe, ctx.settings.recipes_dir, body.overrides)
        except RecipeError as exc:
            return recipe_error_response(exc)
        service_id = new_id()[:12]
        cmd = DeployRequested(service_id=service_id, recipe=body.recipe, overrides=body.overrides)
        await publish(ctx.broker, subjects.DEPLOY_REQUESTED, cmd)
        # Answer once the server has registered it (normally a few ms), so a GET right after
        # the 202 finds the service; if the server is down the command waits in the stream.
        await registered(lambda: ctx.services_view.get_json(service_id))
        return Accepted(service_id=service_id, status_url=f"/api/v1/services/{service_id}/status")

    @api.get("/services", response_model=list[ServiceRecord], tags=["services"])
    async def list_services() -> list[ServiceRecord]:
        records = [ServiceRecord.model_validate_json(v) for v in ctx.services_view.all_json()]
        return sorted(records, key=lambda r: r.created)

    @api.get(
        "/services/{service_id}",
        response_model=ServiceRecord,
        tags=["services"],
        responses=NOT_FOUND,
    )
    async def get_service(service_id: ServiceId) -> Response:
        # The stored JSON is a ServiceRecord already: serve it as is (no parse, no re-dump).
        return Response(await get_json(service_id), media_type="application/json")

    @api.get(
        "/services/{service_id}/status",
        response_model=ServiceStatus,
        tags=["services"],
        responses=NOT_FOUND,
    )
    async def service_status(service_id: ServiceId) -> ServiceStatus:
        r = await get_record(service_id)
        return ServiceStatus(
            service_id=r.service_id,
            state=r.state,
            job_id=r.job_id,
            job_state=r.job_state.value if r.job_state else None,
            reason=r.reason,
            endpoints=[e.model_dump() for e in r.endpoints],
        )

    @api.delete("/services/{service_id}", status_code=202, tags=["services"], responses=NOT_FOUND)
    async def delete_service(service_id: ServiceId) -> dict[str, str]:
        await get_record(service_id)
        await publish(ctx.broker, subjects.DEPLOY_CANCEL, DeployCancel(service_id=service_id))
        return {"service_id": service_id, "status": "cancel requested"}

    async def running_endpoints(service_id: str) -> tuple[ServiceRecord, list[Any]]:
        record = await get_record(service_id)
        if record.state is not ServiceState.RUNNING or not record.endpoints:
            raise HTTPException(409, f"service {service_id} is {record.state.value}, not running")
        return record, balancer.order(service_id, record.endpoints)

    @api.get("/services/{service_id}/models", tags=["inference"], responses=PROXY_ERRORS)
    async def service_models(service_id: ServiceId) -> Any:
        _, endpoints = await running_endpoints(service_id)
        try:
            response = await forward(http, endpoints, "GET", "/v1/models", timeout=10)
        except NoHealthyReplica as exc:
            raise HTTPException(502, str(exc)) from exc
        return relay(response)

    @api.post("/services/{service_id}/prompt", tags=["inference"], responses=PROMPT_ERRORS)
    async def service_prompt(service_id: ServiceId, body: PromptRequest) -> Any:
        record, endpoints = await running_endpoints(service_id)
        recipe_model = record.spec.model if record.spec is not None else None
        model = body.model or recipe_model or await _first_model(endpoints)
        common = {"model": model, "max_tokens": body.max_tokens, "temperature": body.temperature}
        if body.chat:
            path = "/v1/chat/completions"
            payload = {**common, "messages": [{"role": "user", "content": body.prompt}]}
        else:
            path, payload = "/v1/completions", {**common, "prompt": body.prompt}
        try:
            response = await forward(http, endpoints, "POST", path, json_body=payload)
        except NoHealthyReplica as exc:
            raise HTTPException(502, str(exc)) from exc
        return relay(response, refused=400)

    async def _first_model(endpoints: list[Any]) -> str:
        try:
            response = await forward(http, endpoints, "GET", "/v1/models", timeout=10)
            return str(response.json()["data"][0]["id"])
        except (NoHealthyReplica, KeyError, IndexError, ValueError) as exc:
            raise HTTPException(502, f"cannot find the served model: {exc}") from exc

    @api.get("/recipes", tags=["recipes"])
    async def recipes() -> list[dict[str, str]]:
        return [
            {"category": r.category, "name": r.name, "ref": f"{r.category}/{r.name}"}
            for r in list_recipes(ctx.settings.recipes_dir)
        ]

    @api.get("/recipes/{category}/{name}", tags=["recipes"], responses=NOT_FOUND)
    async def recipe(category: RecipePart, name: RecipePart) -> Any:
        try:
            found = load_recipe(f"{category}/{name}", ctx.settings.recipes_dir)
        except RecipeError as exc:
            raise HTTPException(404, str(exc)) from exc
        return found.model_dump(mode="json")

    api.include_router(benchmarks_router(ctx.broker, ctx.benchmarks, ctx.services))
    api.include_router(logs_router(ctx.broker, ctx.services_view))
    api.include_router(sd_router(ctx.targets_view))
    app.include_router(api)
    document_names(
        app,
        recipes=[f"{r.category}/{r.name}" for r in list_recipes(ctx.settings.recipes_dir)],
        backends=backend_names(),
    )
    app.router.on_shutdown.append(http.aclose)
    return app
