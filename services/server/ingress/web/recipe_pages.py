"""Recipes: the list, and each recipe with every field (defaults included) and its script."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import HTMLResponse

from aifactory.services.server.ingress.web.render import page
from aifactory.services.server.ingress.web.services_pages import preview_script
from aifactory.services.server.ingress.web.state import WebState
from aifactory.services.server.ingress.web.views import as_yaml
from aifactory.shared.recipes import RecipeError, list_recipes, load_recipe

Part = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]


def recipes_router(state: WebState) -> APIRouter:
    router = APIRouter(include_in_schema=False, dependencies=[Depends(state.guard.page)])

    @router.get("/recipes", response_class=HTMLResponse)
    async def recipes_page(request: Request) -> HTMLResponse:
        rows: list[dict[str, Any]] = []
        for ref in list_recipes(state.settings.recipes_dir):
            try:
                recipe = load_recipe(ref.ref, state.settings.recipes_dir)
            except RecipeError as exc:
                rows.append({"ref": ref.ref, "error": str(exc.errors[0]), "deployable": False})
                continue
            res = recipe.resources
            resources = f"{res.nodes} node(s), {res.cpus_per_task} CPU, {res.memory}"
            if res.gpu:
                resources += f", {res.gpu} GPU" + (f" {res.gpu_type}" if res.gpu_type else "")
            rows.append(
                {
                    "ref": ref.ref,
                    "error": "",
                    "description": recipe.description,
                    "runtime": recipe.runtime.value,
                    "resources": resources,
                    "deployable": bool(recipe.ports),
                }
            )
        return page(
            request, "recipes.html", section="recipes", open_mode=state.open_mode, recipes=rows
        )

    @router.get("/recipes/{category}/{name}", response_class=HTMLResponse)
    async def recipe_page(request: Request, category: Part, name: Part) -> HTMLResponse:
        ref = f"{category}/{name}"
        try:
            recipe = load_recipe(ref, state.settings.recipes_dir)
        except RecipeError as exc:
            raise HTTPException(404, str(exc)) from exc
        script, script_error = "", ""
        try:
            script = preview_script(state, recipe)
        except RecipeError as exc:
            script_error = str(exc)
        return page(
            request,
            "recipe.html",
            section="recipes",
            open_mode=state.open_mode,
            ref=ref,
            error="",
            description=recipe.description,
            deployable=bool(recipe.ports),
            yaml=as_yaml(recipe.model_dump(mode="json")),
            script=script,
            script_error=script_error,
        )

    return router
