"""The hot path: send one request and turn what happens into a :class:`RequestRecord`.

:class:`Requester` holds what every request kind shares (the open-request book, failure
classification, delivery); :class:`GenerationRequester` is the LLM one (vector operations:
``aifactory.loadgen.vector.requester``). Runs on :mod:`transport` (lean keep-alive
HTTP/1.1). Chunk arrival times are taken in the protocol's ``data_received``; t0 is taken
just before the request is handed to the pool (so a new connection's connect time counts,
as it would for any client). Failures are classified into :class:`ErrorType`; only
exceptions a request can raise are caught.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from itertools import pairwise
from typing import Generic, TypeVar

from aifactory.loadgen.backends import GenerationBackend, LineParser, ResponseState
from aifactory.loadgen.datasets.base import Prompt
from aifactory.loadgen.datasets.tokens import EstimateTokenCounter, TokenCounter
from aifactory.loadgen.errors import (
    InvalidResponseError,
    ServerStreamError,
    StreamCutError,
)
from aifactory.loadgen.metrics.records import RequestRecord
from aifactory.loadgen.transport import (
    ConnectionLostError,
    HttpClient,
    HttpProtocolError,
    Response,
)
from aifactory.shared.results import ErrorType, TokenSource

ItemT = TypeVar("ItemT")

_NS_PER_MS = 1_000_000.0
_NS_PER_S = 1_000_000_000.0

#: What sending a request may legitimately raise (anything else is a bug and propagates).
CAUGHT: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    ConnectionLostError,
    HttpProtocolError,
    InvalidResponseError,
    StreamCutError,
    ServerStreamError,
)


def classify(exc: BaseException) -> ErrorType:
    """Map an exception raised while requesting onto an :class:`ErrorType`."""
    if isinstance(exc, TimeoutError):
        return ErrorType.TIMEOUT
    if isinstance(exc, ConnectionRefusedError):
        return ErrorType.CONNECTION_REFUSED
    if isinstance(exc, ConnectionLostError):
        return ErrorType.STREAM_CUT if exc.got_bytes else ErrorType.CONNECTION_ERROR
    if isinstance(exc, StreamCutError):
        return ErrorType.STREAM_CUT
    if isinstance(exc, ServerStreamError):
        return ErrorType.STREAM_ERROR
    if isinstance(exc, InvalidResponseError | HttpProtocolError):
        return ErrorType.INVALID_RESPONSE
    return ErrorType.CONNECTION_ERROR  # other OSError: reset, unreachable, DNS


class Requester(ABC, Generic[ItemT]):
    """Sends one kind of request to one target; hands every record to ``deliver``.

    Subclasses implement :meth:`start`; whatever happens to a request they started (even
    cancellation), its record goes to ``deliver`` exactly once.
    """

    def __init__(
        self,
        client: HttpClient,
        *,
        start_ns: int,
        run_index: int,
        worker_id: int,
        deliver: Callable[[RequestRecord], None],
        endpoint: int = 0,
    ) -> None:
        self._client = client
        self._endpoint = endpoint
        self._start_ns = start_ns
        self._run_index = run_index
        self._worker_id = worker_id
        self._deliver_cb = deliver
        self._open: dict[int, RequestRecord] = {}  # sent, no record delivered yet

    def _rel_s(self, ns: int) -> float:
        return (ns - self._start_ns) / _NS_PER_S

    @abstractmethod
    def start(
        self, item: ItemT, body: bytes, *, request_index: int, scheduled_ns: int, warmup: bool
    ) -> Coroutine[None, None, None]:
        """Send ``body`` now (t0 is now); await the returned coroutine for the response."""

    def _deliver(self, rec: RequestRecord) -> None:
        if self._open.pop(id(rec), None) is not None:
            self._deliver_cb(rec)

    def abandon_all(self) -> None:
        """Deliver every sent request whose completion never ran as ``cancelled``.

        (A task cancelled before its first step never enters its ``try``.)
        """
        for rec in list(self._open.values()):
            self._fail(rec, ErrorType.CANCELLED, "still in flight when the run stopped")

    def _fail(self, rec: RequestRecord, error: ErrorType, message: str) -> None:
        rec.error = error
        rec.error_message = message[:300]
        rec.end_s = self._rel_s(time.perf_counter_ns())
        self._deliver(rec)

    def _fail_http(
        self, rec: RequestRecord, resp: Response, error: ErrorType | None = None
    ) -> None:
        status = resp.status
        rec.http_status = status
        rec.bytes_received = resp.received
        rec.error = error or (ErrorType.HTTP_5XX if status >= 500 else ErrorType.HTTP_4XX)
        text = resp.body[:300].decode("utf-8", "replace").strip()
        rec.error_message = f"HTTP {status}: {text}"
        rec.end_s = self._rel_s(resp.end_ns)
        self._deliver(rec)


class GenerationRequester(Requester[Prompt]):
    """Sends prompts with one LLM backend; times the tokens of (streamed) responses."""

    def __init__(
        self,
        client: HttpClient,
        backend: GenerationBackend,
        *,
        start_ns: int,
        run_index: int,
        worker_id: int,
        deliver: Callable[[RequestRecord], None],
        token_counter: TokenCounter | None = None,
        endpoint: int = 0,
    ) -> None:
        super().__init__(
            client,
            start_ns=start_ns,
            run_index=run_index,
            worker_id=worker_id,
            deliver=deliver,
            endpoint=endpoint,
        )
        self._head = client.post_head(backend.path)
        self._backend = backend
        self._stream = backend.stream
        self._counter: TokenCounter = token_counter or EstimateTokenCounter()

    def start(
        self, item: Prompt, body: bytes, *, request_index: int, scheduled_ns: int, warmup: bool
    ) -> Coroutine[None, None, None]:
        """Send now (t0 is now); await the returned coroutine to receive the response.

        Whatever happens next, even cancellation, the record goes to ``deliver``.
        """
        payload = HttpClient.post_payload(self._head, body)
        parser: LineParser | None = self._backend.parser() if self._stream else None
        rec = RequestRecord(
            run_index=self._run_index,
            worker_id=self._worker_id,
            request_index=request_index,
            prompt_index=item.index,
            warmup=warmup,
            scheduled_s=self._rel_s(scheduled_ns),
            t0_s=0.0,
            end_s=0.0,
            prompt_tokens=item.prompt_tokens,
            prompt_tokens_source=TokenSource.ESTIMATE,
            endpoint=self._endpoint,
            bytes_sent=len(payload),
        )
        t0 = time.perf_counter_ns()
        rec.t0_s = self._rel_s(t0)
        self._open[id(rec)] = rec
        return self._complete(rec, parser, t0, self._client.start(payload, parser))

    async def _complete(
        self,
        rec: RequestRecord,
        parser: LineParser | None,
        t0: int,
        response: Awaitable[Response],
    ) -> None:
        try:
            resp = await response
            end = resp.end_ns
            if resp.status >= 400:
                self._fail_http(rec, resp)
                return
            rec.bytes_received = resp.received
            if parser is not None:
                state = parser.finish(end)
            else:
                state = self._backend.parse_body(resp.body, end)
        except asyncio.CancelledError:
            self._fail(rec, ErrorType.CANCELLED, "still in flight when the run stopped")
            raise
        except CAUGHT as exc:
            if isinstance(exc, ConnectionLostError) and parser is not None and parser.state.done:
                # Terminal marker seen, only the final empty chunk was lost: a full answer.
                end = time.perf_counter_ns()
                state = parser.state
            else:
                self._fail(rec, classify(exc), f"{type(exc).__name__}: {exc}")
                return
        rec.end_s = self._rel_s(end)
        self._fill_success(rec, state, t0, end)
        self._deliver(rec)

    def _fill_success(self, rec: RequestRecord, state: ResponseState, t0: int, end: int) -> None:
        rec.http_status = 200
        if state.usage_output is not None:
            rec.output_tokens = state.usage_output
            rec.output_tokens_source = TokenSource.USAGE
        else:
            rec.output_tokens = self._counter.count("".join(state.texts))
            rec.output_tokens_source = self._counter.source
        if state.usage_prompt is not None:
            rec.prompt_tokens = state.usage_prompt
            rec.prompt_tokens_source = TokenSource.USAGE
        chunk_ns = state.chunk_ns
        if not self._stream or not chunk_ns:
            rec.e2e_ms = (end - t0) / _NS_PER_MS  # non-streamed (or empty): whole response
            return
        rec.chunks = len(chunk_ns)
        ttft = (chunk_ns[0] - t0) / _NS_PER_MS
        e2e = (chunk_ns[-1] - t0) / _NS_PER_MS
        rec.ttft_ms = ttft
        rec.e2e_ms = e2e
        # Whole microseconds: the resolution records are stored at (store.py, itl_us).
        rec.itl_ms = [round((b - a) / 1000) / 1000 for a, b in pairwise(chunk_ns)]
        n = rec.output_tokens
        if n >= 2:
            rec.tpot_ms = (e2e - ttft) / (n - 1)
