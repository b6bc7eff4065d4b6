"""The root of every backend, and what an LLM generation backend provides.

A :class:`Backend` is one HTTP API, registered by name, of one :class:`RequestKind`: the
kind says how the load generator prepares, sends and records its requests (an LLM
generation from a prompt, or a vector-database operation; see ``aifactory.loadgen.drivers``),
so the engine, the schedules, the workers and the statistics are the same for all of them.

A :class:`GenerationBackend` provides a request body and a parser for its (streamed)
response. Parsing is incremental and cheap: bytes are split into lines as they arrive, each event is
decoded once with orjson, and only the arrival time of chunks that carry generated text is
kept (all events in one socket read share that read's timestamp: that is when the client
could see them). Text pieces are kept only to count tokens when the server sends no usage.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import StrEnum
from typing import Any, ClassVar

import orjson

from aifactory.loadgen.datasets.base import Prompt
from aifactory.loadgen.errors import (
    InvalidResponseError,
    ServerStreamError,
    StreamCutError,
)
from aifactory.shared.plugins import Registry


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


class RequestKind(StrEnum):
    """How requests of a backend are prepared, sent and turned into records."""

    GENERATION = "generation"  # a prompt in, generated tokens out (streamed or not)
    VECTOR = "vector"  # a vector-database operation: search (recall@k) or upsert (rows)


class Backend(ABC):
    """One HTTP API of some :class:`RequestKind`; subclass the kind's base class
    (:class:`GenerationBackend`, ``VectorBackend``) with ``name="mine"`` to register it.

    ``--backend mine`` and ``backend: mine`` in a workload then select it everywhere (CLI,
    API, experiment files, local and remote workers); nothing else needs editing.
    """

    #: The name workloads select this backend by.
    name: ClassVar[str]
    #: Which driver prepares, sends and records this backend's requests.
    kind: ClassVar[RequestKind]
    #: Users paste OpenAI-style base URLs ending in ``/v1``; a backend whose paths start with
    #: ``/v1`` strips it from the target so the two do not double up.
    strips_v1: ClassVar[bool] = False

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.name = name
            BACKENDS.register(name, cls, origin=cls.__module__)

    @classmethod
    def base_url(cls, target: str) -> str:
        """Where this backend's paths are appended: ``http://h:8000/v1/`` → ``http://h:8000``."""
        base = target.rstrip("/")
        if cls.strips_v1 and base.endswith("/v1"):
            base = base[: -len("/v1")]
        return base


class GenerationBackend(Backend):
    """One HTTP inference API: ``class Mine(GenerationBackend, name="mine")`` registers it."""

    kind = RequestKind.GENERATION
    #: URL path of the generation endpoint.
    path: ClassVar[str]
    #: URL path listing models (for model discovery and the pre-flight check).
    models_path: ClassVar[str]

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


#: Every backend by name: this package's modules, then ``aifactory.backends`` entry points.
BACKENDS: Registry[type[Backend]] = Registry("backends", "aifactory.loadgen.backends")
