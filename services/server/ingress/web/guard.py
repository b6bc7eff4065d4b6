"""Who may use the web page, and the headers every page goes out with.

- **Login.** Pages need a valid session cookie (or the API's bearer header); a browser
  without one is sent to the login form, a script request gets 401. With no token at all
  (``aifactory up --insecure-loopback``, loopback only) the page is open.
- **Cross-site requests.** The cookie is ``SameSite=Strict``, and every state-changing POST
  must come from a page of this origin (``Origin`` header, else ``Sec-Fetch-Site``).
- **DNS rebinding.** An ingress bound to loopback answers the page only for a loopback
  ``Host``: a web site whose name resolves to 127.0.0.1 cannot script it.
- **Headers.** A Content-Security-Policy without inline script (all JavaScript is in static
  files, data travels in ``data-`` attributes and over SSE), no framing, no referrer to other
  sites (a login link's ticket never leaks), no sniffing, no caching of pages.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import quote, urlsplit

from fastapi import HTTPException, Request, status
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aifactory.services.server.ingress.auth import is_loopback
from aifactory.services.server.ingress.web.sessions import Sessions, cookie_name

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
#: The benchmark report: our own HTML with inline styles and SVG, and no script at all.
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
#: Paths that are not the page: the API and its docs keep their own behaviour.
NOT_PAGES = ("/api/", "/docs", "/redoc", "/openapi.json", "/health", "/metrics", "/asyncapi")
_SAFE_NEXT = re.compile(r"^/(?!/)[A-Za-z0-9/_.~%?=&-]{0,300}$")


class LoginRequired(Exception):
    """A browser asked for a page without a session: show the login form."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def safe_next(value: str | None) -> str:
    """Where to go after login: a local path only (never ``//host`` or a URL)."""
    return value if value and _SAFE_NEXT.fullmatch(value) else "/"


def login_location(next_path: str) -> str:
    return "/login" if next_path == "/" else f"/login?next={quote(next_path, safe='')}"


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def _loopback_name(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class WebGuard:
    """The page's access rules (FastAPI dependencies)."""

    def __init__(self, sessions: Sessions | None, bind_host: str) -> None:
        self.sessions = sessions
        self.loopback_only = is_loopback(bind_host)

    @property
    def open(self) -> bool:
        """No token: ``--insecure-loopback``."""
        return self.sessions is None

    def check_host(self, request: Request) -> None:
        name = _host_name(request.headers.get("host", ""))
        if self.loopback_only and not _loopback_name(name):
            raise HTTPException(status.HTTP_421_MISDIRECTED_REQUEST, "unexpected Host header")

    def logged_in(self, request: Request) -> bool:
        if self.sessions is None:
            return True
        if self.sessions.check_cookie(request.cookies.get(cookie_name(request.url.port))):
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.sessions.check_token(given)

    async def page(self, request: Request) -> None:
        """A page: the login form when not logged in (401 for scripts and streams)."""
        self.check_host(request)
        if self.logged_in(request):
            return
        wants_html = "text/html" in request.headers.get("accept", "")
        if request.method == "GET" and wants_html and "hx-request" not in request.headers:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequired(safe_next(target))
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "log in first")

    async def action(self, request: Request) -> None:
        """A state-changing form post: same origin, logged in."""
        self.check_host(request)
        check_same_origin(request)
        if not self.logged_in(request):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "log in first")


def check_same_origin(request: Request) -> None:
    """Refuse a POST that a page of another origin made the browser send."""
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    if origin is not None and origin != "null":
        if urlsplit(origin).netloc != host:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-origin form post refused")
        return
    # No usable Origin (``null`` from a privacy-sensitive context): the browser still says
    # whether the request came from this origin.
    if request.headers.get("sec-fetch-site") != "same-origin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "form post of unknown origin refused")


class SecurityHeaders:
    """Plain ASGI middleware (see ``counting.py`` for why not ``BaseHTTPMiddleware``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(NOT_PAGES):
            await self.app(scope, receive, send)
            return
        static = path.startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = [
                    (b"content-security-policy", PAGE_CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    # same-origin, not no-referrer: with no-referrer, browsers send
                    # "Origin: null" on form posts and the origin check cannot work.
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                if not static:
                    extra.append((b"cache-control", b"no-store"))
                headers += [(k, v) for k, v in extra if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
