"""What every request meets before a route: a body size limit, honest ``Allow`` headers.

Plain ASGI (no ``BaseHTTPMiddleware``: it costs a task group per request, see counting.py).

- Bodies over :data:`MAX_BODY` (1 MiB, the prompt proxy's included) are refused with 413,
  by ``Content-Length`` at once and by counting for a chunked body, before a route reads it.
- A 405, and ``OPTIONS`` (204), list every method the path documents: Starlette answers
  from the first route that matched the path, which lists only its own method when two
  routes share a path (``GET`` and ``POST /api/v1/services``).
- No CORS headers are ever added: browsers keep other origins out (the web page is served
  from the ingress itself).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 1024 * 1024


TOO_LARGE = b'{"detail":"request body over 1 MiB"}'


class Edge:
    def __init__(
        self, app: ASGIApp, openapi: Callable[[], dict[str, Any]], max_body: int = MAX_BODY
    ) -> None:
        """``openapi``: the app's document; the methods a path allows are the ones it
        documents (what a client, or a contract tester, reads)."""
        self.app = app
        self.openapi = openapi
        self.max_body = max_body
        self._paths: list[tuple[re.Pattern[str], set[str]]] | None = None

    def allowed(self, scope: Scope) -> list[str]:
        if self._paths is None:
            self._paths = [
                (compile_path(path)[0], {m.upper() for m in operations})
                for path, operations in self.openapi().get("paths", {}).items()
            ]
        path = scope.get("path", "")
        methods: set[str] = set()
        for pattern, documented in self._paths:
            if pattern.match(path):
                methods |= documented
        if "GET" in methods:
            methods.add("HEAD")
        return sorted(methods | ({"OPTIONS"} if methods else set()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _answer(send, 413, TOO_LARGE)
            return
        if scope["method"] == "OPTIONS":
            methods = self.allowed(scope)
            if methods:
                await _answer(send, 204, b"", [(b"allow", ", ".join(methods).encode())])
                return
        seen = 0
        started = refused = False

        async def limited() -> Message:
            """Past the limit: answer 413 now and tell the app the client left, so the
            route never sees a truncated body (and whatever it answers is dropped)."""
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    refused = True
                    if not started:
                        await _answer(send, 413, TOO_LARGE)
                    return {"type": "http.disconnect"}
            return message

        async def send_with_allow(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
                if message["status"] == 405:
                    kept = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                    allow = ", ".join(self.allowed(scope)).encode()
                    message = {**message, "headers": [*kept, (b"allow", allow)]}
            await send(message)

        await self.app(scope, limited, send_with_allow)


async def _answer(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": head + (headers or [])})
    await send({"type": "http.response.body", "body": body})
