"""Benchmarks: the start form, the live view, Cancel, and the results list."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from aifactory.loadgen.backends import backend_names
from aifactory.services.server.ingress.actions import (
    NotFound,
    Rejected,
    cancel_benchmark,
    start_benchmark,
)
from aifactory.services.server.ingress.web.forms import (
    FormErrors,
    FormField,
    Kind,
    attach_model_error,
    given_values,
    groups,
    model_defaults,
    model_form,
)
from aifactory.services.server.ingress.web.render import bus_refusal, page
from aifactory.services.server.ingress.web.results import DOWNLOADS, available, local_results
from aifactory.services.server.ingress.web.state import WebState
from aifactory.services.server.ingress.web.views import benchmark_view, run_rows, service_view
from aifactory.shared.messages import BenchTarget
from aifactory.shared.messages.base import ID_PATTERN
from aifactory.shared.registry import BenchmarkRecord, ServiceRecord
from aifactory.shared.workload import Workload

BenchmarkId = Annotated[str, Path(pattern=ID_PATTERN)]

#: The workload fields on the form, in this order; the rest keep their defaults.
FIELDS = (
    "backend",
    "model",
    "profile",
    "rate",
    "concurrency",
    "duration_s",
    "requests",
    "warmup_requests",
    "stream",
    "workers",
    "dataset.format",
    "dataset.path",
    "dataset.input_tokens.mean",
    "dataset.output_tokens.mean",
    "slo.ttft_ms",
    "slo.tpot_ms",
    "slo.e2el_ms",
)
#: What the form proposes: a short open-loop run, one worker process.
PROPOSED: dict[str, Any] = {
    "backend": "openai_chat",
    "profile": "constant",
    "rate": 5,
    "duration_s": 30,
    "workers": 1,
}


def workload_form() -> list[FormField]:
    values = {**model_defaults(Workload), **PROPOSED}
    fields = model_form(Workload, values, only=FIELDS)
    return [
        dataclasses.replace(f, kind=Kind.CHOICE, choices=tuple(backend_names()), hint="")
        if f.path == "backend"
        else f
        for f in fields
    ]


def _path(loc: tuple[int | str, ...] | list[int | str]) -> str:
    return ".".join(str(part) for part in loc)


def benchmarks_router(state: WebState) -> APIRouter:
    router = APIRouter(include_in_schema=False, dependencies=[Depends(state.guard.page)])
    actions = APIRouter(include_in_schema=False, dependencies=[Depends(state.guard.action)])

    def records() -> list[BenchmarkRecord]:
        found = [BenchmarkRecord.model_validate_json(v) for v in state.benchmarks_view.all_json()]
        return sorted(found, key=lambda r: r.created, reverse=True)

    @router.get("/benchmarks", response_class=HTMLResponse)
    async def benchmarks_page(request: Request) -> HTMLResponse:
        return page(
            request,
            "benchmarks.html",
            section="benchmarks",
            open_mode=state.open_mode,
            since=state.hub.position("benchmarks"),
            benchmarks=[benchmark_view(r) for r in records()],
        )

    def form_page(
        request: Request,
        *,
        values: dict[str, str] | None = None,
        errors: FormErrors | None = None,
        target_kind: str = "service",
        service_id: str = "",
        url: str = "",
        status_code: int = 200,
    ) -> HTMLResponse:
        fields = workload_form()
        services = [ServiceRecord.model_validate_json(v) for v in state.services_view.all_json()]
        services.sort(key=lambda r: (r.state.value != "running", r.created))
        return page(
            request,
            "benchmark_new.html",
            section="benchmarks",
            open_mode=state.open_mode,
            status_code=status_code,
            groups=groups(fields),
            values=values or {f.path: f.text for f in fields},
            errors=errors or FormErrors(),
            services=[service_view(s) for s in services if not s.state.is_terminal],
            target_kind=target_kind,
            service_id=service_id,
            url=url,
        )

    @router.get("/benchmarks/new", response_class=HTMLResponse)
    async def new_benchmark(
        request: Request,
        service_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    ) -> HTMLResponse:
        return form_page(request, service_id=service_id or "")

    @actions.post("/benchmarks/new", response_model=None)
    async def start(request: Request) -> Response:
        form = await request.form()
        text = {k: v for k, v in form.items() if isinstance(v, str)}
        fields = workload_form()
        posted = {f.path: text.get(f.path, "") for f in fields}
        data, errors = given_values(fields, posted)
        kind = text.get("__target", "service")
        service_id, url = text.get("__service_id", ""), text.get("__url", "").strip()
        target: BenchTarget | None = None
        try:
            target = BenchTarget.model_validate(
                {"service_id": service_id or None} if kind == "service" else {"url": url or None}
            )
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                where = _path(err["loc"]) or ("service_id" if kind == "service" else "url")
                errors.setdefault(f"target.{where}", []).append(_message(err["msg"], where))
        workload: Workload | None = None
        try:
            workload = Workload.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                message = str(err["msg"]).removeprefix("Value error, ")
                if err["loc"]:
                    errors.add(fields, _path(err["loc"]), message)
                else:
                    attach_model_error(fields, errors, message)
        if target is not None and workload is not None and not errors:
            try:
                with bus_refusal():
                    benchmark_id = await start_benchmark(
                        state.broker, state.benchmarks, state.services, target, workload
                    )
            except Rejected as exc:
                for loc, reason in exc.errors:
                    path = _path(loc).removeprefix("workload.")
                    if path.startswith("target."):
                        errors.setdefault(path, []).append(reason)
                    else:
                        errors.add(fields, path, reason)
            else:
                return RedirectResponse(f"/benchmarks/{benchmark_id}", status_code=303)
        return form_page(
            request,
            values=posted,
            errors=errors,
            target_kind=kind,
            service_id=service_id,
            url=url,
            status_code=422,
        )

    @actions.post("/benchmarks/{benchmark_id}/cancel", response_model=None)
    async def cancel(benchmark_id: BenchmarkId) -> Response:
        try:
            with bus_refusal():
                await cancel_benchmark(state.broker, state.benchmarks, benchmark_id)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        return RedirectResponse(f"/benchmarks/{benchmark_id}", status_code=303)

    @router.get("/benchmarks/{benchmark_id}", response_class=HTMLResponse)
    async def benchmark_page(request: Request, benchmark_id: BenchmarkId) -> HTMLResponse:
        found = await state.benchmarks.get(benchmark_id)
        if found is None:
            raise HTTPException(404, f"no benchmark {benchmark_id!r}")
        record = found[0]
        folder = local_results(state.settings, record)
        return page(
            request,
            "benchmark.html",
            section="benchmarks",
            open_mode=state.open_mode,
            # The whole buffer: the charts start from the run's first window.
            since=f"{state.hub.epoch}:0",
            b=benchmark_view(record),
            runs=run_rows(record.summary),
            files=[name for name in DOWNLOADS if folder is None or name in available(folder)],
            results_dir=record.results_dir or "",
            results_elsewhere=bool(record.results_dir) and folder is None,
        )

    router.include_router(actions)
    return router


def _message(msg: str, where: str) -> str:
    text = msg.removeprefix("Value error, ")
    if where == "url" and "pattern" in text:
        return "give a base URL such as http://host:8000"
    return text
