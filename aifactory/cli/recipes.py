"""``aifactory recipes list | show | validate | render``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.table import Table

from aifactory.cli.common import console, fail, settings
from aifactory.prepare import PrepareError
from aifactory.prepare import prepare as prepare_recipe
from aifactory.shared.images import ImageCacheError
from aifactory.shared.recipes import (
    Recipe,
    RecipeError,
    list_recipes,
    load_recipe,
    parse_set_options,
)
from aifactory.shared.recipes.site import apply_site
from aifactory.shared.render import render_script

app = typer.Typer(help="Browse, check and render service recipes.", no_args_is_help=True)

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a field: --set resources.gpu=4 (repeatable)."),
]


def _load(name: str, sets: list[str] | None) -> Recipe:
    """The recipe as a deploy would run it: overrides, then the site's defaults."""
    cfg = settings()
    try:
        return apply_site(load_recipe(name, cfg.recipes_dir, parse_set_options(sets or [])), cfg)
    except RecipeError as exc:
        raise fail(str(exc)) from exc


@app.command("list")
def list_cmd() -> None:
    """List the recipes, by category."""
    root = settings().recipes_dir
    table = Table("recipe", "description")
    for ref in list_recipes(root):
        try:
            description = load_recipe(f"{ref.category}/{ref.name}", root).description
        except RecipeError as exc:
            description = f"[red]invalid: {exc.errors[0]}[/red]"
        table.add_row(f"{ref.category}/{ref.name}", description)
    console.print(table)


@app.command()
def show(name: str, set_: SetOption = None) -> None:
    """Print a recipe after overrides, as YAML."""
    recipe = _load(name, set_)
    console.print(yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False))


@app.command()
def validate(name: str, set_: SetOption = None) -> None:
    """Check a recipe (and overrides); errors name the field path."""
    _load(name, set_)
    console.print(f"[green]{name}: valid[/green]")


@app.command()
def render(
    name: str,
    set_: SetOption = None,
    service_id: Annotated[str, typer.Option(help="Service id used in names.")] = "preview",
    workdir: Annotated[Path, typer.Option(help="Job work directory.")] = Path("./aifactory-job"),
) -> None:
    """Print the batch script the server would submit."""
    recipe = _load(name, set_)
    try:
        script = render_script(
            recipe,
            job_name=f"aif-{service_id}",
            workdir=workdir.resolve(),
            service_id=service_id,
        )
    except RecipeError as exc:
        raise fail(str(exc)) from exc
    typer.echo(script, nl=False)


@app.command()
def prepare(
    name: str,
    set_: SetOption = None,
    refresh: Annotated[bool, typer.Option(help="Pull again even when cached.")] = False,
) -> None:
    """Fetch a recipe's image (into the site's SIF cache, by digest), model weights and
    Ollama models on this (login) node, so jobs start offline from the cache."""
    cfg = settings()
    try:  # the recipe as written: its registry image, not a SIF cached earlier
        recipe = load_recipe(name, cfg.recipes_dir, parse_set_options(set_ or []))
        done = prepare_recipe(recipe, cfg, refresh=refresh, say=console.print)
    except (RecipeError, PrepareError, ImageCacheError) as exc:
        raise fail(str(exc)) from exc
    if done.image is not None:
        console.print(f"[green]image[/green] {done.image.path} ({done.image.digest})")
    for item in (*done.weights, *done.models):
        console.print(f"[green]ready[/green] {item}")
