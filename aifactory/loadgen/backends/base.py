"""What every backend provides: a request body, and a parser for its (streamed) response.

Parsing is incremental and cheap: bytes are split into lines as they arrive, each event is
decoded once with orjson, and only the arrival time of chunks that carry generated text is
kept (all events in one socket read share that read's timestamp: that is when the client
could see them). Text pieces are kept only to count tokens when the server sends no usage.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import orjson

from aifactory.loadgen.datasets.base import Prompt
from aifactory.loadgen.errors import (
    InvalidResponseError,
    ServerStreamError,
    StreamCutError,
)


class ResponseState:
    """What a response told us, filled in by a parser."""

    __slots__ = ("chunk_ns", "done", "texts", "usage_output", "usage_prompt")

    def __init__(self) -> None:
        self.chunk_ns: list[int] = []  # arrival time of every chunk carrying generated text
        self.texts: list[str] = []
        self.usage_output: int | None = None
        self.usage_prompt: int | None = None
        self.done = False  # terminal marker seen

    def token(self, text: str, now_ns: int) -> None:
        self.chunk_ns.append(now_ns)
        self.texts.append(text)


def decode_json(payload: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        snippet = payload[:120].decode("utf-8", "replace")
        raise InvalidResponseError(f"response is not JSON ({exc}): {snippet!r}") from exc
    if not isinstance(obj, dict):
        raise InvalidResponseError(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def raise_on_error_object(obj: dict[str, Any]) -> None:
    err = obj.get("error")
    if err:
        msg = err.get("message", err) if isinstance(err, dict) else err
        raise ServerStreamError(f"server error in response: {msg}")


class LineParser(ABC):
    """Splits a byte stream into lines and hands each complete line to :meth:`line`."""

    __slots__ = ("_buf", "state")

    def __init__(self) -> None:
        self._buf = b""
        self.state = ResponseState()

    def feed(self, data: bytes, now_ns: int) -> None:
        buf = self._buf + data if self._buf else data
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            line = buf[start:end]
            start = end + 1
            if line:
                self.line(line, now_ns)
        self._buf = buf[start:]

    def finish(self, now_ns: int) -> ResponseState:
        """End of body: flush a last unterminated line; a missing terminal marker is a cut."""
        if self._buf.strip():
            tail, self._buf = self._buf, b""
            self.line(tail, now_ns)
        if not self.state.done:
            raise StreamCutError("response ended before its terminal marker")
        return self.state

    @abstractmethod
    def line(self, line: bytes, now_ns: int) -> None: ...


class SseParser(LineParser, ABC):
    """Server-sent events: ``data: {json}`` lines, ``data: [DONE]`` at the end."""

    __slots__ = ()

    def line(self, line: bytes, now_ns: int) -> None:
        if not line.startswith(b"data:"):
            return  # comments, event:, id:, retry:, the \r of CRLF separators
        payload = line[5:].strip()
        if payload == b"[DONE]":
            self.state.done = True
            return
        self.event(decode_json(payload), now_ns)

    @abstractmethod
    def event(self, obj: dict[str, Any], now_ns: int) -> None:
        """One decoded event: the backend knows where its API puts the generated text."""


class Backend(ABC):
    """One HTTP inference API."""

    #: URL path of the generation endpoint.
    path: str
    #: URL path listing models (for model discovery and the pre-flight check).
    models_path: str

    def __init__(
        self, model: str, *, stream: bool, ignore_eos: bool, extra_body: dict[str, Any]
    ) -> None:
        self.model = model
        self.stream = stream
        self.ignore_eos = ignore_eos
        self.extra_body = extra_body

    @abstractmethod
    def body(self, prompt: Prompt, max_tokens: int) -> bytes:
        """The JSON request body asking for ``max_tokens`` generated tokens."""

    @abstractmethod
    def parser(self) -> LineParser:
        """A fresh incremental parser for a streamed response."""

    @abstractmethod
    def parse_body(self, body: bytes, now_ns: int) -> ResponseState:
        """Parse a complete non-streamed response."""

    @staticmethod
    @abstractmethod
    def model_names(listing: dict[str, Any]) -> list[str]:
        """Model names from the ``models_path`` response."""


def usage_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
