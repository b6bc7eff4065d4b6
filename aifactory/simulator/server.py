"""The simulator process: routes, lifecycle and signal handling.

Routes mirror vLLM's OpenAI server (``/v1/*``, ``/health``, ``/metrics``) and Ollama's native
API (``/api/*``) on one port, so every client and exporter the project supports can be pointed
at it unchanged.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import secrets
import signal
import time
from collections.abc import Callable

import orjson

from aifactory.simulator.config import SimulatorConfig
from aifactory.simulator.engine import SlotScheduler
from aifactory.simulator.gpus import GpuEmulator
from aifactory.simulator.http import Connection, HttpRequest
from aifactory.simulator.latency import FaultInjector, LatencyModel
from aifactory.simulator.metrics import CONTENT_TYPE, SimulatorMetrics
from aifactory.simulator.pull import serve_pull
from aifactory.simulator.render_ollama import (
    OllamaChatRenderer,
    OllamaGenerateRenderer,
    OllamaRenderer,
    created_at,
)
from aifactory.simulator.render_openai import ChatRenderer, CompletionRenderer
from aifactory.simulator.requests import (
    ApiKind,
    GenRequest,
    RequestError,
    parse_chat,
    parse_completion,
    parse_ollama_chat,
    parse_ollama_generate,
)
from aifactory.simulator.stream import Generation, Renderer, SimContext
from aifactory.simulator.timers import Clock
from aifactory.simulator.tokens import Vocabulary

log = logging.getLogger("aifactory.simulator")

JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"
METRICS_TYPE = CONTENT_TYPE.encode()
VERSION = "0.1.0-simulator"

Route = Callable[[Connection, HttpRequest], None]
Parser = Callable[[bytes, str], GenRequest]


class Simulator:
    """An inference server whose latencies are whatever :class:`SimulatorConfig` says."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.port = config.port
        self._vocab = Vocabulary(config.seed)
        self._model_json = orjson.dumps(config.model)
        self._id_prefix = secrets.token_hex(6)
        key = config.api_key.get_secret_value() if config.api_key else None
        self._authorization = b"Bearer " + key.encode() if key else None
        self._ids = itertools.count(1)
        self._started = int(time.time())
        self.scheduler = SlotScheduler(config.max_running)
        self.metrics = SimulatorMetrics(
            config.model,
            running=lambda: self.scheduler.running,
            waiting=lambda: self.scheduler.waiting,
            capacity=config.max_running,
        )
        self.gpus = (
            GpuEmulator(
                config.emulate_gpus,
                running=lambda: self.scheduler.running,
                capacity=config.max_running,
                memory_mib=config.gpu_memory_mib,
            )
            if config.emulate_gpus
            else None
        )
        self._latency = LatencyModel(config)
        self._faults = FaultInjector(config)
        self._ctx: SimContext | None = None
        self._clock: Clock | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[Connection] = set()
        #: Models pulled through ``/api/pull`` (listed by ``/api/tags`` next to ``model``).
        self.pulled: list[str] = []
        gen = self._generation
        version = b'{"version":"%s"}' % VERSION.encode()
        self._routes: dict[str, tuple[str, Route]] = {
            "/v1/chat/completions": ("POST", lambda c, r: gen(c, r, parse_chat)),
            "/v1/completions": ("POST", lambda c, r: gen(c, r, parse_completion)),
            "/api/generate": ("POST", lambda c, r: gen(c, r, parse_ollama_generate)),
            "/api/chat": ("POST", lambda c, r: gen(c, r, parse_ollama_chat)),
            "/v1/models": ("GET", self._models),
            "/health": ("GET", lambda c, r: c.respond(200, JSON, b"")),
            "/metrics": ("GET", self._metrics),
            "/api/tags": ("GET", self._tags),
            "/api/pull": ("POST", lambda c, r: serve_pull(c, r, self.pulled.append)),
            "/api/version": ("GET", lambda c, r: c.respond(200, JSON, version)),
            "/version": ("GET", lambda c, r: c.respond(200, JSON, version)),
            "/": ("GET", lambda c, r: c.respond(200, TEXT, b"Ollama is running")),
        }

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    async def start(self) -> None:
        """Bind and start serving; ``self.port`` holds the real port afterwards (for port 0)."""
        loop = asyncio.get_running_loop()
        self._clock = Clock(loop)
        self._ctx = SimContext(
            self._clock, self._latency, self._faults, self.scheduler, self.metrics
        )
        self._server = await loop.create_server(
            lambda: Connection(self._dispatch, self._connections),
            host=self.config.host,
            port=self.config.port,
            backlog=4096,
            reuse_address=True,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        if self.gpus is not None:
            self.gpus.start(self.port)

    async def stop(self) -> None:
        """Stop accepting, drop open connections (aborting their requests) and wait."""
        if self._server is None:
            return
        self._server.close()
        for conn in list(self._connections):
            conn.close()
        await self._server.wait_closed()
        self._server = None
        if self._clock is not None:
            self._clock.close()
        if self.gpus is not None:
            await self.gpus.stop()

    # -- routing -------------------------------------------------------------------------------
    def _dispatch(self, conn: Connection, req: HttpRequest) -> None:
        route = self._routes.get(req.path)
        if self._unauthorized(req):
            conn.respond(401, JSON, b'{"error":"Unauthorized"}')  # vLLM's answer
        elif route is None:
            err = RequestError(404, f"Not Found: {req.path}", None, "NotFoundError")
            self._error(conn, req.path, err)
        elif route[0] != req.method:
            message = f"Method {req.method} not allowed on {req.path}; use {route[0]}"
            self._error(conn, req.path, RequestError(405, message, None, "MethodNotAllowed"))
        else:
            route[1](conn, req)

    def _unauthorized(self, req: HttpRequest) -> bool:
        """With an API key, vLLM guards ``/v1/*`` (health and metrics stay open)."""
        if self._authorization is None or not req.path.startswith("/v1"):
            return False
        return not hmac.compare_digest(req.authorization, self._authorization)

    def _error(self, conn: Connection, path: str, err: RequestError) -> None:
        body: dict[str, object]
        if path.startswith("/api/"):  # Ollama's error shape
            body = {"error": err.message}
        else:
            info = {
                "message": err.message,
                "type": err.kind,
                "param": err.param,
                "code": err.status,
            }
            body = {"error": info}
        conn.respond(err.status, JSON, orjson.dumps(body))

    def _generation(self, conn: Connection, req: HttpRequest, parse: Parser) -> None:
        try:
            gen = parse(req.body, self.config.model)
        except RequestError as err:
            self._error(conn, req.path, err)
            return
        renderer = self._renderer(gen)
        if gen.load_only and isinstance(renderer, OllamaRenderer):
            conn.respond(200, JSON, renderer.load_only())
            return
        assert self._ctx is not None, "start() must run before requests are served"
        injected = RequestError(
            500, "simulated internal server error (--error-rate)", None, "InternalServerError"
        )
        Generation(self._ctx, conn, gen, renderer, lambda: self._error(conn, req.path, injected))

    def _renderer(self, gen: GenRequest) -> Renderer:
        vocab, model = self._vocab, self._model_json
        if gen.api is ApiKind.CHAT:
            rid = f"chatcmpl-{self._id_prefix}{next(self._ids):010x}"
            return ChatRenderer(vocab, model, rid, int(time.time()), gen.key, gen.include_usage)
        if gen.api is ApiKind.COMPLETION:
            rid = f"cmpl-{self._id_prefix}{next(self._ids):010x}"
            return CompletionRenderer(
                vocab, model, rid, int(time.time()), gen.key, gen.include_usage
            )
        if gen.api is ApiKind.OLLAMA_GENERATE:
            return OllamaGenerateRenderer(vocab, model, gen.key)
        return OllamaChatRenderer(vocab, model, gen.key)

    # -- static endpoints ----------------------------------------------------------------------
    def _models(self, conn: Connection, req: HttpRequest) -> None:
        model = self.config.model
        card = {
            "id": model,
            "object": "model",
            "created": self._started,
            "owned_by": "vllm",
            "root": model,
            "parent": None,
            "max_model_len": 1_000_000,
        }
        conn.respond(200, JSON, orjson.dumps({"object": "list", "data": [card]}))

    def _metrics(self, conn: Connection, req: HttpRequest) -> None:
        body = self.metrics.render()
        if self.gpus is not None:
            body += self.gpus.render()
        conn.respond(200, METRICS_TYPE, body)

    def _tags(self, conn: Connection, req: HttpRequest) -> None:
        details = {
            "format": "simulated",
            "family": "simulator",
            "parameter_size": "0B",
            "quantization_level": "none",
        }
        tags = [
            {
                "name": model,
                "model": model,
                "modified_at": created_at(self._started),
                "size": 0,
                "digest": "0" * 64,
                "details": details,
            }
            for model in dict.fromkeys([self.config.model, *self.pulled])
        ]
        conn.respond(200, JSON, orjson.dumps({"models": tags}))


async def serve(config: SimulatorConfig, ready: Callable[[Simulator], None] | None = None) -> None:
    """Process entry point: serve until SIGTERM or SIGINT, then shut down with status 0.

    Once shutdown begins, further SIGTERM/SIGINT are ignored: an executor that signals twice
    must not turn a clean exit into "killed by signal".
    """
    sim = Simulator(config)
    await sim.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    log.info("simulator ready on %s (model=%s)", sim.url, config.model)
    if ready is not None:
        ready(sim)
    try:
        await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)  # restores SIG_DFL: replace it at once
            signal.signal(sig, signal.SIG_IGN)
        log.info("simulator shutting down")
        await sim.stop()


def run(config: SimulatorConfig) -> None:
    """Blocking entry point used by the CLI: configure logging, run on uvloop."""
    import uvloop

    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    uvloop.run(serve(config))
