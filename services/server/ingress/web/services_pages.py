"""Services: the live list, the deploy form with its script preview, Stop, the detail view."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sse_starlette import EventSourceResponse
from starlette.datastructures import FormData

from aifactory.services.server.ingress.actions import (
    NotFound,
    check_deploy,
    deploy_service,
    stop_service,
)
from aifactory.services.server.ingress.logs import follow_logs
from aifactory.services.server.ingress.web.forms import (
    FormErrors,
    FormField,
    changed_values,
    groups,
    model_form,
)
from aifactory.services.server.ingress.web.render import bus_refusal, fragment, page
from aifactory.services.server.ingress.web.state import WebState
from aifactory.services.server.ingress.web.views import as_yaml, service_view
from aifactory.shared.messages.base import ID_PATTERN
from aifactory.shared.messages.deploy import RECIPE_REF_PATTERN
from aifactory.shared.recipes import Recipe, RecipeError, list_recipes, load_recipe
from aifactory.shared.recipes.site import apply_site
from aifactory.shared.registry import ServiceRecord
from aifactory.shared.render import render_script

ServiceId = Annotated[str, Path(pattern=ID_PATTERN)]
#: Identity fields: changing them would name another recipe file.
NOT_ON_FORM = ("name", "category")
PREVIEW_ID = "preview"
#: Records a page's log tail starts with at most (the page keeps 1000 lines).
MAX_PAGE_TAIL = 1000


def recipe_form(recipe: Recipe) -> list[FormField]:
    return model_form(Recipe, recipe.model_dump(mode="json"), skip=NOT_ON_FORM)


def deployable_refs(state: WebState) -> list[str]:
    return [r.ref for r in list_recipes(state.settings.recipes_dir) if r.category != "client"]


def preview_script(state: WebState, recipe: Recipe) -> str:
    """The batch script as the server would submit it (site defaults applied)."""
    return render_script(
        apply_site(recipe, state.settings),
        job_name=f"aif-{PREVIEW_ID}",
        workdir=state.settings.effective_jobs_dir / PREVIEW_ID,
        service_id=PREVIEW_ID,
    )


def services_router(state: WebState) -> APIRouter:
    router = APIRouter(include_in_schema=False, dependencies=[Depends(state.guard.page)])
    actions = APIRouter(include_in_schema=False, dependencies=[Depends(state.guard.action)])

    def records() -> list[ServiceRecord]:
        found = [ServiceRecord.model_validate_json(v) for v in state.services_view.all_json()]
        return sorted(found, key=lambda r: r.created, reverse=True)

    @router.get("/", response_model=None)
    async def home() -> Response:
        return RedirectResponse("/services", status_code=303)

    @router.get("/services", response_class=HTMLResponse)
    async def services_page(request: Request) -> HTMLResponse:
        return page(
            request,
            "services.html",
            section="services",
            open_mode=state.open_mode,
            since=state.hub.position("services"),
            services=[service_view(r) for r in records()],
        )

    def load(ref: str) -> Recipe:
        try:
            return load_recipe(ref, state.settings.recipes_dir)
        except RecipeError as exc:
            raise HTTPException(404, str(exc)) from exc

    def deploy_page(
        request: Request,
        ref: str,
        recipe: Recipe,
        *,
        values: dict[str, str] | None = None,
        errors: FormErrors | None = None,
        preview: tuple[str, list[str]] | None = None,
        status_code: int = 200,
    ) -> HTMLResponse:
        fields = recipe_form(recipe)
        if preview is None:
            preview = _preview(state, ref, fields, {f.path: f.text for f in fields})
        return page(
            request,
            "service_new.html",
            section="services",
            open_mode=state.open_mode,
            status_code=status_code,
            recipes=deployable_refs(state),
            recipe_ref=ref,
            description=recipe.description,
            groups=groups(fields),
            values=values or {f.path: f.text for f in fields},
            errors=errors or FormErrors(),
            script=preview[0],
            preview_errors=preview[1],
        )

    @router.get("/services/new", response_class=HTMLResponse)
    async def new_service(
        request: Request,
        recipe: Annotated[str | None, Query(pattern=RECIPE_REF_PATTERN)] = None,
    ) -> HTMLResponse:
        refs = deployable_refs(state)
        ref = recipe or ("inference/simulator" if "inference/simulator" in refs else refs[0])
        return deploy_page(request, ref, load(ref))

    @actions.post("/services/new", response_model=None)
    async def deploy(request: Request) -> Response:
        form = await request.form()
        ref = _recipe_ref(form)
        recipe = load(ref)
        fields = recipe_form(recipe)
        posted = {f.path: _text(form, f.path) for f in fields}
        overrides, errors = changed_values(fields, posted)
        if not errors:
            try:
                with bus_refusal():
                    service_id = await deploy_service(
                        state.broker, state.services_view, state.settings, ref, overrides
                    )
            except RecipeError as exc:  # the API's own validation, field by field
                for problem in exc.errors:
                    errors.add(fields, problem.path, str(problem))
            else:
                return RedirectResponse(f"/services/{service_id}", status_code=303)
        return deploy_page(
            request,
            ref,
            recipe,
            values={**{f.path: f.text for f in fields}, **posted},
            errors=errors,
            preview=("", [m for ms in errors.values() for m in ms]),
            status_code=422,
        )

    @actions.post("/services/preview", response_class=HTMLResponse)
    async def preview(request: Request) -> HTMLResponse:
        form = await request.form()
        ref = _recipe_ref(form)
        fields = recipe_form(load(ref))
        script, problems = _preview(
            state, ref, fields, {f.path: _text(form, f.path) for f in fields}
        )
        return fragment("_preview.html", script=script, preview_errors=problems)

    @actions.post("/services/{service_id}/stop", response_model=None)
    async def stop(service_id: ServiceId) -> Response:
        try:
            with bus_refusal():
                await stop_service(state.broker, state.services_view, service_id)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        return RedirectResponse(f"/services/{service_id}", status_code=303)

    @router.get("/services/{service_id}", response_class=HTMLResponse)
    async def service_page(request: Request, service_id: ServiceId) -> HTMLResponse:
        raw = await state.services_view.get_json(service_id)
        if raw is None:
            raise HTTPException(404, f"no service {service_id!r}")
        record = ServiceRecord.model_validate_json(raw)
        logs_url = f"/services/{service_id}/logs/stream?tail=200" if state.logs else ""
        return page(
            request,
            "service.html",
            section="services",
            open_mode=state.open_mode,
            since=state.hub.position(f"services/{service_id}"),
            s=service_view(record),
            overrides=as_yaml(record.overrides),
            executor=record.executor,
            logs_url=logs_url,
            monitor=state.monitor,
            # the whole replay buffer: the charts start with the history the feed has.
            monitor_since=f"{state.hub.epoch}:0",
        )

    @router.get("/services/{service_id}/logs/stream")
    async def service_output(
        service_id: ServiceId,
        tail: Annotated[int, Query(ge=0, le=MAX_PAGE_TAIL)] = 200,
        last_event_id: Annotated[str | None, Header(max_length=40)] = None,
    ) -> EventSourceResponse:
        """The log tail of the page: the API's stream, behind the page's login (a browser's
        EventSource sends the session cookie, never the API's bearer header)."""
        if not state.logs:
            raise HTTPException(404, "no logs service on this stack")
        return await follow_logs(
            state.broker,
            state.services_view,
            service_id,
            tail=tail,
            stream=None,
            last_event_id=last_event_id,
        )

    router.include_router(actions)
    return router


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _recipe_ref(form: FormData) -> str:
    ref = _text(form, "__recipe")
    if not re.fullmatch(RECIPE_REF_PATTERN, ref):
        raise HTTPException(422, "the form names no recipe")
    return ref


def _preview(
    state: WebState, ref: str, fields: list[FormField], posted: dict[str, Any]
) -> tuple[str, list[str]]:
    """The script for the form as it stands, or the problems that keep it from rendering."""
    overrides, errors = changed_values(fields, posted)
    if errors:
        return "", [m for ms in errors.values() for m in ms]
    try:
        return preview_script(state, check_deploy(state.settings, ref, overrides)), []
    except RecipeError as exc:
        return "", [str(e) for e in exc.errors]
