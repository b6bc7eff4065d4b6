"""A minimal HTTP/1.1 server connection on ``asyncio.Protocol`` + ``httptools``.

Why not aiohttp or uvicorn: the simulator must never be the bottleneck of a benchmark, and a
framework's per-request and per-write overhead (request objects, middleware, one ``await`` per
chunk) costs several times what the simulated work does. This layer does only what the
endpoints need: keep-alive, pipelined requests answered in order, ``Expect: 100-continue``,
fixed-length and chunked responses, and a hook to abort the in-flight request when the client
disconnects.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

import httptools
import orjson

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024 * 1024
MAX_PIPELINED = 64

REASONS = {
    100: b"Continue",
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    404: b"Not Found",
    405: b"Method Not Allowed",
    413: b"Payload Too Large",
    500: b"Internal Server Error",
}


class PayloadTooLarge(Exception):
    """A request body over MAX_BODY: refused with 413 before it is buffered."""


@dataclass(slots=True)
class HttpRequest:
    method: str
    path: str
    body: bytes
    keep_alive: bool
    http11: bool
    #: The ``Authorization`` header's value (empty when absent): checked on ``/v1/*`` when
    #: the simulator has an API key, as vLLM does.
    authorization: bytes = b""


class Job(Protocol):
    """The in-flight work of a connection; aborted when the client goes away."""

    def abort(self) -> None: ...


Dispatch = Callable[["Connection", HttpRequest], None]


class Connection(asyncio.Protocol):
    """One client connection; requests are served strictly one after another."""

    def __init__(self, dispatch: Dispatch, registry: set[Connection]) -> None:
        self._dispatch = dispatch
        self._registry = registry
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._authorization = b""
        self._body: list[bytes] = []
        self._body_size = 0
        self._expect_continue = False
        self._pending: deque[HttpRequest] = deque()
        self._busy = False
        self._keep_alive = True
        self._chunked = True
        self._paused = False
        self.closed = False
        self.job: Job | None = None

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._registry.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._registry.discard(self)
        self._pending.clear()
        job, self.job = self.job, None
        if job is not None:
            job.abort()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # The request itself was served as plain HTTP; the protocol switch is refused by
            # ending the connection once the response is out.
            self._keep_alive = False
            if not self._busy and self._transport is not None:
                self._transport.close()
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, PayloadTooLarge):
                self._fail_protocol(413, str(cause))
            else:
                self._fail_protocol(400, f"malformed HTTP request: {exc}")

    # -- httptools callbacks -----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._authorization = b""
        self._body = []
        self._body_size = 0
        self._expect_continue = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"authorization":
            self._authorization = value
        elif lowered == b"expect" and value.lower() == b"100-continue":
            self._expect_continue = True
        elif lowered == b"content-length" and value.isdigit() and int(value) > MAX_BODY:
            raise PayloadTooLarge(f"request body larger than {MAX_BODY} bytes")

    def on_headers_complete(self) -> None:
        if self._expect_continue and self._transport is not None:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > MAX_BODY:
            raise PayloadTooLarge(f"request body larger than {MAX_BODY} bytes")
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser = self._parser
        url = self._url
        q = url.find(b"?")
        request = HttpRequest(
            method=parser.get_method().decode("ascii", "replace"),
            path=(url if q < 0 else url[:q]).decode("utf-8", "replace"),
            body=b"".join(self._body) if len(self._body) != 1 else self._body[0],
            keep_alive=parser.should_keep_alive(),
            http11=parser.get_http_version() == "1.1",
            authorization=self._authorization,
        )
        if self._busy:
            self._pending.append(request)
            if len(self._pending) >= MAX_PIPELINED and self._transport is not None:
                self._paused = True
                self._transport.pause_reading()
        else:
            self._start(request)

    # -- serving -----------------------------------------------------------------------------
    def _start(self, request: HttpRequest) -> None:
        self._busy = True
        self._keep_alive = request.keep_alive
        self._chunked = request.http11
        self._dispatch(self, request)

    def _finish(self) -> None:
        """The current response is complete: serve the next pipelined request or close."""
        self._busy = False
        self.job = None
        if self.closed or self._transport is None:
            return
        if not self._keep_alive:
            self._transport.close()
            self.closed = True
            return
        if self._pending:
            self._start(self._pending.popleft())
        if self._paused and len(self._pending) < MAX_PIPELINED // 2:
            self._paused = False
            self._transport.resume_reading()

    def _head(self, status: int, content_type: bytes, framing: bytes) -> bytes:
        conn = b"" if self._keep_alive else b"connection: close\r\n"
        return b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\n%s%s\r\n" % (
            status,
            REASONS.get(status, b"Unknown"),
            content_type,
            framing,
            conn,
        )

    def respond(self, status: int, content_type: bytes, body: bytes) -> None:
        """Send a complete fixed-length response and finish the request."""
        if self._transport is not None and not self.closed:
            framing = b"content-length: %d\r\n" % len(body)
            self._transport.write(self._head(status, content_type, framing) + body)
        self._finish()

    def start_stream(self, content_type: bytes) -> None:
        """Send the status line and headers of a streamed response."""
        if self._transport is None or self.closed:
            return
        if self._chunked:
            framing = b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n"
        else:  # HTTP/1.0 has no chunked encoding: the end of the body is the end of the socket
            self._keep_alive = False
            framing = b"cache-control: no-cache\r\n"
        self._transport.write(self._head(200, content_type, framing))

    def send(self, data: bytes, last: bool = False) -> None:
        """Write ``data`` as one chunk (empty data writes nothing); ``last`` ends the body."""
        if self._transport is None or self.closed:
            if last:
                self._finish()
            return
        if self._chunked:
            if data:
                data = b"%x\r\n%s\r\n" % (len(data), data)
            if last:
                data += b"0\r\n\r\n"
        if data:
            self._transport.write(data)
        if last:
            self._finish()

    def cut(self) -> None:
        """Close the connection in the middle of a response (fault injection)."""
        self._keep_alive = False
        self.job = None
        if self._transport is not None and not self.closed:
            self._transport.close()
        self.closed = True
        self._busy = False
        self._pending.clear()

    def close(self) -> None:
        """Close now (server shutdown); the in-flight job is aborted via connection_lost."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def _fail_protocol(self, status: int, message: str) -> None:
        """Answer an unparsable request (when no response is in progress) and hang up."""
        log.debug("closing connection: %s", message)
        self._keep_alive = False
        kind = "PayloadTooLarge" if status == 413 else "BadRequestError"
        info = {"message": message, "type": kind, "param": None, "code": status}
        body = orjson.dumps({"error": info})
        if self._transport is not None and not self.closed and not self._busy:
            framing = b"content-length: %d\r\n" % len(body)
            self._transport.write(self._head(status, b"application/json", framing) + body)
        if self._transport is not None:
            self._transport.close()
