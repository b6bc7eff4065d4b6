"""Error bodies of the ingress, in FastAPI's documented shape.

Every 422 — FastAPI's own request validation, recipe errors, workload errors — is
``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``, so clients parse one shape and the
OpenAPI document tells the truth. ``loc`` is the field path as a list (``["resources",
"gpus"]``); ``msg`` says why, and for unknown keys lists the valid ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class Problem(BaseModel):
    """A non-validation error: what is wrong, for a person to read."""

    detail: str


#: Statuses the resource routes answer besides success and 422.
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "Unknown id"}}
PROXY_ERRORS: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND,
    409: {"model": Problem, "description": "The service is not running"},
    502: {
        "model": Problem,
        "description": "No replica answered, or one answered a server error, a body that is "
        "not JSON or that it wants credentials (its status and answer are in the detail)",
    },
}
#: The prompt proxy: the service refused what the caller sent (a model it does not serve).
PROMPT_ERRORS: dict[int | str, dict[str, Any]] = {
    **PROXY_ERRORS,
    404: {"model": Problem, "description": "Unknown id, or a model the service does not serve"},
    400: {
        "model": Problem,
        "description": "The body is not valid JSON, or the service refused the request (its "
        "status and the start of its answer are in the detail)",
    },
}
#: Every ``/api/v1`` route: the bearer token is missing or wrong.
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing or wrong bearer token"}
}


def path_parts(path: str) -> list[str | int]:
    """``"command[2].x"`` → ``["command", 2, "x"]``."""
    return [int(index) if index else name for name, index in _PART.findall(path)]


def unprocessable(errors: Iterable[tuple[Sequence[str | int], str]], kind: str) -> JSONResponse:
    detail = [{"loc": list(loc), "msg": msg, "type": kind} for loc, msg in errors]
    return JSONResponse(status_code=422, content={"detail": detail})


#: What any route may answer before reaching its own logic (documented once, for all).
EDGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The body is not valid JSON"},
    413: {"model": Problem, "description": "The body is over 1 MiB"},
    429: {"model": Problem, "description": "Too many failed authentications"},
    503: {"model": Problem, "description": "The bus refused the command (storage full, down)"},
}


def document_names(app: FastAPI, *, recipes: list[str], backends: list[str]) -> None:
    """Make the OpenAPI document list the recipes a deploy accepts and the load backends a
    benchmark accepts (enums), so a client (or a contract tester) knows the valid names
    instead of guessing them; both are registries known only at start."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        schema = original()
        components = schema.get("components", {}).get("schemas", {})
        for component, field, names in (
            ("CreateService", "recipe", recipes),
            ("Workload", "backend", backends),
        ):
            found = components.get(component)
            if found is not None and names:
                found["properties"][field]["enum"] = sorted(names)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
