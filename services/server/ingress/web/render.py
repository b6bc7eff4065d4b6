"""Server-side rendering: one Jinja2 environment with autoescape always on.

Every value a template prints is escaped (service names, recipe values, log lines, error
messages); there is no ``|safe`` in the templates. ``StrictUndefined`` turns a typo in a
template into an error in the tests instead of an empty cell.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse

from aifactory.shared.bus import PublishRefused

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

NAV = (
    ("services", "/services", "Services"),
    ("benchmarks", "/benchmarks", "Benchmarks"),
    ("experiments", "/experiments", "Experiments"),
    ("recipes", "/recipes", "Recipes"),
)


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["nav"] = NAV
    return env


def render(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)


def page(
    request: Request,
    name: str,
    *,
    section: str = "",
    status_code: int = 200,
    open_mode: bool = False,
    **context: Any,
) -> HTMLResponse:
    """A whole page (``base.html`` around it)."""
    html = render(name, section=section, open_mode=open_mode, path=request.url.path, **context)
    return HTMLResponse(html, status_code=status_code)


@contextlib.contextmanager
def bus_refusal() -> Iterator[None]:
    """A command the bus would not store is a 503 page saying nothing was done."""
    try:
        yield
    except PublishRefused as exc:
        raise HTTPException(503, f"Nothing was done: {exc}") from exc


def fragment(name: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A piece of a page, for an htmx swap."""
    return HTMLResponse(render(name, **context), status_code=status_code)
