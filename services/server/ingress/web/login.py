"""``/login`` (the form, or a one-click link's ticket) and ``/logout``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from aifactory.services.server.ingress.web.guard import check_same_origin, safe_next
from aifactory.services.server.ingress.web.render import render
from aifactory.services.server.ingress.web.sessions import cookie_name
from aifactory.services.server.ingress.web.state import WebState
from aifactory.shared.weblogin import TicketError


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def login_router(state: WebState) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def form(next_path: str, error: str = "", status_code: int = 200) -> HTMLResponse:
        html = render("login.html", next_path=next_path, error=error)
        return HTMLResponse(html, status_code=status_code)

    def logged_in(request: Request, next_path: str) -> Response:
        assert state.sessions is not None
        value, max_age = state.sessions.new_cookie()
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(
            cookie_name(request.url.port),
            value,
            max_age=max_age,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @router.get("/login", response_model=None)
    async def login_page(
        request: Request,
        next_path: Annotated[str | None, Query(alias="next")] = None,
        ticket: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Response:
        state.guard.check_host(request)
        target = safe_next(next_path)
        if state.sessions is None or state.guard.logged_in(request):
            return RedirectResponse(target, status_code=303)
        if ticket is None:
            return form(target)
        try:
            state.sessions.use_ticket(ticket)
        except TicketError as exc:
            state.failures.fail(_client(request))
            return form(target, str(exc), status_code=401)
        return logged_in(request, target)

    @router.post("/login", response_model=None)
    async def login(
        request: Request,
        token: Annotated[str, Form(max_length=1000)] = "",
        next_path: Annotated[str, Form(alias="next", max_length=400)] = "/",
    ) -> Response:
        state.guard.check_host(request)
        check_same_origin(request)
        target = safe_next(next_path)
        if state.sessions is None:
            return RedirectResponse(target, status_code=303)
        client = _client(request)
        wait = state.failures.blocked(client)
        if wait > 0:
            response = form(
                target, f"Too many failed logins: try again in {wait:.0f} s.", status_code=429
            )
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        if not token or not state.sessions.check_token(token.strip()):
            state.failures.fail(client)
            return form(target, "That is not this stack's token.", status_code=401)
        return logged_in(request, target)

    @router.post("/logout", response_model=None)
    async def logout(request: Request) -> Response:
        state.guard.check_host(request)
        check_same_origin(request)
        name = cookie_name(request.url.port)
        if state.sessions is not None:
            state.sessions.revoke(request.cookies.get(name))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(name, path="/", httponly=True, samesite="strict")
        return response

    return router
